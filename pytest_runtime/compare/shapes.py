"""Structural shapes of captured states: types, keys, nullness and bucketed lengths.

A state (the ``captures`` of one hit, in the typed JSON encoding) is walked once into a set of
*features*: ``(path, "t", type name)`` for every node, ``(path, "n", length bucket)`` for every
container, ``(path, "keys", key set)`` for every record inside a list and ``(path, "o",
marker)`` for a node the sensor did not expand. The frozen set of
features is the state's shape; hits are grouped by it, so the comparison works on distinct
shapes (a handful) rather than on pairs of hits (millions).

Paths read like Python: ``order.items[].price``; ``[]`` stands for every item of a sequence and
``{}`` for every value of a mapping whose keys are data (numbers, ids) rather than field names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_runtime.compare.decode import MARKERS

__all__ = [
    "Feature",
    "Leaf",
    "ShapeWalker",
    "children_of_opaque",
    "item_path",
    "key_path",
    "length_bucket",
    "map_path",
    "normalize_pattern",
    "parent_of",
]

Feature = tuple[str, str, str]
#: A scalar seen at a path: (path, type name, encoded value).
Leaf = tuple[str, str, Any]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Keys that are data, not field names: numbers, long hex strings and UUIDs.
_DATA_KEY = re.compile(r"-?\d+\Z|[0-9a-fA-F-]{16,}\Z")
_LEAF_TYPES = frozenset({str, int, float, bool})
_SCALAR_TYPES = frozenset(
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
# Child paths per parent path; bounded so that hostile keys cannot grow it forever.
_KEYCACHE_MAX = 10_000
_BUCKETS = ((0, "0"), (1, "1"), (10, "2-10"), (100, "11-100"), (1000, "101-1000"))


def length_bucket(n: int) -> str:
    """The length class of a container: 0, 1, 2-10, 11-100, 101-1000 or 1001+."""
    for bound, name in _BUCKETS:
        if n <= bound:
            return name
    return "1001+"


def key_path(path: str, key: str) -> str:
    """The path of a mapping key or attribute below ``path``."""
    if _DATA_KEY.match(key):
        return path + "{}"
    if _IDENT.match(key):
        return f"{path}.{key}" if path else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{path}["{escaped}"]'


def item_path(path: str) -> str:
    """The path that stands for every item of the sequence at ``path``."""
    return path + "[]"


def map_path(path: str) -> str:
    """The path that stands for every value of the data-keyed mapping at ``path``."""
    return path + "{}"


_PARENT = re.compile(r'(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\]|\{\}|\["(?:[^"\\]|\\.)*"\])\Z')


def parent_of(path: str) -> str | None:
    """The path one level up, or None for a top-level capture name."""
    match = _PARENT.search(path)
    if match is None or match.start() == 0:
        return None
    return path[: match.start()]


_DEEPDIFF_PART = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]|\[(\d+)\]|\.(\w+)")


def normalize_pattern(pattern: str) -> str:
    """Accept ``a.b[].c``, ``captures.a.b``, globs and deepdiff's ``root['a'][0]``; return ours."""
    text = pattern.strip()
    # A hit's state lives under "captures": accept paths written from the hit's point of view.
    if text.startswith("captures."):
        text = text[len("captures.") :]
    if not text.startswith("root"):
        return text
    out = ""
    for key, key2, index, attr in _DEEPDIFF_PART.findall(text[4:]):
        out = item_path(out) if index else key_path(out, key or key2 or attr)
    return out


@dataclass(slots=True)
class ShapeWalker:
    """Walks states into features and leaves; remembers which paths are normalized to a type."""

    patterns: tuple[str, ...] = ()
    _normalized: dict[str, bool] = field(default_factory=dict)
    #: path -> the path one level up (only paths below a mapping key or attribute)
    parents: dict[str, str] = field(default_factory=dict)
    _keycache: dict[str, dict[Any, str]] = field(default_factory=dict)
    _keysets: dict[tuple[Any, ...], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.patterns = tuple(sorted({normalize_pattern(p) for p in self.patterns if p.strip()}))

    def is_normalized(self, path: str) -> bool:
        """True when a declared ignore or noise pattern covers ``path`` (or one of its parents)."""
        cached = self._normalized.get(path)
        if cached is None:
            cached = any(
                path == p
                or fnmatch.fnmatchcase(path, p)
                or path.startswith((p + ".", p + "[", p + "{"))
                for p in self.patterns
            )
            self._normalized[path] = cached
        return cached

    def walk(self, captures: Mapping[str, Any] | None) -> tuple[frozenset[Feature], list[Leaf]]:
        """The shape of one state and its scalar leaves (leaves under normalized paths left out)."""
        sink: dict[str, list[tuple[int, str, Any]]] = {}
        shape = self.walk_into(captures, 0, sink)
        leaves = [(path, t, v) for path, items in sink.items() for _, t, v in items]
        return shape, leaves

    def walk_into(
        self,
        captures: Mapping[str, Any] | None,
        idx: int,
        sink: dict[str, list[tuple[int, str, Any]]],
    ) -> frozenset[Feature]:
        """The shape of one state; its leaves go to ``sink[path]`` as ``(idx, type, value)``.

        This is the hot loop of a comparison (every node of every hit passes here once), so it
        is written for speed: closures over locals, exact-type checks, a cache of child paths.
        """
        feats: set[Feature] = set()
        add = feats.add
        keycache = self._keycache
        keysets = self._keysets
        parents = self.parents
        normalized = self.is_normalized if self.patterns else None
        sequences = _SEQUENCES
        scalar_types = _SCALAR_TYPES
        text_scalars = _SCALAR_TYPES
        markers = MARKERS

        def child_path(path: str, key: str) -> str:
            sub = key_path(path, key)
            if not sub.endswith("{}") and sub not in parents:
                parents[sub] = path
            return sub

        def leaf(path: str, tname: str, raw: Any) -> None:
            bucket = sink.get(path)
            if bucket is None:
                sink[path] = [(idx, tname, raw)]
            else:
                bucket.append((idx, tname, raw))

        def fields(mapping: dict[Any, Any], path: str, depth: int) -> None:
            # Field names describe a record; their count says nothing the keys do not. A
            # mapping keyed by data (ids, numbers) is a collection: its length class counts.
            counted = not mapping
            known = keycache.get(path)
            if known is None:
                known = keycache[path] = {}
            if path[-1:] == "]" and path.endswith("[]"):
                # Items of a list are unioned into one path; their key sets are kept too, so
                # that an item lacking a key every tested item had is still seen.
                keys = tuple(mapping)
                keyset = keysets.get(keys)
                if keyset is None:
                    keyset = "\x1f".join(sorted(str(k) for k in keys))
                    if len(keysets) < _KEYCACHE_MAX:
                        keysets[keys] = keyset
                add((path, "keys", keyset))
            for key, value in mapping.items():
                sub = known.get(key)
                if sub is None:
                    sub = child_path(path, key if type(key) is str else str(key))
                    if len(known) < _KEYCACHE_MAX:
                        known[key] = sub
                if not counted and sub[-1] == "}":
                    counted = True
                # Inlined scalar case: most nodes are scalars, and a call costs more than this.
                cls = type(value)
                if (cls is str or cls is int or cls is float or cls is bool) and (
                    normalized is None or not normalized(sub)
                ):
                    tname = cls.__name__
                    add((sub, "t", tname))
                    bucket = sink.get(sub)
                    if bucket is None:
                        sink[sub] = [(idx, tname, value)]
                    else:
                        bucket.append((idx, tname, value))
                    continue
                if cls is dict and len(value) == 2 and normalized is None:
                    # Inlined typed scalar ({"@t": "decimal.Decimal", "v": "12.50"}).
                    tname = value.get("@t")
                    raw = value.get("v")
                    if (
                        type(tname) is str
                        and tname in text_scalars
                        and type(raw) is str
                        and not (tname == "int" or tname == "float")
                    ):
                        add((sub, "t", tname))
                        bucket = sink.get(sub)
                        if bucket is None:
                            sink[sub] = [(idx, tname, raw)]
                        else:
                            bucket.append((idx, tname, raw))
                        continue
                node(value, sub, depth)
            if counted:
                add((path, "n", length_bucket(len(mapping))))

        def node(x: Any, path: str, depth: int) -> None:
            cls = type(x)
            if x is None:
                add((path, "t", "None"))
                return
            if normalized is not None and normalized(path):
                add((path, "t", _type_name(x)))
                return
            if cls is str or cls is int or cls is float or cls is bool:
                tname = cls.__name__
                add((path, "t", tname))
                leaf(path, tname, x)
                return
            if depth > 64:
                add((path, "o", "@depth"))
                return
            if cls is list:
                add((path, "t", "list"))
                add((path, "n", length_bucket(len(x))))
                sub = path + "[]"
                for item in x:
                    node(item, sub, depth + 1)
                return
            if cls is not dict:
                add((path, "t", cls.__name__))
                return
            tname = x.get("@t")
            if tname is None:
                add((path, "t", "dict"))
                fields(x, path, depth + 1)
                return
            if type(tname) is not str:
                tname = str(tname)
            add((path, "t", tname))
            if len(x) > 2 or "v" not in x:
                for marker in markers:
                    if marker in x:
                        add((path, "o", marker))
                        return
            value = x.get("v")
            if tname in scalar_types and "@trunc" not in x:
                if type(value) in _LEAF_TYPES:  # corrupt evidence may put anything in "v"
                    if tname == "int" or tname == "float":
                        # A big int or a nan/inf as text: the leaf holds the number itself,
                        # so that every "int" and "float" leaf is a number.
                        value = _number_from_text(tname, value)
                        if value is None:
                            return
                    leaf(path, tname, value)
                return
            if tname == "dict":
                if type(value) is dict:
                    fields(value, path, depth + 1)
                else:
                    pairs = x.get("items")
                    if type(pairs) is not list:
                        pairs = []
                    add((path, "n", length_bucket(len(pairs))))
                    sub = path + "{}"
                    for pair in pairs:
                        if isinstance(pair, list) and len(pair) == 2:
                            add((sub, "k", _type_name(pair[0])))
                            node(pair[1], sub, depth + 1)
                return
            if tname in sequences:
                length = x.get("@len")
                items = value if type(value) is list else []
                add((path, "n", length_bucket(length if type(length) is int else len(items))))
                sub = path + "[]"
                for item in items:
                    node(item, sub, depth + 1)
                return
            attrs = x.get("@attrs")
            if type(attrs) is dict:
                fields_attrs(attrs, path, depth + 1)
                return
            if type(value) in _LEAF_TYPES and not x.get("@trunc"):
                # An enum member, a function or class name: a typed scalar.
                leaf(path, tname, value)

        def fields_attrs(attrs: dict[Any, Any], path: str, depth: int) -> None:
            for key, value in attrs.items():
                node(value, child_path(path, str(key)), depth)

        if captures:
            for name, value in captures.items():
                node(value, child_path("", str(name)), 0)
        return frozenset(feats)


def _number_from_text(tname: str, value: Any) -> int | float | None:
    try:
        return int(value) if tname == "int" else float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _type_name(node: Any) -> str:
    from pytest_runtime.compare.decode import type_name_of

    return type_name_of(node)


def children_of_opaque(path: str, opaque: Iterable[str]) -> bool:
    """True when ``path`` lies below one of the ``opaque`` paths (whose content is unknown)."""
    return any(path.startswith((o + ".", o + "[", o + "{")) for o in opaque)
