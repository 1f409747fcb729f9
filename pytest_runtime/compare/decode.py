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

__all__ = [
    "MARKERS",
    "Constructor",
    "DecodedObject",
    "Marked",
    "NotRebuildable",
    "TypeOnly",
    "decode",
    "rebuild",
    "resolve_type",
    "type_name_of",
]

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
    normalize: Callable[[str], bool | str] | None = None,
    path: str = "",
    _depth: int = 0,
) -> Any:
    """Turn one typed-JSON value into a Python value deepdiff can compare.

    ``normalize(path)`` returns True for paths (in the comparison's path syntax, see
    :func:`pytest_runtime.compare.shapes.key_path`) whose value is replaced by :class:`TypeOnly`;
    a string instead names the kind that stands for any non-None value there (``a stream``).
    """
    from pytest_runtime.compare.shapes import item_path, key_path, map_path

    if normalize is not None and path:
        label = normalize(path)
        if isinstance(label, str) and label:
            return TypeOnly(label) if node is not None else None
        if label:
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


# --------------------------------------------------------------------------- rebuilding values
#
# ``decode`` above gives values for *comparison* (user objects stand in as DecodedObject). The
# functions below rebuild the *real* values a function can be called with (replay, strategies,
# regression tests), and refuse what cannot be rebuilt whole: a cut, redacted or unreadable
# value, or a user object no constructor is known for, is a NotRebuildable naming why.

#: A constructor of a user type: receives the rebuilt fields (``@attrs``) or ``{"value": v}``.
Constructor = Callable[[dict[str, Any]], Any]

_MARKER_WHY = {
    "@redacted": "redacted",
    "@depth": "not expanded (max_depth, or an ORM's bookkeeping)",
    "@cycle": "a reference cycle",
    "@budget": "not captured (max_bytes spent)",
    "@deadline": "not captured (deadline_ms passed)",
    "@error": "unreadable",
}


class NotRebuildable(Exception):
    """A captured value that cannot be rebuilt whole; ``kind`` groups the reasons in reports.

    ``kind`` is one of ``redacted``, ``truncated``, ``no-constructor``, ``not-captured``
    (depth, cycle, budget, deadline, unreadable) and ``unsupported``; ``path`` names where in
    the state the value was (``coupon``, ``order.items[0]``).
    """

    def __init__(self, kind: str, path: str, why: str) -> None:
        self.kind = kind
        self.path = path
        self.why = why
        super().__init__(f"{path or 'value'}: {why}")


def resolve_type(type_name: str) -> Any:
    """The class (or function) named ``module.QualName``, from modules already imported.

    Evidence never makes the test process import anything: a name whose module is not in
    ``sys.modules`` is not resolved (None).
    """
    import sys

    parts = type_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: Any = module
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    if len(parts) == 1:
        import builtins

        return getattr(builtins, type_name, None)
    return None


def rebuild(
    node: Any,
    *,
    constructors: Mapping[str, Constructor] | None = None,
    path: str = "",
    _depth: int = 0,
) -> Any:
    """Rebuild the real Python value of one typed-JSON value (docs/reference/encoding.md).

    Builtins, ``Decimal``, ``datetime``/``date``/``time`` (a UTC offset becomes a fixed-offset
    ``timezone``), ``timedelta``, ``UUID``, enums, dataclasses and named tuples are rebuilt from
    their classes in the test process; other user types only through ``constructors`` (type
    name -> callable). Raise :class:`NotRebuildable` for anything that was not captured whole.
    """
    from pytest_runtime.compare.shapes import item_path, key_path

    if _depth > 64:
        raise NotRebuildable("not-captured", path, "nested deeper than 64 levels")
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if isinstance(node, list):  # only inside hand-written evidence: read as a list
        return [
            rebuild(x, constructors=constructors, path=item_path(path), _depth=_depth + 1)
            for x in node
        ]
    if not isinstance(node, dict):
        raise NotRebuildable("unsupported", path, f"a {type(node).__name__} in the evidence")
    if "@t" not in node:
        return {
            str(k): rebuild(
                v, constructors=constructors, path=key_path(path, str(k)), _depth=_depth + 1
            )
            for k, v in node.items()
        }
    type_name = str(node["@t"])
    for marker, why in _MARKER_WHY.items():
        if marker in node:
            detail = node[marker]
            if marker == "@redacted":
                raise NotRebuildable("redacted", path, f"redacted ({detail}): {type_name}")
            if marker == "@error":
                raise NotRebuildable("not-captured", path, f"unreadable {type_name}: {detail}")
            raise NotRebuildable("not-captured", path, f"{why}: {type_name}")
    if node.get("@trunc"):
        raise NotRebuildable(
            "truncated", path, f"truncated {type_name} (full size {node.get('@len')})"
        )
    if "@tz" in node:
        raise NotRebuildable(
            "unsupported",
            path,
            f"{type_name} with a tzinfo of type {node['@tz']} (its offset was never read)",
        )
    if constructors and type_name in constructors:
        fields = node.get("@attrs")
        if isinstance(fields, dict):
            values = {
                str(k): rebuild(
                    v, constructors=constructors, path=key_path(path, str(k)), _depth=_depth + 1
                )
                for k, v in fields.items()
            }
        else:
            raw = node.get("v", node.get("value"))
            values = {
                "value": rebuild(raw, constructors=constructors, path=path, _depth=_depth + 1)
            }
        try:
            return constructors[type_name](values)
        except Exception as exc:
            raise NotRebuildable(
                "no-constructor",
                path,
                f"the constructor registered for {type_name} failed: {type(exc).__name__}: {exc}",
            ) from exc
    return _rebuild_typed(node, type_name, constructors, path, _depth)


def _items(node: Mapping[str, Any], constructors: Any, path: str, depth: int) -> list[Any]:
    from pytest_runtime.compare.shapes import item_path

    raw = node.get("v")
    if not isinstance(raw, list):
        raise NotRebuildable("unsupported", path, f"{node.get('@t')} without its items")
    return [
        rebuild(x, constructors=constructors, path=item_path(path), _depth=depth + 1) for x in raw
    ]


def _float(raw: Any) -> float:
    return float(raw)


def _rebuild_typed(
    node: Mapping[str, Any],
    type_name: str,
    constructors: Mapping[str, Constructor] | None,
    path: str,
    depth: int,
) -> Any:
    import codecs
    import collections
    import dataclasses
    import enum

    from pytest_runtime.compare.shapes import key_path, map_path

    v = node.get("v")
    try:
        if type_name in _SCALARS:
            if type_name == "datetime.timedelta":
                return datetime.timedelta(seconds=float(str(v)))
            if type_name == "float":
                return float(str(v))
            value = _scalar(type_name, v)
            if value is None:
                raise NotRebuildable("unsupported", path, f"{type_name} {v!r} does not parse")
            return value
        if type_name == "str" and isinstance(v, str):
            return v
        if type_name in ("bytes", "bytearray") and isinstance(v, str):
            data = codecs.escape_decode(v.encode("ascii", "backslashreplace"))[0]
            if node.get("@len") is not None and len(data) != node.get("@len"):
                raise NotRebuildable("truncated", path, f"{type_name} of {node.get('@len')} bytes")
            return bytes(data) if type_name == "bytes" else bytearray(data)
        if type_name == "complex" and isinstance(v, list) and len(v) == 2:
            return complex(_float(v[0]), _float(v[1]))
        if type_name == "range" and isinstance(v, list) and len(v) == 3:
            return range(*(int(x) for x in v))
        if type_name in ("list", "tuple", "set", "frozenset", "collections.deque"):
            items = _items(node, constructors, path, depth)
            maker: Any = {
                "list": list,
                "tuple": tuple,
                "set": set,
                "frozenset": frozenset,
                "collections.deque": collections.deque,
            }[type_name]
            return maker(items)
        if type_name in ("dict", "collections.OrderedDict", "collections.Counter"):
            out: dict[Any, Any] = {}
            if isinstance(v, dict):
                for k, x in v.items():
                    out[str(k)] = rebuild(
                        x, constructors=constructors, path=key_path(path, str(k)), _depth=depth + 1
                    )
            else:
                for pair in node.get("items") or ():
                    if not (isinstance(pair, list) and len(pair) == 2):
                        raise NotRebuildable("unsupported", path, "a dict item that is not a pair")
                    key = rebuild(pair[0], constructors=constructors, path=path, _depth=depth + 1)
                    out[key] = rebuild(
                        pair[1], constructors=constructors, path=map_path(path), _depth=depth + 1
                    )
            if type_name == "collections.OrderedDict":
                return collections.OrderedDict(out)
            if type_name == "collections.Counter":
                return collections.Counter(out)
            return out
        if type_name in ("type", "function", "module", "method", "builtin_function_or_method"):
            import sys

            target = sys.modules.get(str(v)) if type_name == "module" else resolve_type(str(v))
            if target is None:
                raise NotRebuildable(
                    "no-constructor", path, f"{type_name} {v!r} is not loaded in the test process"
                )
            return target
    except NotRebuildable:
        raise
    except (ValueError, TypeError, ArithmeticError, OverflowError, KeyError) as exc:
        raise NotRebuildable("unsupported", path, f"{type_name}: {exc}") from exc

    cls = resolve_type(type_name)
    if not isinstance(cls, type):
        raise NotRebuildable(
            "no-constructor",
            path,
            f"no registered constructor for {type_name} (its class is not loaded in the test "
            "process, and no pytest_runtime_constructors hook names it)",
        )
    fields = node.get("@attrs")
    attrs: dict[str, Any] = {}
    if isinstance(fields, dict):
        attrs = {
            str(k): rebuild(
                x, constructors=constructors, path=key_path(path, str(k)), _depth=depth + 1
            )
            for k, x in fields.items()
        }
    try:
        if issubclass(cls, enum.Enum):
            if isinstance(v, str):
                if "|" in v:
                    members = [cls[name] for name in v.split("|")]
                    result = members[0]
                    for member in members[1:]:
                        result = result | member  # type: ignore[operator]
                    return result
                return cls[v]
            if "value" in node:
                return cls(rebuild(node["value"], constructors=constructors, path=path))
        if dataclasses.is_dataclass(cls):
            init = {f.name for f in dataclasses.fields(cls) if f.init}
            made = cls(**{k: x for k, x in attrs.items() if k in init})
            for k, x in attrs.items():
                if k not in init:
                    object.__setattr__(made, k, x)
            return made
        if issubclass(cls, tuple) and hasattr(cls, "_fields"):
            return cls(**attrs)
        if issubclass(cls, BaseException) and cls.__module__ == "builtins":
            args = attrs.get("args", ())
            return cls(*args)
        for base in (list, tuple, set, frozenset, dict, str, int, float, bytes):
            if issubclass(cls, base) and "v" in node:
                inner = _rebuild_typed(
                    {**node, "@t": base.__name__}, base.__name__, constructors, path, depth
                )
                built = cls(inner)
                for k, x in attrs.items():
                    setattr(built, k, x)
                return built
    except NotRebuildable:
        raise
    except Exception as exc:
        raise NotRebuildable(
            "no-constructor", path, f"{type_name} could not be built: {type(exc).__name__}: {exc}"
        ) from exc
    raise NotRebuildable(
        "no-constructor",
        path,
        f"no registered constructor for {type_name} (register one with the "
        "pytest_runtime_constructors hook)",
    )
