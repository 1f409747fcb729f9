"""Write a pytest test that reproduces one production hit.

The hit must carry the call's arguments: a hit of a ``replay=True`` probe (arguments read at
entry) or of an ``@entry`` probe. A hit of a plain ``@return`` probe holds the locals at return,
not what the call received, and is refused with that reason.

The test calls the function with the arguments written as literals (``Decimal('3.50')``,
``datetime.datetime(...)``, lists, dicts, ...), or, for a value that has none (a dataclass, an
enum, a user type), as a ``rebuild(...)`` of its typed encoding; it asserts the probe's
expectation (as a plain ``assert`` when it reads only the parameters and ``result``, else
through a ``runtime_probe`` marker that checks it inside the function's frame); and it names
the hit in a comment. It fails on the code that produced the hit (the expectation breaks, or the
undeclared exception is raised again) and passes once the code is fixed.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import keyword
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pytest_runtime.errors import RuntimeProbeError

__all__ = ["RegressionError", "find_hit", "literal", "write_test"]


class RegressionError(RuntimeProbeError, ValueError):
    """The hit cannot be turned into a regression test; the message says why."""


_NAME_RE = re.compile(r"[^A-Za-z0-9_]+")


def literal(value: Any, imports: set[str], depth: int = 0) -> str | None:
    """Python source that evaluates to ``value`` (None when it has no literal form here).

    ``imports`` collects the modules the source needs (``decimal``, ``datetime``, ``uuid``).
    """
    if depth > 32:
        return None
    t = type(value)
    if value is None or t is bool or t is int or t is str or t is bytes:
        return repr(value)
    if t is float:
        if math.isnan(value) or math.isinf(value):
            return f"float({str(value)!r})"
        return repr(value)
    if t is decimal.Decimal:
        imports.add("decimal")
        return f"decimal.Decimal({str(value)!r})"
    if t in (datetime.datetime, datetime.date, datetime.time, datetime.timedelta):
        tz = getattr(value, "tzinfo", None)
        if tz is not None and type(tz) is not datetime.timezone:
            return None
        imports.add("datetime")
        text = repr(value)
        return text if text.startswith("datetime.") else None
    if t is uuid.UUID:
        imports.add("uuid")
        return f"uuid.UUID({str(value)!r})"
    if t in (list, tuple, set, frozenset):
        items = [literal(x, imports, depth + 1) for x in value]
        if any(item is None for item in items):
            return None
        inner = ", ".join(items)  # type: ignore[arg-type]
        if t is list:
            return f"[{inner}]"
        if t is tuple:
            return f"({inner},)" if len(items) == 1 else f"({inner})"
        if not items:
            return "set()" if t is set else "frozenset()"
        return f"{{{inner}}}" if t is set else f"frozenset({{{inner}}})"
    if t is dict:
        pairs = []
        for k, x in value.items():
            key, item = literal(k, imports, depth + 1), literal(x, imports, depth + 1)
            if key is None or item is None:
                return None
            pairs.append(f"{key}: {item}")
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, enum.Enum):
        return None  # written as a rebuild: its class is found by the test process at run time
    return None


def _comment(text: str) -> str:
    """``text`` safe inside a ``#`` comment: every character that could end the line (``\\n``,
    ``\\r``, form feed, ...) or hide text is written as an escape (the text comes from
    production: an exception message holds what the service's users sent)."""
    from sensor.render import escape_text

    shown = escape_text(text)
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in shown)


def _docstring_text(text: str) -> str:
    """``text`` safe inside a triple-quoted docstring: a comment's escapes, then backslashes
    and quotes escaped (a hit id may hold ``\"\"\"``)."""
    return _comment(text).replace("\\", "\\\\").replace('"', '\\"')


def _identifier(name: object, hit_id: str) -> str:
    """``name`` if it can be written as a variable of the test, else RegressionError (argument
    names come from the hit, and the hit from a sensor)."""
    if type(name) is not str or not name.isidentifier() or keyword.iskeyword(name):
        raise RegressionError(
            f"hit {hit_id!r}: argument name {name!r} is not a Python identifier; the hit "
            "cannot be written as a test"
        )
    return name


def find_hit(evidence: Any, hit_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(hit, probe dict or None)`` of ``hit_id`` in an :class:`~pytest_runtime.evidence.
    Evidence`; RegressionError if it is not there."""
    for signature, hits in evidence.hits.items():
        for hit in hits:
            if hit.get("hit_id") == hit_id:
                return dict(hit), evidence.probes.get(signature)
    raise RegressionError(f"hit {hit_id!r}: not in the evidence read (no hit has that id)")


def _arguments(hit: Mapping[str, Any]) -> tuple[dict[str, Any], Mapping[str, Any]]:
    arguments = hit.get("arguments")
    if isinstance(arguments, Mapping) and isinstance(arguments.get("values"), Mapping):
        return dict(arguments["values"]), arguments
    location = str(hit.get("location", ""))
    if location.endswith("@entry") and isinstance(hit.get("captures"), Mapping):
        values = dict(hit["captures"])
        return values, {"values": values, "names": list(values), "positional": 0}
    raise RegressionError(
        f"hit {hit.get('hit_id')!r} at {location}: it holds no call arguments (a @return "
        "probe captures the locals at return, not what the call received); use a probe "
        "with replay=True, or one at @entry"
    )


def write_test(
    hit: Mapping[str, Any],
    probe: Mapping[str, Any] | None = None,
    *,
    constructors: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
) -> str:
    """The source of a pytest module reproducing ``hit`` (see the module doc)."""
    from pytest_runtime.compare.decode import NotRebuildable, rebuild
    from sensor.probes import Location

    hit_id = str(hit.get("hit_id") or "")
    if not hit_id:
        raise RegressionError("the hit has no hit_id: it cannot be named in the test")
    location = Location.parse(str(hit.get("location", "")))
    if location.module is None or location.qualname is None or "<locals>" in location.qualname:
        raise RegressionError(
            f"hit {hit_id!r} at {location}: a regression test needs a function the test can "
            "import by name (module:qualname, not a nested function or a file line)"
        )
    values, layout = _arguments(hit)
    imports: set[str] = set()
    needs_rebuild = False
    lines: list[str] = []
    for name in layout.get("names") or list(values):
        if name not in values:
            continue
        _identifier(name, hit_id)
        node = values[name]
        try:
            value = rebuild(node, constructors=constructors, path=name)
        except NotRebuildable as exc:
            if exc.kind != "no-constructor":
                raise RegressionError(
                    f"hit {hit_id!r} cannot be reproduced: argument {exc}"
                ) from exc
            value = None  # a user type: rebuilt by the test, where its module is imported
            source = None
        else:
            source = literal(value, imports)
        if source is None:
            needs_rebuild = True
            # A Python literal of the JSON node (JSON's true/false/null are not Python).
            node_literal = repr(json.loads(json.dumps(node, sort_keys=True)))
            source = f"rebuild({node_literal}, constructors=runtime_constructors)"
        lines.append(f"    {name} = {source}")
    for field in ("varargs", "varkw"):
        if layout.get(field):
            _identifier(layout[field], hit_id)
    call = _call(location.qualname, layout, values)
    expect = (probe or {}).get("expect")
    outcome = hit.get("outcome") or {}
    said = _production_said(hit, expect)
    test_name = "test_" + _NAME_RE.sub("_", f"{location.qualname}_production_hit_{hit_id}")
    test_name = test_name.replace(".", "_").strip("_").lower()
    params = set(layout.get("names") or values)
    reads = _names(expect) if expect else set()
    marker = ""
    body = list(lines)
    if expect and reads <= params | {"result"}:
        body.append(f"    result = {call}")
        body.append(f"    assert {expect}")
    else:
        if expect:
            marker = (
                f"@pytest.mark.runtime_probe({str(location).removesuffix('@return')!r}, "
                f"expect={expect!r})\n"
            )
        body.append(f"    {call}")
        if not expect and "raised" not in outcome:
            body.append(
                "    # no expectation known for this probe: the test only checks that the call "
                "returns"
            )
    owner = location.qualname.split(".")[0]
    header = [
        f'"""Regression test for production hit {_docstring_text(hit_id)} at {location}.',
        "",
        "Written by python -m pytest_runtime regression-test from the evidence; it fails on the",
        'code that produced the hit and passes once the code is fixed."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    header += [f"import {module}" for module in sorted(imports)]
    if marker:
        header.append("import pytest")
    if needs_rebuild:
        header.append("from pytest_runtime.compare.decode import rebuild")
    header.append(f"from {location.module} import {owner}")
    fixture = "runtime_constructors: dict[str, object]" if needs_rebuild else ""
    source = "\n".join(header).rstrip() + "\n\n\n"
    origin = (
        f"production hit {hit_id} (probe {hit.get('probe_id', '?')}, signature "
        f"{hit.get('signature', '?')}{_source(hit)})"
    )
    source += f"# {_comment(origin)}\n"
    source += f"# production: {_comment(said)}\n"
    source += marker
    source += f"def {test_name}({fixture}) -> None:\n"
    source += "\n".join(body) + "\n"
    return source


def _call(qualname: str, layout: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    """``f(price, coupon, currency=currency, *extra, **options)`` as production's call bound."""
    names = [n for n in layout.get("names") or list(values) if n in values]
    positional = int(layout.get("positional", 0))
    varargs, varkw = layout.get("varargs"), layout.get("varkw")
    parts: list[str] = []
    for index, name in enumerate(names):
        if name in (varargs, varkw):
            continue
        if index < positional:
            parts.append(name)
        else:
            parts.append(f"{name}={name}")
    if varargs and varargs in values:
        parts.append(f"*{varargs}")
    if varkw and varkw in values:
        parts.append(f"**{varkw}")
    return f"{qualname}({', '.join(parts)})"


def _names(expect: str) -> set[str]:
    try:
        from sensor.expressions import compile as compile_expression

        return set(compile_expression(expect).names)
    except Exception:
        return {"?"}  # unreadable here: checked through the marker instead


def _production_said(hit: Mapping[str, Any], expect: Any) -> str:
    from pytest_runtime.session import render_value

    outcome = hit.get("outcome") or {}
    if "raised" in outcome:
        exc = hit.get("exception") or {}
        message = exc.get("message")
        if isinstance(message, Mapping):
            message = message.get("v")
        return f"raised {outcome['raised']}: {str(message or '')[:120]}"
    text = (
        f"returned {render_value(outcome['returned'], 80)}"
        if "returned" in outcome
        else "the call's outcome was not recorded"
    )
    verdict = hit.get("expect")
    if expect and isinstance(verdict, Mapping):
        text += f"; the expectation {expect!r} was {verdict.get('ok')!r}"
    return text


def _source(hit: Mapping[str, Any]) -> str:
    source = hit.get("source")
    when = hit.get("ts")
    parts = []
    if isinstance(source, Mapping):
        service = source.get("service")
        host = source.get("host")
        if service:
            parts.append(f"service {service}")
        if host:
            parts.append(f"host {host}")
    if isinstance(when, int | float):
        parts.append(
            datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    return "; " + ", ".join(parts) if parts else ""
