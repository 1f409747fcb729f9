"""Misconfigured probes: names, modules and functions a marker refers to that do not exist.

A probe that cannot see what it was asked to see must never pass as ``ok``. At test time the
plugin checks, for each armed probe:

- before the test runs (:func:`import_target`, :func:`static_problem`): the location's module
  imports in the test process, and every name an expression reads exists at the location (a
  local of the function, ``result`` at ``@return``, ``exception`` at ``@exception``, or for an
  expression a global of the module);
- after the test ran (:func:`runtime_problem`): no test-time hit carries a capture, template
  or condition error, no firing failed its condition, and a path location found its module.

Every problem is a :class:`~pytest_runtime.errors.MarkerError` naming the marker argument, its
value, and what exists at the location. In production the same errors arrive in hits and in
the sensors' statuses: :func:`production_problem` says what they are, and the session turns an
``ok`` verdict built on them into ``inconclusive`` with that reason.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import CodeType, FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

from pytest_runtime.errors import MarkerError

if TYPE_CHECKING:
    from sensor.probes import Probe, ProbeStatus

__all__ = [
    "ErrorLog",
    "import_target",
    "is_probe_error",
    "names_at",
    "production_problem",
    "runtime_problem",
    "static_problem",
]

_MAX_NAMES = 30  # names listed in a message
#: Error texts of a hit that say the probe itself is wrong, not that a capture limit was hit.
_PROBE_ERROR = re.compile(r"^(capture '[^']*'|template|condition):")


def is_probe_error(text: object) -> bool:
    """True for a hit error that comes from the probe's own expressions (not a capture limit)."""
    return isinstance(text, str) and _PROBE_ERROR.match(text) is not None


def _template_error(message: object) -> str | None:
    """The first ``{!error: ...}`` field of a log message (templates never raise), or None."""
    if not isinstance(message, str):
        return None
    start = message.find("{!error: ")
    if start < 0:
        return None
    end = message.find("}", start)
    return message[start + len("{!error: ") : end if end >= 0 else None]


def _probe_errors(hits: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, str]]:
    """Error key (``capture 'x'``, ``template``, ``condition``) -> (hits, first text)."""
    failed: dict[str, tuple[int, str]] = {}
    for hit in hits:
        keys: dict[str, str] = {}
        for text in hit.get("errors") or ():
            if is_probe_error(text):
                keys.setdefault(str(text).split(":", 1)[0], str(text))
        template = _template_error(hit.get("message"))
        if template is not None and "budget" not in template:
            keys.setdefault("template", f"template: {template}")
        for key, text in keys.items():
            count, first = failed.get(key, (0, text))
            failed[key] = (count + 1, first)
    return failed


def _listing(names: Iterable[str], *, first: Iterable[str] = ()) -> str:
    """Sorted names, those in ``first`` ahead in their order, cut at ``_MAX_NAMES``."""
    ahead = list(dict.fromkeys(first))
    ordered = ahead + sorted(set(names) - set(ahead))
    shown = ", ".join(ordered[:_MAX_NAMES])
    more = len(ordered) - _MAX_NAMES
    return (shown + (f" and {more} more" if more > 0 else "")) or "(none)"


# --------------------------------------------------------------------------- before the test


def import_target(probe: Probe) -> None:
    """Import the module of a ``module:qualname`` location; raise MarkerError if it fails."""
    module = probe.location.module
    if probe.location.path is not None or not module or module in sys.modules:
        return
    try:
        importlib.import_module(module)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too: they are the import's
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise MarkerError(
            "location",
            str(probe.location),
            f"a module the test process can import; importing {module!r} raised "
            f"{type(exc).__name__}: {exc}",
        ) from exc


def _module_of(probe: Probe) -> ModuleType | None:
    from sensor.inject.locate import find_module_for_path

    location = probe.location
    if location.path is not None:
        return find_module_for_path(location.path)
    found = sys.modules.get(location.module or "")
    return found if isinstance(found, ModuleType) else None


def _code_of(probe: Probe) -> CodeType | None:
    """The code object the location names in this process, or None when it cannot be found."""
    from sensor.inject.locate import NotFound, find_code_for_line, module_file, resolve_qualname

    module = _module_of(probe)
    if module is None:
        return None
    location = probe.location
    try:
        if location.path is not None:
            filename = module_file(module)
            if filename is None or location.line is None:
                return None
            return find_code_for_line(module, filename, location.line)
        return resolve_qualname(module, location.qualname or "")
    except NotFound:
        return None
    except Exception:  # a module namespace that cannot be walked: no static check
        return None


def defined_here(probe: Probe) -> str:
    """The functions and classes of the location's module (or class), for "not found" messages."""
    module = _module_of(probe)
    if module is None:
        return ""
    namespace: Mapping[str, Any] = vars(module)
    owner = module.__name__
    qualname = probe.location.qualname or ""
    head = qualname.split(".")[:-1]
    if head and "<locals>" not in head:
        obj: Any = module
        for part in head:
            ns = vars(obj) if isinstance(obj, ModuleType | type) else {}
            obj = ns.get(part)
        if isinstance(obj, type):
            namespace = type.__dict__["__dict__"].__get__(obj)
            owner = f"{owner}:{'.'.join(head)}"
    names = [
        name
        for name, value in list(namespace.items())
        if not name.startswith("__")
        and (
            (isinstance(value, FunctionType) and value.__module__ == module.__name__)
            or (isinstance(value, type) and vars(value).get("__module__") == module.__name__)
            or isinstance(value, staticmethod | classmethod | property)
        )
    ]
    # A framework module has dozens of private helpers, which sort before lower-case public
    # names: list the names closest to the one asked, then the public ones, then the rest.
    leaf = qualname.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, names, n=3, cutoff=0.6) if leaf else []
    public = sorted(name for name in names if not name.startswith("_"))
    listing = _listing(names, first=[*close, *public])
    return f"functions and classes of {owner}: {listing}" if names else ""


class NamesAt:
    """What an expression can read at a location: locals, specials and the module's globals."""

    def __init__(self, probe: Probe, code: CodeType, module: ModuleType | None) -> None:
        from sensor.probes import Point

        self.function = code.co_qualname
        self.all_locals = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
        point = probe.location.point
        if point is Point.ENTRY:
            # At entry only the arguments (and the closure's variables) have values.
            count = code.co_argcount + code.co_kwonlyargcount
            count += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
            self.locals = set(code.co_varnames[:count]) | set(code.co_freevars)
        else:
            self.locals = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
        self.special = {"result"} if point is Point.RETURN else set()
        if point is Point.EXCEPTION:
            self.special = {"exception"}
        self.globals = set(vars(module)) if module is not None else set()
        # Names the function reads as globals may be set later (``global x`` in a function).
        self.globals |= set(code.co_names)

    def plain(self) -> set[str]:
        """Names a plain-name capture can read: the frame's locals and the specials."""
        return self.locals | self.special

    def expression(self) -> set[str]:
        return self.locals | self.special | self.globals

    def listing(self) -> str:
        return _listing(self.plain())


def names_at(probe: Probe) -> NamesAt | None:
    code = _code_of(probe)
    if code is None:
        return None
    return NamesAt(probe, code, _module_of(probe))


def _expressions(probe: Probe) -> list[tuple[str, str, frozenset[str], bool]]:
    """(argument, text, names read, plain name?) of each expression of the probe."""
    try:
        from sensor.expressions import compile as compile_expression
        from sensor.expressions import compile_template
    except ImportError:  # pragma: no cover - the sandbox ships with the sensor
        return []
    out: list[tuple[str, str, frozenset[str], bool]] = []
    for spec in probe.capture:
        if spec.is_plain_name:
            out.append(("capture", spec.expr, frozenset({spec.expr}), True))
        else:
            out.append(("capture", spec.expr, _names(compile_expression, spec.expr), False))
    for argument in ("condition", "expect"):
        text = getattr(probe, argument)
        if text:
            out.append((argument, text, _names(compile_expression, text), False))
    if probe.template:
        out.append(("template", probe.template, _names(compile_template, probe.template), False))
    return out


def _names(compiler: Any, text: str) -> frozenset[str]:
    try:
        return frozenset(compiler(text).names)
    except Exception:  # refused expressions are collection errors already
        return frozenset()


def static_problem(probe: Probe, location: str) -> MarkerError | None:
    """The first expression reading a name that exists nowhere at the location, or None."""
    names = names_at(probe)
    if names is None:
        return None
    for argument, text, read, plain in _expressions(probe):
        known = names.plain() if plain else names.expression()
        missing = sorted(read - known)
        if not missing:
            continue
        what = "a name" if plain else "an expression whose names exist"
        return MarkerError(
            argument,
            text,
            f"{what} at {location} ({_missing_text(missing, names)}); "
            f"names there: {names.listing()}",
        )
    return None


def _missing_text(missing: Sequence[str], names: NamesAt) -> str:
    first = missing[0]
    if first == "result":
        return "'result' exists only at @return"
    if first == "exception":
        return "'exception' exists only at @exception"
    if first in names.all_locals:
        return f"{first!r} is a local of {names.function} that has no value yet at @entry"
    if first in names.globals:
        return f"{first!r} is a global of the module: capture it as an expression, e.g. ({first})"
    return f"no name {first!r} in {names.function}"


# --------------------------------------------------------------------------- after the test


class ErrorLog(logging.Handler):
    """The first error text the engine logged for each test-time probe (conditions keep none).

    The engine counts a failed condition in the probe's status but emits no hit, and logs the
    first error of each probe once; this handler keeps that text so that the test's failure
    can quote it. Bounded: only ``test-`` probes, at most 1000 of them.
    """

    _MAX = 1000

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock2 = threading.Lock()
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 3:
            return
        probe_id = str(args[0])
        if not probe_id.startswith("test-"):
            return
        with self._lock2:
            if probe_id not in self.first and len(self.first) < self._MAX:
                self.first[probe_id] = str(args[2])

    def pop(self, probe_id: str) -> str | None:
        with self._lock2:
            return self.first.pop(probe_id, None)


def runtime_problem(
    probe: Probe,
    location: str,
    hits: Sequence[Mapping[str, Any]],
    status: ProbeStatus | None,
    logged: str | None,
) -> MarkerError | None:
    """What the test-time hits and status say is wrong with the probe itself, or None."""
    from sensor.probes import ProbeState

    if status is not None and status.state is ProbeState.PENDING and probe.location.path:
        return MarkerError(
            "location",
            location,
            "a file of a module the test imports (no module imported in the test process has a "
            f"file ending with {probe.location.path!r}: {status.reason})",
        )
    failed = _probe_errors(hits)
    names = names_at(probe)
    where = f"; names there: {names.listing()}" if names is not None else ""
    for key, (count, first) in sorted(failed.items()):
        argument, text = _argument_of(probe, key)
        what = "a message whose fields render" if argument == "template" else "a value"
        return MarkerError(
            argument,
            text,
            f"{what} at {location} on every test-time hit; it failed on {count} of "
            f"{len(hits)} hit(s): {first}{where}",
        )
    template_errors = sum(
        1 for hit in hits for text in hit.get("errors") or () if str(text).startswith("template")
    )
    errors = status.errors if status is not None else 0
    if probe.condition and errors > template_errors:
        reason = logged if logged and logged.startswith("condition") else "see the sensor's log"
        return MarkerError(
            "condition",
            probe.condition,
            f"an expression that can be evaluated at {location}; it failed on "
            f"{errors - template_errors} firing(s): {reason}{where}",
        )
    return None


def _argument_of(probe: Probe, key: str) -> tuple[str, str]:
    """The marker argument and value an error key (``capture 'x'``, ``template``) belongs to."""
    if key.startswith("capture "):
        name = key[len("capture ") :].strip("'")
        for spec in probe.capture:
            if spec.name == name:
                return "capture", spec.expr
        return "capture", name
    if key == "template":
        return "template", probe.template or ""
    return "condition", probe.condition or ""


# --------------------------------------------------------------------------- production


def production_problem(
    hits: Sequence[Mapping[str, Any]], statuses: Sequence[Mapping[str, Any]] = ()
) -> str | None:
    """Why production evidence cannot be trusted for this probe (its own errors), or None.

    Capture-limit messages (budget, deadline, fields) are not probe errors and are ignored.
    """
    parts: list[str] = []
    failed = _probe_errors(hits)
    for _, (count, first) in sorted(failed.items()):
        parts.append(f"{first} (on {count} of {len(hits)} production hit(s))")
    refused = [s for s in statuses if isinstance(s, Mapping) and s.get("state") == "error"]
    if statuses and len(refused) == len(statuses):
        reason = str(refused[0].get("reason") or "no reason given")
        parts.append(f"refused by every source ({len(refused)}): {reason}")
    erring = [
        s
        for s in statuses
        if isinstance(s, Mapping)
        and isinstance(s.get("errors"), int)
        and not isinstance(s.get("errors"), bool)
        and int(s["errors"]) > 0
    ]
    if erring and not failed:
        total = sum(int(s["errors"]) for s in erring)
        parts.append(
            f"its condition or expressions failed on {total} firing(s) on {len(erring)} "
            "source(s) (the sensors count them in their status)"
        )
    if not parts:
        return None
    return "probe misconfigured in production: " + "; ".join(parts)
