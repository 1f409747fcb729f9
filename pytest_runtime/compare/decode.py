"""Decode the sensor's typed JSON encoding into comparable Python values for deepdiff.

Decimals, dates, times, UUIDs and big ints become the real types (so that deepdiff sees a type
change from ``int`` to ``Decimal``); user objects become instances of a per-type class whose
name is the encoded type name; values the sensor did not expand (depth, cycle, budget, error,
redacted, truncated) become :class:`Marked` values, so the marker stays visible in a diff.
Nothing here runs code from the captured program: only type names and strings are read.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MARKERS", "DecodedObject", "Marked", "TypeOnly", "decode", "type_name_of"]

#: Marker keys of the encoding that mean "this value is not (fully) here".
MARKERS: tuple[str, ...] = ("@budget", "@cycle", "@deadline", "@depth", "@error", "@redacted")

_CLASS_CACHE: dict[str, type[DecodedObject]] = {}
# Bounded: a hostile or huge evidence file must not grow the process without bound.
_CLASS_CACHE_MAX = 2048


class DecodedObject:
    """Base of the per-type classes that stand for captured user objects."""

    _type_name = "object"

    def __init__(self, attrs: Mapping[str, Any]) -> None:
        self.__dict__.update(attrs)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self._type_name)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items()))
        return f"{self._type_name}({inner})"


class Marked:
    """A value the sensor did not capture in full: its type name, markers and what remains."""

    __slots__ = ("markers", "type_name", "value")

    def __init__(self, type_name: str, markers: tuple[tuple[str, Any], ...], value: Any) -> None:
        self.type_name = type_name
        self.markers = markers
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Marked) and (self.type_name, self.markers, self.value) == (
            other.type_name,
            other.markers,
            other.value,
        )

    def __hash__(self) -> int:
        return hash((self.type_name, self.markers))

    def __repr__(self) -> str:
        marks = " ".join(f"{k[1:]}={v!r}" for k, v in self.markers)
        if self.value is None:
            return f"<{self.type_name} {marks}>"
        return f"<{self.type_name} {marks} {self.value!r}>"


class TypeOnly:
    """A value normalized to its type (declared ignore path or detected noise)."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypeOnly) and self.type_name == other.type_name

    def __hash__(self) -> int:
        return hash(self.type_name)

    def __repr__(self) -> str:
        return f"<any {self.type_name}>"


def _object_class(type_name: str) -> type[DecodedObject]:
    cls = _CLASS_CACHE.get(type_name)
    if cls is None:
        module, _, qual = type_name.rpartition(".")
        name = qual or type_name
        cls = type(name, (DecodedObject,), {"_type_name": type_name, "__module__": module or ""})
        cls.__qualname__ = name
        if len(_CLASS_CACHE) < _CLASS_CACHE_MAX:
            _CLASS_CACHE[type_name] = cls
    return cls


def type_name_of(node: Any) -> str:
    """The type name of one encoded value (``None``, ``bool``, ``int``, ..., or its ``@t``)."""
    if node is None:
        return "None"
    if node is True or node is False:
        return "bool"
    if isinstance(node, dict):
        return str(node.get("@t", "dict"))
    if isinstance(node, list):
        return "list"
    return type(node).__name__


def _scalar(type_name: str, v: Any) -> Any:
    """Real values for the well-known scalar types; None when the text does not parse."""
    try:
        if type_name == "decimal.Decimal":
            return decimal.Decimal(str(v))
        if type_name == "datetime.datetime":
            return datetime.datetime.fromisoformat(str(v))
        if type_name == "datetime.date":
            return datetime.date.fromisoformat(str(v))
        if type_name == "datetime.time":
            return datetime.time.fromisoformat(str(v))
        if type_name == "datetime.timedelta":
            return datetime.timedelta(seconds=float(v))
        if type_name == "uuid.UUID":
            return uuid.UUID(str(v))
        if type_name == "int":
            return int(str(v))
        if type_name == "float":
            return float(str(v))
    except (ValueError, ArithmeticError, OverflowError, TypeError):
        return None
    return None


_SCALARS = frozenset(
    {
        "decimal.Decimal",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "uuid.UUID",
        "int",
        "float",
    }
)
_SEQUENCES = frozenset({"list", "tuple", "set", "frozenset", "collections.deque", "deque"})


def _as_list(value: Any) -> list[Any]:
    # Evidence may be hand-written or corrupt: a wrong container is read as empty, not fatal.
    return value if isinstance(value, list) else []


def _hashable_key(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key


def decode(
    node: Any,
    *,
    normalize: Callable[[str], bool] | None = None,
    path: str = "",
    _depth: int = 0,
) -> Any:
    """Turn one typed-JSON value into a Python value deepdiff can compare.

    ``normalize(path)`` returns True for paths (in the comparison's path syntax, see
    :func:`pytest_runtime.compare.shapes.key_path`) whose value is replaced by :class:`TypeOnly`.
    """
    from pytest_runtime.compare.shapes import item_path, key_path, map_path

    if normalize is not None and path and normalize(path):
        return TypeOnly(type_name_of(node))
    if _depth > 64:
        # Evidence is bounded by the sensor, but a hand-written file may not be.
        return Marked(type_name_of(node), (("@depth", True),), None)
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if isinstance(node, list):
        return [
            decode(x, normalize=normalize, path=item_path(path), _depth=_depth + 1) for x in node
        ]
    if not isinstance(node, dict):
        return repr(node)
    if "@t" not in node:
        return {
            str(k): decode(v, normalize=normalize, path=key_path(path, str(k)), _depth=_depth + 1)
            for k, v in node.items()
        }
    type_name = str(node["@t"])
    markers = tuple((k, node[k]) for k in MARKERS if k in node)
    if node.get("@trunc"):
        markers += (("@trunc", True), ("@len", node.get("@len")))
    if markers and (
        any(k != "@trunc" and k != "@len" for k, _ in markers) or type_name in ("str", "bytes")
    ):
        value = node.get("v") if isinstance(node.get("v"), str) else None
        return Marked(type_name, markers, value)
    if type_name in _SCALARS:
        value = _scalar(type_name, node.get("v"))
        return value if value is not None else Marked(type_name, (("@error", "parse"),), None)
    if type_name == "bytes":
        return str(node.get("v", "")).encode("utf-8", "backslashreplace")
    if type_name in _SEQUENCES or (isinstance(node.get("v"), list) and "@attrs" not in node):
        items = [
            decode(x, normalize=normalize, path=item_path(path), _depth=_depth + 1)
            for x in _as_list(node.get("v"))
        ]
        if type_name == "tuple":
            return tuple(items)
        if markers:
            return Marked(type_name, markers, items)
        return items
    if type_name == "dict":
        if isinstance(node.get("v"), dict):
            return {
                str(k): decode(
                    v, normalize=normalize, path=key_path(path, str(k)), _depth=_depth + 1
                )
                for k, v in node["v"].items()
            }
        result: dict[Any, Any] = {}
        for pair in _as_list(node.get("items")):
            if isinstance(pair, list) and len(pair) == 2:
                key = _hashable_key(decode(pair[0], _depth=_depth + 1))
                result[key] = decode(
                    pair[1], normalize=normalize, path=map_path(path), _depth=_depth + 1
                )
        return result
    if isinstance(node.get("@attrs"), dict):
        attrs = {
            str(k): decode(v, normalize=normalize, path=key_path(path, str(k)), _depth=_depth + 1)
            for k, v in node["@attrs"].items()
        }
        return _object_class(type_name)(attrs)
    if "v" in node:
        # enums, functions, classes, modules: the name is the value.
        return _object_class(type_name)({"value": node["v"]})
    return _object_class(type_name)({})
