"""A regression test written from a production hit holds production data only as data.

The hit's texts (an exception message with the user's input in it, the source's service and
host, the hit id) come from production and from sensors; they reach the written module as
comments, a docstring and literals. Whatever they hold, the module is the docstring, the
imports and one test function: nothing else runs when pytest imports it.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest

from pytest_runtime.regression import RegressionError, write_test

INJECTED = "\nimport os; os.system('echo PWNED')\n#"


def _hit(**fields: Any) -> dict[str, Any]:
    hit: dict[str, Any] = {
        "hit_id": "h-1",
        "probe_id": "p-1",
        "signature": "s-1",
        "location": "shop.pricing:total@return",
        "arguments": {"values": {"amount": 5}, "names": ["amount"], "positional": 1},
        "outcome": {"raised": "ValueError"},
        "exception": {"type": "ValueError", "message": "bad amount"},
        "source": {"service": "shop", "host": "web-1"},
    }
    hit.update(fields)
    return hit


def _module_statements(source: str) -> list[str]:
    tree = ast.parse(source)
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds[0] == "Expr"  # the docstring
    assert isinstance(tree.body[0].value, ast.Constant)
    return kinds[1:]


def _only_imports_and_the_test(source: str) -> None:
    kinds = _module_statements(source)
    assert set(kinds[:-1]) <= {"Import", "ImportFrom"}, kinds
    assert kinds[-1] == "FunctionDef", kinds
    tree = ast.parse(source)
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "os" not in imported
    assert "os" not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


@pytest.mark.parametrize(
    "fields",
    [
        {"exception": {"type": "ValueError", "message": "bad coupon" + INJECTED}},
        {"exception": {"type": "ValueError", "message": {"@t": "str", "v": "x" + INJECTED}}},
        {"exception": {"type": "ValueError", "message": "bad\rimport os\u2028x\x85y"}},
        {"source": {"service": "shop" + INJECTED, "host": "web-1"}},
        {"source": {"service": "shop", "host": "web-1" + INJECTED}},
        {"hit_id": 'h"""; import os; os.system("echo PWNED"); """'},
        {"hit_id": "h\\"},
        {"probe_id": "p" + INJECTED, "signature": "s" + INJECTED},
    ],
    ids=[
        "message",
        "typed-message",
        "line-breaks",
        "service",
        "host",
        "hit-id",
        "backslash",
        "ids",
    ],
)
def test_production_texts_cannot_add_code_to_the_written_test(fields: dict[str, Any]) -> None:
    source = write_test(_hit(**fields), {"expect": "result >= 0"})
    _only_imports_and_the_test(source)


def test_the_production_message_is_still_shown_escaped() -> None:
    source = write_test(_hit(exception={"type": "ValueError", "message": "bad\ncoupon"}))
    assert "# production: raised ValueError: bad\\ncoupon" in source


@pytest.mark.parametrize("name", ["amount = 1; import os; x", "not an identifier", "class", ""])
def test_an_argument_name_that_is_not_an_identifier_is_refused(name: str) -> None:
    hit = _hit(arguments={"values": {name: 5}, "names": [name], "positional": 1})
    with pytest.raises(RegressionError, match="not a Python identifier"):
        write_test(hit)


@pytest.mark.parametrize("field", ["varargs", "varkw"])
def test_a_star_argument_name_that_is_not_an_identifier_is_refused(field: str) -> None:
    bad = "rest); import os; (x"
    hit = _hit(
        arguments={"values": {"amount": 5, bad: []}, "names": ["amount", bad], "positional": 1}
    )
    hit["arguments"][field] = bad
    with pytest.raises(RegressionError, match="not a Python identifier"):
        write_test(hit)


def test_a_rebuilt_argument_is_written_as_a_python_literal() -> None:
    # An object with a bool attribute: written as JSON, `true` was a NameError in the test.
    node = {"@t": "shop.User", "@attrs": {"active": True, "note": None, "name": "bob"}}
    hit = _hit(arguments={"values": {"user": node}, "names": ["user"], "positional": 1})
    source = write_test(hit)
    _only_imports_and_the_test(source)
    calls = [
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "rebuild"
    ]
    assert len(calls) == 1
    assert ast.literal_eval(calls[0].args[0]) == node
