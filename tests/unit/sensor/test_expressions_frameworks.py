"""Expressions over the objects web frameworks and ORMs hand to application code.

Each framework's behaviour is reproduced by a small stand-in class with the same layout (the
suite does not depend on the frameworks): SQLAlchemy's mapped attributes are data descriptors
that return the instance ``__dict__`` entry when the value is loaded and run a query when it is
not; werkzeug's ``LocalProxy`` and Django's ``SimpleLazyObject`` forward attribute reads to
code through ``__getattr__``. Every hook records its calls: an expression must run none.
"""

from __future__ import annotations

from typing import Any

import pytest

from sensor.errors import ExpressionError
from sensor.expressions import compile

CALLS: list[str] = []


class _ScalarAttributeImpl:
    """SQLAlchemy's impl of a column or many-to-one: loaded values live in the instance dict."""

    __slots__ = ()
    supports_population = True


class _WriteOnlyAttributeImpl:
    """A write-only or dynamic relationship: never served from the instance dict."""

    __slots__ = ()
    supports_population = False


class QueryableAttribute:
    __slots__ = ("impl", "key")


class InstrumentedAttribute(QueryableAttribute):
    """The layout of ``sqlalchemy.orm.attributes.InstrumentedAttribute`` (SQLAlchemy 1.4, 2.x)."""

    __slots__ = ()

    def __init__(self, key: str, impl: object) -> None:
        self.key = key
        self.impl = impl

    def __get__(self, instance: object, owner: Any = None) -> Any:
        if instance is None:
            return self
        CALLS.append(f"get {self.key}")  # where SQLAlchemy would load the value: a query
        d = instance.__dict__
        if self.key in d:
            return d[self.key]
        return f"loaded {self.key}"

    def __set__(self, instance: object, value: object) -> None:
        CALLS.append(f"set {self.key}")
        instance.__dict__[self.key] = value


InstrumentedAttribute.__module__ = "sqlalchemy.orm.attributes"
QueryableAttribute.__module__ = "sqlalchemy.orm.attributes"


class Order:
    """A mapped class: every mapped name is an InstrumentedAttribute on the class."""

    id = InstrumentedAttribute("id", _ScalarAttributeImpl())
    amount = InstrumentedAttribute("amount", _ScalarAttributeImpl())
    coupon = InstrumentedAttribute("coupon", _ScalarAttributeImpl())
    customer = InstrumentedAttribute("customer", _ScalarAttributeImpl())
    lines = InstrumentedAttribute("lines", _WriteOnlyAttributeImpl())


def _loaded_order(**state: object) -> Order:
    order = Order.__new__(Order)
    order.__dict__.update({"_sa_instance_state": object(), **state})
    return order


@pytest.fixture(autouse=True)
def _no_calls() -> Any:
    del CALLS[:]
    yield
    assert CALLS == [], f"an expression ran framework code: {CALLS}"


def test_loaded_orm_column_is_read_from_the_instance_dict() -> None:
    order = _loaded_order(id=7, amount=120, coupon=None)
    assert compile("order.amount").evaluate({"order": order}) == 120
    assert compile("order.coupon is None").evaluate({"order": order}) is True
    assert compile("0 <= order.amount <= 1000 and order.id > 0").evaluate({"order": order})


def test_orm_attribute_that_is_not_loaded_is_refused_as_a_query() -> None:
    order = _loaded_order(id=7, amount=120)  # customer: a lazy relationship, never loaded
    with pytest.raises(ExpressionError, match=r"not loaded .*reading it would run a query"):
        compile("order.customer").evaluate({"order": order})
    del order.__dict__["amount"]  # an expired column: SQLAlchemy refreshes it with a SELECT
    with pytest.raises(ExpressionError, match=r"'amount' .* not loaded"):
        compile("order.amount").evaluate({"order": order})


def test_write_only_relationship_is_refused_even_with_a_dict_entry() -> None:
    order = _loaded_order(lines=[1, 2])
    with pytest.raises(ExpressionError, match="reading it would run"):
        compile("order.lines").evaluate({"order": order})


def test_other_data_descriptor_over_a_dict_entry_is_still_refused() -> None:
    class Imitation:
        """Same slots, another module: only SQLAlchemy's own descriptor is trusted."""

        __slots__ = ("impl", "key")

        def __get__(self, instance: object, owner: Any = None) -> Any:
            CALLS.append("imitation")
            return 0

        def __set__(self, instance: object, value: object) -> None:
            CALLS.append("imitation set")

    class Thing:
        amount = Imitation()

    thing = Thing()
    thing.__dict__["amount"] = 5
    with pytest.raises(ExpressionError, match="property or other data descriptor"):
        compile("thing.amount").evaluate({"thing": thing})


class _LocalProxy:
    """werkzeug's LocalProxy: slots, and every attribute read forwarded through __getattr__."""

    __slots__ = ("__wrapped", "_get_current_object")

    def __init__(self) -> None:
        object.__setattr__(self, "_LocalProxy__wrapped", "request_ctx")
        object.__setattr__(self, "_get_current_object", lambda: CALLS.append("resolved"))

    def __getattr__(self, name: str) -> Any:
        CALLS.append(f"proxy {name}")
        return None


def test_attribute_of_a_proxy_is_refused_saying_it_forwards_to_code() -> None:
    with pytest.raises(ExpressionError, match=r"'headers'.*__getattr__.*would run code"):
        compile("request.headers").evaluate({"request": _LocalProxy()})
