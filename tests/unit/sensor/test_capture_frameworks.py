"""Captures of ORM instances: the framework's per-instance bookkeeping is not the state.

SQLAlchemy keeps an ``InstanceState`` in every mapped instance's ``__dict__`` (under
``_sa_instance_state``, first), Django a ``ModelState`` (under ``_state``). Their contents say
whether the object was loaded from a database (key, session id, load path, ``adding``, ``db``),
so an object a test builds differs there from every object production loads: compared field by
field they made a clean production "diverge" on a dozen internal paths, and expanded they cost
about 1.5 kB per instance of the capture's byte budget. Stand-ins with the same type names and
layouts reproduce both without the frameworks.
"""

from __future__ import annotations

from typing import Any

from pytest_runtime.compare import compare
from sensor.capture import capture_frame, encode
from sensor.probes import Probe


class InstanceState:
    """The layout of ``sqlalchemy.orm.state.InstanceState``: slots-free, a plain __dict__."""

    def __init__(self, persistent: bool) -> None:
        self.class_ = Order
        self.manager = {"amount": object(), "coupon": object()}
        if persistent:
            self.key = (Order, (7,), None)
            self.session_id = 3
            self.runid = 12
            self.load_path = ("Mapper", "Order")
            self.expired_attributes: set[str] = set()
        else:
            self.modified = True
            self.committed_state = {"amount": "NO_VALUE", "coupon": "NO_VALUE"}


InstanceState.__module__ = "sqlalchemy.orm.state"


class ModelState:
    """``django.db.models.base.ModelState``: class defaults, set on the instance once loaded."""

    db = None
    adding = True


ModelState.__module__ = "django.db.models.base"


class Order:
    def __init__(self, amount: int, coupon: str | None, *, persistent: bool) -> None:
        self._sa_instance_state = InstanceState(persistent)
        self.amount = amount
        self.coupon = coupon


class Customer:
    def __init__(self, name: str, *, loaded: bool) -> None:
        self._state = ModelState()
        if loaded:
            self._state.adding = False
            self._state.db = "default"
        self.name = name


def _hit(i: int, **values: Any) -> dict[str, Any]:
    captures, truncated, errors = capture_frame(values)
    return {
        "probe_id": "p",
        "signature": "s",
        "kind": "snapshot",
        "location": "shop:discount@return",
        "ts": 1.0 + i,
        "hit_id": f"h-{i}",
        "line": 3,
        "thread": "t",
        "captures": captures,
        "truncated": truncated,
        "errors": errors,
    }


def test_orm_bookkeeping_is_kept_as_its_type_only() -> None:
    order = encode(Order(120, None, persistent=True), redactor=None)
    assert order == {
        "@t": f"{__name__}.Order",
        "@attrs": {
            "_sa_instance_state": {"@t": "sqlalchemy.orm.state.InstanceState", "@depth": True},
            "amount": 120,
            "coupon": None,
        },
    }
    customer = encode(Customer("acme", loaded=True), redactor=None)
    assert customer["@attrs"]["_state"] == {
        "@t": "django.db.models.base.ModelState",
        "@depth": True,
    }


def test_bookkeeping_captured_by_itself_is_expanded() -> None:
    state = encode(InstanceState(persistent=True), redactor=None)
    assert state["@attrs"]["runid"] == 12


def test_objects_built_by_tests_do_not_diverge_from_loaded_ones_on_bookkeeping() -> None:
    test_hits = [
        _hit(0, order=Order(100, "TEN", persistent=False), customer=Customer("a", loaded=False)),
        _hit(1, order=Order(50, "NONE", persistent=False), customer=Customer("b", loaded=False)),
    ]
    prod_hits = [
        _hit(
            100 + i,
            order=Order(100 + i % 2 * -50, "TEN" if i % 2 else "NONE", persistent=True),
            customer=Customer("ab"[i % 2], loaded=True),
        )
        for i in range(40)
    ]
    probe = Probe.from_dict(
        {"kind": "snapshot", "location": "shop:discount@return", "capture": ["order", "customer"]}
    )
    verdict = compare(test_hits, prod_hits, probe=probe)
    assert [(d.kind, d.path) for d in verdict.divergences] == []
    assert verdict.verdict == "ok"
