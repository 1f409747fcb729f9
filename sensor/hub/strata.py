"""Strata of a standing probe's hits: what makes two hits "the same kind of state".

A standing probe runs for weeks; the hub keeps a bounded, stratified sample of its hits
(:mod:`sensor.hub.store.sqlite`, ``reservoir``). The stratum of a hit is a short digest of
what a comparison tells apart: the outcome (expectation true, false or not evaluable, the
exception type, the line) and the structural shape of the captures with a value class per
leaf (negative, zero or positive numbers, empty or non-empty strings, ``None``, booleans,
container sizes by bucket, type names of typed values). Every distinct stratum gets examples
before a common one gets more, so a state seen 3 times in a million calls stays in the
sample.

The digest is bounded work per hit (depth and items walked are capped), reads only the JSON
the sensor sent (never user code), and is stable across hub versions of the same
``STRATUM_VERSION``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_STRATA",
    "MAX_VERSIONS",
    "OVERFLOW_STRATUM",
    "PER_STRATUM",
    "RESERVOIR_CAP",
    "STRATUM_VERSION",
    "describe",
    "stratum_of",
]

#: Bumped when the key changes: strata of another version are not merged with these.
STRATUM_VERSION = "1"
#: Hits kept per (standing probe, service version, stratum) before replacement sampling.
PER_STRATUM = 16
#: Hits kept per (standing probe, service version) in all: the sample's bound.
RESERVOIR_CAP = 512
#: Service versions kept per standing probe; a new one replaces the one heard from last.
MAX_VERSIONS = 4
#: Distinct strata counted per (standing probe, service version); further ones share one.
MAX_STRATA = 2048
#: The stratum that collects every new stratum past MAX_STRATA (counted, sampled like any).
OVERFLOW_STRATUM = "overflow"
_MAX_DEPTH = 6
_MAX_ITEMS = 16  # items of a list or keys of a dict walked per container
_MAX_PARTS = 512  # pieces of shape text per hit: bounds the work for a very wide capture


def _length_class(n: int) -> str:
    if n <= 1:
        return str(n)
    if n <= 10:
        return "few"
    if n <= 100:
        return "many"
    return "lots"


def _number_class(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "nan" if math.isnan(value) else "inf"
    if value < 0:
        return "neg"
    return "zero" if value == 0 else "pos"


def _shape(value: Any, depth: int, out: list[str]) -> None:
    if len(out) >= _MAX_PARTS:
        return
    if value is None:
        out.append("none")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int | float):
        out.append(f"{type(value).__name__}:{_number_class(value)}")
    elif isinstance(value, str):
        out.append("str:" + ("empty" if not value else "text"))
    elif depth >= _MAX_DEPTH:
        out.append("deep")
    elif isinstance(value, list):
        out.append(f"list:{_length_class(len(value))}[")
        seen: set[str] = set()
        for item in value[:_MAX_ITEMS]:
            part: list[str] = []
            _shape(item, depth + 1, part)
            text = ",".join(part)
            if text not in seen:  # a list of 100 ints is one element shape, not 100
                seen.add(text)
                out.append(text)
        out.append("]")
    elif isinstance(value, Mapping):
        type_name = value.get("@t")
        if isinstance(type_name, str):
            out.append("@" + type_name)
            for marker in ("@redacted", "@error", "@trunc", "@depth", "@budget", "@cycle"):
                if marker in value:
                    out.append(marker)
            inner = value.get("v", value.get("@attrs"))
            if isinstance(inner, int | float) and not isinstance(inner, bool):
                out.append(_number_class(inner))
            elif isinstance(inner, str):
                # a Decimal or a big int travels as text: its sign is its value class
                zero = inner.strip("-0.") == ""
                out.append("zero" if zero else "neg" if inner.startswith("-") else "pos")
            elif inner is not None:
                _shape(inner, depth + 1, out)
            return
        out.append("{")
        for key in sorted(str(k) for k in value)[:_MAX_ITEMS]:
            out.append(key + "=")
            _shape(value[key], depth + 1, out)
        out.append("}")
    else:
        out.append(type(value).__name__)


def describe(hit: Mapping[str, Any]) -> str:
    """The text the stratum digest is taken of (readable, for tests and debugging)."""
    out: list[str] = [f"v{STRATUM_VERSION}"]
    expect = hit.get("expect")
    if isinstance(expect, Mapping):
        ok = expect.get("ok")
        out.append("expect:" + ("true" if ok is True else "false" if ok is False else "error"))
    exception = hit.get("exception")
    if isinstance(exception, Mapping):
        out.append(f"raise:{exception.get('type')}")
    line = hit.get("line")
    if isinstance(line, int) and not isinstance(line, bool):
        out.append(f"line:{line}")
    captures = hit.get("captures")
    if isinstance(captures, Mapping):
        for name in sorted(str(k) for k in captures)[: _MAX_ITEMS * 4]:
            out.append(name + "=")
            _shape(captures[name], 0, out)
    return " ".join(out)


def stratum_of(hit: Mapping[str, Any]) -> str:
    """A 16-hex-digit digest of :func:`describe`."""
    return hashlib.blake2b(describe(hit).encode("utf-8", "replace"), digest_size=8).hexdigest()
