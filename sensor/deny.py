"""The deny list: modules and files where no probe may be placed.

By default the sensor itself, the plugin, and the standard library's ``ssl``, ``hashlib`` and
``secrets`` (where keys and random secrets live) are denied; ``SENSOR_DENY`` adds entries
(comma-separated module names and file globs). A module entry covers its submodules
(``sensor`` denies ``sensor.engine``) and the files of the module or package, so that a
``path.py:LINE`` location cannot reach them either.

The module imports the standard library only: it runs inside production services.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import sysconfig
import threading
from collections.abc import Iterable, Mapping

__all__ = ["DEFAULT_DENY_MODULES", "DenyList", "get_deny_list", "set_deny_list"]

#: Modules denied by default: the sensor and plugin (a probe on the probe machinery would
#: recurse) and the standard library modules that handle keys and secrets.
# Standard library modules that handle keys, digests of secrets, random tokens and passwords.
_STDLIB_KEY_MODULES: tuple[str, ...] = ("ssl", "hashlib", "secrets", "hmac", "getpass")
#: The probe machinery, then code that holds key material under ordinary names (``key``,
#: ``msg``, ``data``: ``hmac.new(key, msg)``, ``jwt.encode(payload, key)``, a request signer's
#: ``key`` local), where the name rules cannot see it: the standard library's, then common
#: cryptography, token, password-hashing and cloud-credential libraries.
DEFAULT_DENY_MODULES: tuple[str, ...] = (
    "sensor",
    "pytest_runtime",
    *_STDLIB_KEY_MODULES,
    "cryptography",
    "nacl",
    "Crypto",
    "Cryptodome",
    "OpenSSL",
    "jwt",
    "jose",
    "paramiko",
    "keyring",
    "passlib",
    "bcrypt",
    "argon2",
    "hvac",
    "botocore.auth",
    "botocore.credentials",
    "google.auth",
    "google.oauth2",
    "azure.identity",
)


def _norm_path(path: str) -> str:
    return os.path.normcase(os.path.abspath(path)).replace(os.sep, "/")


def _module_globs(module: str) -> list[str]:
    """File globs covering ``module``'s source, found without importing it."""
    top, _, rest = module.partition(".")
    try:
        # Only a top-level name: find_spec of a dotted one imports its parent packages.
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        if module in _STDLIB_KEY_MODULES:
            stdlib = sysconfig.get_paths().get("stdlib")
            return [_norm_path(os.path.join(stdlib, f"{module}.py"))] if stdlib else []
        return []
    if rest:
        # `botocore.auth`: `auth.py` or the `auth/` package under the top package's folders.
        sub = rest.replace(".", "/")
        return [
            g
            for loc in spec.submodule_search_locations or ()
            for g in (
                _norm_path(os.path.join(loc, sub)) + ".py",
                _norm_path(os.path.join(loc, sub)) + "/*",
            )
        ]
    if spec.submodule_search_locations:
        return [_norm_path(loc) + "/*" for loc in spec.submodule_search_locations]
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        return [_norm_path(spec.origin)]
    return []


class DenyList:
    """Decides whether a probe may be placed in a module or file."""

    def __init__(
        self,
        modules: Iterable[str] = DEFAULT_DENY_MODULES,
        globs: Iterable[str] = (),
        *,
        origin: str = "default",
    ) -> None:
        self._lock = threading.Lock()
        self._modules: dict[str, str] = {}
        self._globs: list[tuple[str, str]] = []
        self.add(modules=modules, globs=globs, origin=origin)

    def add(self, *, modules: Iterable[str] = (), globs: Iterable[str] = (), origin: str) -> None:
        """Deny more modules (with their files) and file globs; ``origin`` appears in reasons."""
        with self._lock:
            mods = dict(self._modules)
            pats = list(self._globs)
            for m in modules:
                m = m.strip()
                if not m or m in mods:
                    continue
                mods[m] = origin
                pats.extend((g, f"module {m!r} ({origin})") for g in _module_globs(m))
            for g in globs:
                g = g.strip()
                if g:
                    pats.append((g.replace("\\", "/"), f"glob {g!r} ({origin})"))
            self._modules, self._globs = mods, pats

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, strict: bool = True) -> DenyList:
        """The defaults plus ``SENSOR_DENY`` (entries with ``/``, ``*``, ``?``, ``.py``: globs).

        An entry that can match nothing (``foo.bar:``, ``my-module``, a glob with an unclosed
        ``[``) raises ConfigError naming it; with ``strict=False`` (inside the host, where
        nothing may raise) it is left out and the others still apply.
        """
        env = os.environ if environ is None else environ
        modules: list[str] = []
        globs: list[str] = []
        for entry in env.get("SENSOR_DENY", "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            problem = _entry_problem(entry)
            if problem is not None:
                if strict:
                    from sensor.errors import ConfigError

                    raise ConfigError(f"SENSOR_DENY: got entry {entry!r}, expected {problem}")
                continue
            if any(ch in entry for ch in "/\\*?[") or entry.endswith(".py"):
                globs.append(entry)
            else:
                modules.append(entry)
        deny = cls()
        deny.add(modules=modules, globs=globs, origin="SENSOR_DENY")
        return deny

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self._modules)

    @property
    def globs(self) -> tuple[str, ...]:
        return tuple(g for g, _ in self._globs)

    def check(self, module: str | None, filename: str | None) -> str | None:
        """The reason a probe may not be placed there, or None when it may."""
        if module:
            mods = self._modules
            name = module
            while True:
                origin = mods.get(name)
                if origin is not None:
                    return f"module {module!r} is on the deny list (entry {name!r}, {origin})"
                if "." not in name:
                    break
                name = name.rpartition(".")[0]
        if filename:
            path = _norm_path(filename)
            base = path.rpartition("/")[2]
            for pattern, why in self._globs:
                if "/" not in pattern:
                    hit = fnmatch.fnmatchcase(base, pattern)
                elif pattern.startswith("/") or pattern[1:3] == ":/":
                    hit = fnmatch.fnmatchcase(path, pattern)
                else:  # a relative glob matches a path suffix: "app/crypto/*"
                    hit = fnmatch.fnmatchcase(path, "*/" + pattern)
                if hit:
                    return f"file {filename!r} is on the deny list ({why})"
        return None


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _entry_problem(entry: str) -> str | None:
    """What a ``SENSOR_DENY`` entry should have been, or None when it is a module name or a
    file glob that can match something."""
    if any(ch in entry for ch in "/\\*?[") or entry.endswith(".py"):
        depth = 0
        for ch in entry:  # fnmatch reads an unclosed `[` as a literal: it would match nothing
            if ch == "[":
                depth += 1
            elif ch == "]" and depth:
                depth -= 1
        if depth:
            return "a file glob with its `[` closed, such as '*/vendor/*.py' or 'app/[ab]*.py'"
        return None
    if _MODULE_NAME.match(entry) is None:
        return (
            "a dotted module name such as 'myapp.billing' or a file glob such as "
            "'*/vendor/*.py' (entries are separated by commas)"
        )
    return None


_default: DenyList | None = None
_default_lock = threading.Lock()


def get_deny_list() -> DenyList:
    """The process-wide deny list (defaults plus ``SENSOR_DENY``), built on first use."""
    global _default
    d = _default
    if d is None:
        with _default_lock:
            if _default is None:
                # Inside the host: a bad entry is left out (start() refused it already).
                _default = DenyList.from_env(strict=False)
            d = _default
    return d


def set_deny_list(deny: DenyList | None) -> None:
    """Replace the process-wide deny list (``None``: rebuild from the environment on next use)."""
    global _default
    with _default_lock:
        _default = deny
