"""Structural shapes of captured states: types, keys, nullness and bucketed lengths.

A state (the ``captures`` of one hit, in the typed JSON encoding) is walked once into a set of
*features*: ``(path, "t", type name)`` for every node, ``(path, "n", length bucket)`` for every
container and ``(path, "o", marker)`` for a node the sensor did not expand. The frozen set of
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
_SEQUENCES = frozenset({"list", "tuple", "set", "frozenset", "collections.deque", "deque"})
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
        feats: set[Feature] = set()
        leaves: list[Leaf] = []
        if captures:
            for name, node in captures.items():
                self._node(node, key_path("", str(name)), feats, leaves, 0)
        return frozenset(feats), leaves

    def _node(
        self, node: Any, path: str, feats: set[Feature], leaves: list[Leaf], depth: int
    ) -> None:
        # Exact-type checks first: they are the common case and the cheapest.
        cls = type(node)
        if node is None:
            feats.add((path, "t", "None"))
            return
        if self.patterns and self.is_normalized(path):
            feats.add((path, "t", _type_name(node)))
            return
        if cls is str or cls is int or cls is float or cls is bool:
            tname = cls.__name__
            feats.add((path, "t", tname))
            leaves.append((path, tname, node))
            return
        if depth > 64:
            feats.add((path, "o", "@depth"))
            return
        if cls is list:
            self._sequence(node, "list", len(node), path, feats, leaves, depth)
            return
        if cls is not dict:
            feats.add((path, "t", cls.__name__))
            return
        tname = node.get("@t")
        if tname is None:
            feats.add((path, "t", "dict"))
            self._fields(node, path, feats, leaves, depth)
            return
        tname = str(tname)
        feats.add((path, "t", tname))
        for marker in MARKERS:
            if marker in node:
                feats.add((path, "o", marker))
                return
        value = node.get("v")
        if tname in _SEQUENCES:
            length = node.get("@len")
            items = value if isinstance(value, list) else []
            n = length if isinstance(length, int) else len(items)
            self._sequence(items, None, n, path, feats, leaves, depth)
            return
        if tname == "dict":
            if isinstance(value, dict):
                self._fields(value, path, feats, leaves, depth)
            else:
                pairs = node.get("items") or []
                feats.add((path, "n", length_bucket(len(pairs))))
                child_path = map_path(path)
                for pair in pairs:
                    if isinstance(pair, list) and len(pair) == 2:
                        feats.add((child_path, "k", _type_name(pair[0])))
                        self._node(pair[1], child_path, feats, leaves, depth + 1)
            return
        attrs = node.get("@attrs")
        if isinstance(attrs, dict):
            for key, child in attrs.items():
                self._child(node_path := key_path(path, str(key)), path)
                self._node(child, node_path, feats, leaves, depth + 1)
            return
        if "v" in node and not node.get("@trunc"):
            # Decimal, datetime, UUID, enum, big int, nan: a typed scalar.
            leaves.append((path, tname, value))

    def _sequence(
        self,
        items: list[Any],
        tname: str | None,
        n: int,
        path: str,
        feats: set[Feature],
        leaves: list[Leaf],
        depth: int,
    ) -> None:
        if tname is not None:
            feats.add((path, "t", tname))
        feats.add((path, "n", length_bucket(n)))
        child = path + "[]"
        for item in items:
            self._node(item, child, feats, leaves, depth + 1)

    def _fields(
        self,
        fields: dict[str, Any],
        path: str,
        feats: set[Feature],
        leaves: list[Leaf],
        depth: int,
    ) -> None:
        # Field names describe a record; their count says nothing the keys do not. A mapping
        # keyed by data (ids, numbers) is a collection: its length class counts.
        counted = not fields
        for key, child in fields.items():
            node_path = key_path(path, str(key))
            if node_path.endswith("{}"):
                counted = True
            else:
                self._child(node_path, path)
            self._node(child, node_path, feats, leaves, depth + 1)
        if counted:
            feats.add((path, "n", length_bucket(len(fields))))

    def _child(self, path: str, parent: str) -> None:
        if path not in self.parents:
            self.parents[path] = parent


def _type_name(node: Any) -> str:
    from pytest_runtime.compare.decode import type_name_of

    return type_name_of(node)


def children_of_opaque(path: str, opaque: Iterable[str]) -> bool:
    """True when ``path`` lies below one of the ``opaque`` paths (whose content is unknown)."""
    return any(path.startswith((o + ".", o + "[", o + "{")) for o in opaque)
