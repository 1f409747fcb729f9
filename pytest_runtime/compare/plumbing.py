"""Server plumbing: the parts of a state that describe the server, not the request or the data.

A capture of a WSGI environ, an ASGI scope, a stream or a database handle holds, next to the
user's data, what the server put there: the test client's ``BytesIO`` where gunicorn has a
socket-backed ``Body``, ``REQUEST_URI`` from werkzeug's test client, ``gunicorn.socket`` and
``REMOTE_PORT`` from gunicorn, a ``SingletonThreadPool`` in a test engine where production has a
``QueuePool``. Those differ between any test run and any server by construction; compared as
data they were shape divergences (some ``high``) that were never bugs, and they pushed the
findings that were out of the summary.

The rule is drawn by container, from what the walked states show, with no configuration:

- In a **WSGI environ** (a mapping with ``REQUEST_METHOD`` and a ``wsgi.*`` key): the ``wsgi.*``
  keys but ``wsgi.url_scheme``, keys of server extensions (``gunicorn.*``, ``uwsgi.*``,
  ``werkzeug.*``, ...; PEP 3333 names extensions with such a prefix) and the keys only some
  servers set (:data:`WSGI_SERVER_KEYS`) are set aside: not compared at all. The connection's
  addresses (:data:`WSGI_ADDRESS_KEYS`) are compared by type only (a ``None`` where the tests
  had a ``str`` still diverges; a test environ that lacks one, as ``wsgiref``'s lacks
  ``REMOTE_ADDR``, does not).
  Everything else is the request and is compared as data: headers (``HTTP_*``),
  ``QUERY_STRING``, ``PATH_INFO``, ``REQUEST_METHOD``, ``CONTENT_*``, ``wsgi.url_scheme``, a
  middleware's keys.
- In an **ASGI scope** (a mapping with ``type`` and ``headers`` and ``asgi``, ``http_version``
  or ``raw_path``): :data:`ASGI_SERVER_KEYS` are set aside, :data:`ASGI_ADDRESS_KEYS` compared
  by type only; ``path``, ``query_string``, ``headers``, ``method``... are data.
- A **stream, socket or file** (:data:`STREAM_TYPES`) or a **database handle** (engine, pool,
  session, connection, cursor: :data:`DB_TYPES`), wherever it is: compared by kind. A path
  whose every type on both sides is of one kind (or ``None``) keeps its presence and its
  ``None`` (a stream that turns into ``None`` still diverges); which class it is and what it
  holds are set aside.

Nothing is dropped silently: the verdict lists every set-aside path whose content differed
between the tests and production (``plumbing``) and counts them all. ``CompareSettings.plumbing``
(the ``runtime_plumbing`` ini option, ``plumbing=False`` on a marker) turns the rule off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_runtime.compare.shapes import Feature

__all__ = [
    "ASGI_ADDRESS_KEYS",
    "ASGI_SERVER_KEYS",
    "DB_TYPES",
    "STREAM_TYPES",
    "WSGI_ADDRESS_KEYS",
    "WSGI_SERVER_KEYS",
    "WSGI_SERVER_PREFIXES",
    "Plumbing",
    "find_plumbing",
    "kind_of_type",
]

#: Environ keys only some servers (or test clients) set: the raw request line, the client's
#: port, the server's name and version.
WSGI_SERVER_KEYS = frozenset(
    {
        "REMOTE_PORT",
        "REQUEST_URI",
        "RAW_URI",
        "SERVER_SOFTWARE",
        "DOCUMENT_ROOT",
        "DOCUMENT_URI",
        "GATEWAY_INTERFACE",
        "SERVER_ADDR",
        "HTTPS",
        "UWSGI_ROUTER",
    }
)
#: Prefixes of server and test-client extension keys (PEP 3333: ``mod_wsgi.xxx``). A
#: middleware's own keys (``beaker.session``) are the application's and stay compared.
WSGI_SERVER_PREFIXES = (
    "gunicorn.",
    "uwsgi.",
    "werkzeug.",
    "waitress.",
    "mod_wsgi.",
    "gevent.",
    "eventlet.",
    "cheroot.",
    "meinheld.",
    "bjoern.",
)
#: The connection's addresses: the same type everywhere, values that only say where the
#: server listens and who connected (localhost in tests).
WSGI_ADDRESS_KEYS = frozenset(
    {"SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_HOST"}
)
#: Scope keys that describe the server and the transport (``server`` and ``client`` are
#: a list in starlette's test client and a tuple under uvicorn).
ASGI_SERVER_KEYS = frozenset({"asgi", "extensions", "server", "client"})
ASGI_ADDRESS_KEYS = frozenset({"http_version"})

#: Type names (exact, or a prefix ending in ``.``) of streams, sockets and files: a test
#: hands a ``BytesIO`` where the server hands a socket-backed reader.
STREAM_TYPES = (
    "_io.",
    "io.",
    "socket.socket",
    "ssl.SSLSocket",
    "ssl.SSLObject",
    "tempfile.SpooledTemporaryFile",
    "tempfile._TemporaryFileWrapper",
    "gunicorn.http.body.",
    "gunicorn.http.unreader.",
    "gunicorn.http.wsgi.FileWrapper",
    "gunicorn.http.wsgi.WSGIErrorsWrapper",
    "django.test.client.FakePayload",
    "django.core.handlers.wsgi.LimitedStream",
    "werkzeug.wsgi.LimitedStream",
    "_pytest.capture.",
    "waitress.buffers.",
    "uwsgi.",
)
#: Type names of database handles: engines, pools, sessions, connections, cursors. Rows and
#: results (``sqlalchemy.engine.row.Row``, ``sqlite3.Row``) are data and are not here.
DB_TYPES = (
    "sqlalchemy.engine.base.",
    "sqlalchemy.engine.url.",
    "sqlalchemy.engine.default.",
    "sqlalchemy.engine.interfaces.",
    "sqlalchemy.dialects.",
    "sqlalchemy.pool.",
    "sqlalchemy.orm.session.",
    "sqlalchemy.orm.scoping.",
    "sqlalchemy.ext.asyncio.engine.",
    "sqlalchemy.ext.asyncio.session.",
    "sqlite3.Connection",
    "sqlite3.Cursor",
    "psycopg.",
    "psycopg2.extensions.connection",
    "psycopg2.extensions.cursor",
    "psycopg_pool.",
    "asyncpg.connection.",
    "asyncpg.pool.",
    "pymysql.connections.",
    "pymysql.cursors.",
    "MySQLdb.connections.",
    "MySQLdb.cursors.",
    "aiosqlite.core.",
    "django.db.backends.",
    "django.db.utils.ConnectionHandler",
    "django.db.DefaultConnectionProxy",
    "django.utils.connection.",
    "redis.client.",
    "redis.connection.",
)
STREAM = "a stream"
DB = "a database handle"
_KINDS = ((STREAM, STREAM_TYPES), (DB, DB_TYPES))

_ATTR_CHILD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)\Z")
_KEY_CHILD = re.compile(r'\["((?:[^"\\]|\\.)*)"\]\Z')


def kind_of_type(type_name: str) -> str | None:
    """``a stream`` or ``a database handle`` for a captured type name, None otherwise."""
    for kind, names in _KINDS:
        for name in names:
            if type_name == name or (name.endswith(".") and type_name.startswith(name)):
                return kind
    return None


def _key_of(child: str, parent: str) -> str | None:
    """The mapping key or attribute name that leads from ``parent`` to ``child``."""
    tail = child[len(parent) :]
    match = _ATTR_CHILD.fullmatch(tail) or _KEY_CHILD.fullmatch(tail)
    if match is None:
        return None
    return match.group(1).replace('\\"', '"').replace("\\\\", "\\")


def _wsgi_rule(key: str) -> str | None:
    if key.startswith("wsgi.") and key != "wsgi.url_scheme":
        return "aside"
    if key in WSGI_SERVER_KEYS or key.startswith(WSGI_SERVER_PREFIXES):
        return "aside"
    if key in WSGI_ADDRESS_KEYS:
        return "typed"
    return None


def _asgi_rule(key: str) -> str | None:
    if key in ASGI_SERVER_KEYS:
        return "aside"
    if key in ASGI_ADDRESS_KEYS:
        return "typed"
    return None


def _under(path: str, root: str) -> bool:
    return path.startswith((root + ".", root + "[", root + "{"))


@dataclass(slots=True)
class Plumbing:
    """What a comparison sets aside, by path: found by :func:`find_plumbing`."""

    #: path -> why it is not compared (its subtree with it)
    aside: dict[str, str] = field(default_factory=dict)
    #: path -> its kind (``a stream``, ``a database handle``): compared by kind only
    kinds: dict[str, str] = field(default_factory=dict)
    #: path -> why its values are compared by type only
    typed: dict[str, str] = field(default_factory=dict)
    _cache: dict[str, str | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.aside or self.kinds or self.typed)

    def root_of(self, path: str) -> str | None:
        """The set-aside or kind path that holds ``path`` (itself included), or None."""
        try:
            return self._cache[path]
        except KeyError:
            pass
        found = None
        for root in (*self.aside, *self.kinds):
            if path == root or _under(path, root):
                found = root
                break
        if len(self._cache) < 100_000:
            self._cache[path] = found
        return found

    def hides(self, path: str) -> bool:
        """True when deepdiff's lines at ``path`` speak of plumbing only."""
        root = self.root_of(path)
        return root is not None and (root in self.aside or path != root)

    def normalized(self, path: str) -> bool | str:
        """For deepdiff: the kind at a kind path, True where only the type counts, else False."""
        kind = self.kinds.get(path)
        if kind is not None:
            return kind
        return path in self.typed or self.root_of(path) is not None

    def rewrite(
        self,
        shapes: Mapping[frozenset[Feature], list[int]],
        leaves: dict[str, list[tuple[int, str, Any]]],
    ) -> dict[frozenset[Feature], list[int]]:
        """The shapes without plumbing (kinds in place of classes); drop its leaves in place."""
        for path in list(leaves):
            root = self.root_of(path)
            if root is not None:
                del leaves[path]
        out: dict[frozenset[Feature], list[int]] = {}
        for shape, members in shapes.items():
            kept: set[Feature] = set()
            for feat in shape:
                path = feat[0]
                root = self.root_of(path)
                if root is None:
                    if path not in self.typed:
                        kept.add(feat)
                elif root in self.kinds and path == root and feat[1] == "t":
                    kept.add((path, "t", feat[2] if feat[2] == "None" else self.kinds[root]))
            key = frozenset(kept)
            group = out.get(key)
            if group is None:
                out[key] = list(members)
            else:
                group.extend(members)
        for members in out.values():
            members.sort()
        return out

    def differed(
        self, prod: Iterable[frozenset[Feature]], test: Iterable[frozenset[Feature]]
    ) -> dict[str, str]:
        """Set-aside paths whose features differ between production and the tests, with why."""
        sides: list[dict[str, set[Feature]]] = [{}, {}]
        for side, shapes in zip(sides, (prod, test), strict=True):
            for shape in shapes:
                for feat in shape:
                    root = self.root_of(feat[0])
                    if root is None and feat[0] in self.typed and feat[1] == "t":
                        root = feat[0]
                    if root is not None:
                        side.setdefault(root, set()).add(feat)
        out: dict[str, str] = {}
        for root in sorted(set(sides[0]) | set(sides[1])):
            if sides[0].get(root) != sides[1].get(root):
                if root in self.typed:
                    both = root in sides[0] and root in sides[1]
                    how = "compared by type" if both else "present on one side only"
                    out[root] = f"{self.typed[root]}: {how}"
                else:
                    out[root] = self.aside.get(root) or f"compared as {self.kinds[root]}"
        return out

    def odd_types(
        self,
        prod: Mapping[frozenset[Feature], list[int]],
        test: Iterable[frozenset[Feature]],
    ) -> list[tuple[str, str, list[int]]]:
        """``(path, type, production hits)`` where an address-like path (compared by type) has
        a type in production that no test-time state had there: ``None`` where tests had a
        ``str``. Presence is not compared (test environs often lack ``REMOTE_ADDR``), so the
        rewritten shapes leave these paths out and this finds their type changes."""
        if not self.typed:
            return []
        tested: dict[str, set[str]] = {}
        for shape in test:
            for path, what, value in shape:
                if what == "t" and path in self.typed:
                    tested.setdefault(path, set()).add(value)
        found: dict[tuple[str, str], list[int]] = {}
        for shape, members in prod.items():
            for path, what, value in shape:
                if what == "t" and path in tested and value not in tested[path]:
                    found.setdefault((path, value), []).extend(members)
        return [(path, tname, sorted(idxs)) for (path, tname), idxs in sorted(found.items())]


def find_plumbing(shapes: Iterable[frozenset[Feature]], parents: Mapping[str, str]) -> Plumbing:
    """The plumbing in the walked states of both sides (``shapes``; ``parents``: child -> parent).

    Only the distinct shapes are read, so this costs nothing per hit.
    """
    types: dict[str, set[str]] = {}
    for shape in shapes:
        for path, what, value in shape:
            if what == "t":
                types.setdefault(path, set()).add(value)
    found = Plumbing()
    if not types:
        return found
    children: dict[str, dict[str, str]] = {}
    for child, parent in parents.items():
        if child in types:
            key = _key_of(child, parent)
            if key is not None:
                children.setdefault(parent, {})[key] = child
    for parent in sorted(children):
        keys = children[parent]
        if "REQUEST_METHOD" in keys and any(k.startswith("wsgi.") for k in keys):
            rule, what = _wsgi_rule, "WSGI"
        elif "type" in keys and "headers" in keys and keys.keys() & {"asgi", "http_version"}:
            rule, what = _asgi_rule, "ASGI"
        else:
            continue
        for key in sorted(keys):
            verdict = rule(key)
            if verdict == "aside":
                found.aside[keys[key]] = f"{what} server key"
            elif verdict == "typed":
                found.typed[keys[key]] = f"{what} connection address"
    for path in sorted(types):
        if path in found.aside or any(_under(path, r) for r in (*found.aside, *found.kinds)):
            continue
        named = types[path] - {"None"}
        kinds = {kind_of_type(t) for t in named}
        if len(kinds) == 1 and None not in kinds:
            found.kinds[path] = kinds.pop()  # type: ignore[assignment]
    return found
