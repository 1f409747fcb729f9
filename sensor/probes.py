"""The probe model: what to observe, where, under which condition and within which limits.

A :class:`Probe` is plain data. It is validated when it is created (the error names the field
and the value), it round-trips through JSON (:meth:`Probe.to_dict` / :meth:`Probe.from_dict`),
and it has a stable :attr:`Probe.signature` (a hash of what it observes, not of who placed it),
so that the same probe placed by a test and by a person is recognised as one.

The module imports the standard library only: it is loaded inside production services.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from sensor.errors import ProbeSpecError

__all__ = [
    "CAPTURE_LIMIT_MAXIMA",
    "DEFAULT_EVAL_RATE",
    "DEFAULT_RATES",
    "DEFAULT_VIOLATION_RATE",
    "PROBE_LIMIT_MAXIMA",
    "CaptureLimits",
    "CaptureSpec",
    "Hit",
    "Location",
    "Point",
    "Probe",
    "ProbeKind",
    "ProbeLimits",
    "ProbeState",
    "ProbeStatus",
]


class ProbeKind(enum.StrEnum):
    """What a probe does when it fires."""

    SNAPSHOT = "snapshot"  #: capture state (and evaluate ``expect`` if given)
    LOG = "log"  #: format a message from a template
    COUNTER = "counter"  #: count firings (aggregated, no per-hit record)
    TIMER = "timer"  #: measure a duration (aggregated)
    EXPECT = "expect"  #: evaluate an assertion; capture state only on violation
    #: for sampled calls of one function, record which of its lines ran (one hit per call)
    LINES = "lines"


class Point(enum.StrEnum):
    """Where in a function a probe fires."""

    ENTRY = "entry"
    RETURN = "return"
    EXCEPTION = "exception"
    LINE = "line"


#: Default rate limit (hits per second) per kind; ``None`` means unlimited (aggregated kinds).
DEFAULT_RATES: dict[ProbeKind, float | None] = {
    ProbeKind.SNAPSHOT: 1.0,
    ProbeKind.EXPECT: 1.0,
    ProbeKind.LOG: 100.0,
    ProbeKind.COUNTER: None,
    ProbeKind.TIMER: None,
    ProbeKind.LINES: 10.0,
}

#: Default evaluations per second of a probe's ``expect`` (never below the probe's own rate).
#: In a real service one evaluation (frame copy, sandboxed expression, guards) costs about 5 to
#: 7 us, so 100/s keeps a probe near 0.07% of a CPU: a dozen probes fit the default 1% CPU
#: budget, and a violation on 1% of calls is still seen about once a second.
DEFAULT_EVAL_RATE = 100.0
#: Default violation hits per second of a probe's ``expect`` (never below the probe's own rate).
DEFAULT_VIOLATION_RATE = 10.0

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
# module:qualname[@point|@line]; qualname may contain <locals> parts of nested functions.
_FUNC_RE = re.compile(
    rf"^(?P<module>{_DOTTED}):(?P<qualname>{_IDENT}(?:\.(?:<locals>|{_IDENT}))*)"
    rf"(?:@(?P<point>entry|return|exception|\d+))?$"
)
# path/to/file.py:LINE (matched by path suffix on the sensor side).
_PATH_RE = re.compile(r"^(?P<path>[^:@\s][^:@]*\.py):(?P<line>\d+)$")


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """A code location: a function (with a point or a line) or a file and line.

    String forms (see :meth:`parse`)::

        shop.pricing:apply_discount            the function, at return (the default point)
        shop.pricing:apply_discount@entry      at entry (arguments)
        shop.pricing:apply_discount@return     at return (locals plus ``result``)
        shop.pricing:apply_discount@exception  when an exception leaves the function
        shop.pricing:Cart.total@42             at line 42, inside Cart.total
        shop/pricing.py:42                     at line 42 of any file whose path ends so
    """

    module: str | None = None
    qualname: str | None = None
    point: Point = Point.RETURN
    line: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            if self.module is not None or self.qualname is not None:
                raise ProbeSpecError(
                    "location", str(self), "either a path and a line, or module:qualname"
                )
            if self.point is not Point.LINE or self.line is None:
                raise ProbeSpecError("location", str(self), "a line number with a file path")
        elif self.module is None or self.qualname is None:
            raise ProbeSpecError("location", str(self), "'module:qualname' or 'path.py:line'")
        if self.point is Point.LINE and (self.line is None or self.line < 1):
            raise ProbeSpecError("location.line", self.line, "a positive line number")
        if self.point is not Point.LINE and self.line is not None:
            raise ProbeSpecError("location.line", self.line, "no line with point " + self.point)

    @classmethod
    def parse(cls, text: str) -> Location:
        """Parse the string form; raise :class:`ProbeSpecError` naming the text if it is invalid."""
        if not isinstance(text, str):
            raise ProbeSpecError("location", text, "a string such as 'pkg.module:function@return'")
        spec = text.strip()
        match = _FUNC_RE.match(spec)
        if match:
            point_text = match.group("point")
            if point_text is None:
                point, line = Point.RETURN, None
            elif point_text.isdigit():
                point, line = Point.LINE, int(point_text)
            else:
                point, line = Point(point_text), None
            return cls(match.group("module"), match.group("qualname"), point, line)
        match = _PATH_RE.match(spec)
        if match:
            return cls(path=match.group("path"), point=Point.LINE, line=int(match.group("line")))
        raise ProbeSpecError(
            "location",
            text,
            "'module:qualname', 'module:qualname@entry|return|exception|<line>' "
            "or 'path/to/file.py:<line>'",
        )

    @property
    def is_function(self) -> bool:
        """True for entry, return and exception points (the whole function is targeted)."""
        return self.point is not Point.LINE

    def __str__(self) -> str:
        if self.path is not None:
            return f"{self.path}:{self.line}"
        suffix = str(self.line) if self.point is Point.LINE else self.point.value
        return f"{self.module}:{self.qualname}@{suffix}"


#: The largest value each capture limit may take (docs/reference/probes.md lists them). A probe
#: asking for more is refused where it is validated (the hub answers 422 naming the field, the
#: value and the maximum); the sensor's encoder clamps to them again whatever it is handed.
#: ``max_string`` is at most the redactor's scanning window, so no kept text goes unscanned.
CAPTURE_LIMIT_MAXIMA: dict[str, int | float] = {
    "max_depth": 32,  # a capture never nears the interpreter's recursion limit
    "max_items": 10_000,
    "max_string": 65_536,  # sensor.redaction.MAX_MATCH_CHARS
    "max_fields": 1_000,
    "max_bytes": 1_048_576,  # 1 MiB per hit: the hub takes 8 MiB per request
    "deadline_ms": 500.0,  # the longest a capture may hold the host's thread
}
#: The largest value of each guard of a probe. They are high (the test-time probes of the
#: plugin use rate=1e9 to mean "unlimited") but finite and storable: a value at or above 2**63
#: cannot be stored, and the CPU budget, not the rate, is what bounds the cost.
PROBE_LIMIT_MAXIMA: dict[str, int | float] = {
    "rate": 1e9,
    "eval_rate": 1e9,
    "violation_rate": 1e9,
    "burst": 1_000_000_000,
    "max_hits": 1_000_000_000,
    "expires_at": 1e11,  # epoch seconds (the year 5138); the hub bounds it by its max_ttl
}


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureLimits:
    """Bounds on one capture. Every truncation is marked in the encoded value."""

    max_depth: int = 3  #: levels of containers/objects expanded below a captured value
    max_items: int = 100  #: items kept per list, tuple, set or dict
    max_string: int = 255  #: characters kept per string (bytes per bytes object)
    max_fields: int = 20  #: attributes kept per object, locals kept per frame
    max_bytes: int = 64 * 1024  #: approximate encoded size of one hit's captures
    deadline_ms: float = 10.0  #: wall time allowed per capture, checked while capturing

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            maximum = CAPTURE_LIMIT_MAXIMA[field.name]
            integer = field.name != "deadline_ms"
            expected = f"{'an integer' if integer else 'a number'} from 0 to {_number(maximum)}"
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ProbeSpecError(f"limits.capture.{field.name}", value, expected)
            if integer and not isinstance(value, int):
                raise ProbeSpecError(f"limits.capture.{field.name}", value, expected)
            if not (math.isfinite(value) and 0 <= value <= maximum):
                raise ProbeSpecError(f"limits.capture.{field.name}", value, expected)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaptureLimits:
        _check_mapping("limits.capture", data)
        _reject_unknown("limits.capture", data, {f.name for f in dataclasses.fields(cls)})
        return cls(**data)


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeLimits:
    """Guards of one probe: rate, total hits, lifetime and capture bounds."""

    rate: float | None = None  #: hits per second (token bucket); None: the kind's default
    burst: int | None = None  #: token bucket size; None: max(1, rate)
    max_hits: int | None = None  #: the probe disables itself after this many hits
    expires_at: float | None = None  #: epoch seconds after which the probe stops firing
    capture: CaptureLimits = dataclasses.field(default_factory=CaptureLimits)
    #: ``expect`` evaluations per second (token bucket); None: max(DEFAULT_EVAL_RATE, rate)
    eval_rate: float | None = None
    #: violation hits per second (token bucket); None: max(10, the effective rate)
    violation_rate: float | None = None

    def __post_init__(self) -> None:
        for name, unit in (
            ("rate", "hits"),
            ("eval_rate", "evaluations"),
            ("violation_rate", "violation hits"),
        ):
            value = getattr(self, name)
            maximum = PROBE_LIMIT_MAXIMA[name]
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (value > 0 and math.isfinite(value) and value <= maximum)
            ):
                raise ProbeSpecError(
                    f"limits.{name}",
                    value,
                    f"a positive number of {unit} per second, at most {_number(maximum)}",
                )
        for name in ("burst", "max_hits"):
            value = getattr(self, name)
            maximum = PROBE_LIMIT_MAXIMA[name]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum
            ):
                raise ProbeSpecError(
                    f"limits.{name}", value, f"a positive integer, at most {_number(maximum)}"
                )
        maximum = PROBE_LIMIT_MAXIMA["expires_at"]
        if self.expires_at is not None and (
            isinstance(self.expires_at, bool)
            or not isinstance(self.expires_at, int | float)
            or not (math.isfinite(self.expires_at) and 0 <= self.expires_at <= maximum)
        ):
            raise ProbeSpecError(
                "limits.expires_at", self.expires_at, f"epoch seconds from 0 to {_number(maximum)}"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["capture"] = self.capture.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeLimits:
        _check_mapping("limits", data)
        _reject_unknown("limits", data, {f.name for f in dataclasses.fields(cls)})
        values = dict(data)
        if "capture" in values:
            values["capture"] = CaptureLimits.from_dict(values["capture"])
        return cls(**values)


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureSpec:
    """One captured value: ``name`` is the key in the hit, ``expr`` the expression evaluated."""

    name: str
    expr: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProbeSpecError("capture", self.name, "a non-empty name")
        if not isinstance(self.expr, str) or not self.expr.strip():
            raise ProbeSpecError(f"capture[{self.name!r}]", self.expr, "a non-empty expression")

    @property
    def is_plain_name(self) -> bool:
        """True when the expression is a bare identifier (read directly, no evaluator needed)."""
        return self.expr.isidentifier()


def _parse_captures(value: object) -> tuple[CaptureSpec, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        raise ProbeSpecError("capture", value, "a list of names or expressions, not one string")
    if isinstance(value, Mapping):
        return tuple(CaptureSpec(str(name), expr) for name, expr in value.items())
    if isinstance(value, Sequence):
        specs = []
        for item in value:
            if isinstance(item, CaptureSpec):
                specs.append(item)
            elif isinstance(item, str):
                specs.append(CaptureSpec(item.strip(), item.strip()))
            elif isinstance(item, Mapping) and set(item) == {"name", "expr"}:
                specs.append(CaptureSpec(item["name"], item["expr"]))
            else:
                raise ProbeSpecError("capture", item, "a name, an expression or {name, expr}")
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ProbeSpecError("capture", duplicates, "each captured name once")
        return tuple(specs)
    raise ProbeSpecError("capture", value, "a list of names or expressions, or a mapping")


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """A request to observe one code location.

    ``capture`` lists names or expressions; an empty capture on a snapshot means "the frame's
    locals" (bounded by ``limits.capture.max_fields``). ``expect`` is an expression that must be
    true on every hit (kinds ``snapshot`` and ``expect``); ``template`` formats a log message
    (kind ``log``); ``until_line`` ends a timer at a line instead of at return.
    ``source_hash`` (sha256 of the stripped target line) or ``source_line`` (its text) lets the
    sensor refuse a probe whose code differs from what the placer saw.
    """

    kind: ProbeKind
    location: Location
    capture: tuple[CaptureSpec, ...] = ()
    condition: str | None = None
    expect: str | None = None
    template: str | None = None
    until_line: int | None = None
    source_hash: str | None = None
    source_line: str | None = None
    limits: ProbeLimits = dataclasses.field(default_factory=ProbeLimits)
    #: a replay probe: each sampled call's arguments (at entry) and outcome (result or
    #: exception) in one hit, so that the plugin can call the function again on them
    replay: bool = False
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_at: float = dataclasses.field(default_factory=time.time)

    def __post_init__(self) -> None:
        kind: object = self.kind
        location: object = self.location
        if not isinstance(kind, ProbeKind):
            try:
                object.__setattr__(self, "kind", ProbeKind(kind))  # type: ignore[arg-type]
            except ValueError:
                raise ProbeSpecError(
                    "kind", self.kind, "one of " + ", ".join(k.value for k in ProbeKind)
                ) from None
        if isinstance(location, str):
            object.__setattr__(self, "location", Location.parse(location))
        elif not isinstance(location, Location):
            raise ProbeSpecError("location", location, "a Location or its string form")
        if not isinstance(self.capture, tuple) or not all(
            isinstance(c, CaptureSpec) for c in self.capture
        ):
            object.__setattr__(self, "capture", _parse_captures(self.capture))
        if isinstance(self.limits, Mapping):
            object.__setattr__(self, "limits", ProbeLimits.from_dict(self.limits))
        for name in ("condition", "expect", "template", "source_hash", "source_line"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ProbeSpecError(name, value, "a non-empty string or null")
        if not isinstance(self.id, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.id):
            raise ProbeSpecError("id", self.id, "1 to 64 letters, digits, '_', '.', ':' or '-'")
        if not isinstance(self.tags, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.tags.items()
        ):
            raise ProbeSpecError("tags", self.tags, "a mapping of strings to strings")
        object.__setattr__(self, "tags", dict(self.tags))
        if self.source_hash is not None and not re.fullmatch(r"[0-9a-f]{64}", self.source_hash):
            raise ProbeSpecError("source_hash", self.source_hash, "a sha256 hex digest")
        if not isinstance(self.replay, bool):
            raise ProbeSpecError("replay", self.replay, "true or false")
        self._check_kind_fields()

    def _check_kind_fields(self) -> None:
        kind = self.kind
        if self.replay and (
            kind not in (ProbeKind.SNAPSHOT, ProbeKind.EXPECT)
            or self.location.point is not Point.RETURN
        ):
            raise ProbeSpecError(
                "replay",
                True,
                "a snapshot or expect probe at a function's @return (a replay hit holds the "
                f"call's arguments and its outcome); got a {kind} probe at {self.location}",
            )
        if kind is ProbeKind.LINES:
            if not self.location.is_function or self.location.point is not Point.RETURN:
                raise ProbeSpecError(
                    "location",
                    str(self.location),
                    "a function ('module:qualname') for a 'lines' probe: it records the lines "
                    "of whole calls",
                )
            for name in ("condition", "expect", "template"):
                if getattr(self, name) is not None:
                    raise ProbeSpecError(name, getattr(self, name), "none on a 'lines' probe")
        if kind is ProbeKind.EXPECT and self.expect is None:
            raise ProbeSpecError("expect", None, "an expression for an 'expect' probe")
        if self.expect is not None and kind not in (ProbeKind.SNAPSHOT, ProbeKind.EXPECT):
            raise ProbeSpecError("expect", self.expect, f"no expectation on a {kind} probe")
        if kind is ProbeKind.LOG and self.template is None:
            raise ProbeSpecError("template", None, "a message template for a 'log' probe")
        if self.template is not None and kind is not ProbeKind.LOG:
            raise ProbeSpecError("template", self.template, f"no template on a {kind} probe")
        if self.until_line is not None:
            if kind is not ProbeKind.TIMER:
                raise ProbeSpecError("until_line", self.until_line, "only on a 'timer' probe")
            if (
                isinstance(self.until_line, bool)
                or not isinstance(self.until_line, int)
                or self.location.point is not Point.LINE
                or self.location.line is None
                or self.until_line <= self.location.line
            ):
                raise ProbeSpecError(
                    "until_line", self.until_line, "a line after the timer's start line"
                )
        if kind is ProbeKind.TIMER and self.location.point is Point.EXCEPTION:
            raise ProbeSpecError("location", str(self.location), "a timer at a function or line")
        if kind in (ProbeKind.COUNTER, ProbeKind.TIMER, ProbeKind.LINES) and self.capture:
            raise ProbeSpecError("capture", [c.expr for c in self.capture], f"none on a {kind}")
        if self.location.point is Point.ENTRY:
            mention = self._mentions_result()
            if mention is not None:
                raise ProbeSpecError(
                    mention[0],
                    mention[1],
                    "no 'result' at @entry (use @return for the return value)",
                )

    def _mentions_result(self) -> tuple[str, str] | None:
        """The first field (name, text) that reads ``result``, or None."""
        texts = [("expect", self.expect), ("condition", self.condition)]
        texts += [("template", self.template)] + [("capture", c.expr) for c in self.capture]
        for field, text in texts:
            if text and re.search(r"(?<![\w.])result\b", text):
                return field, text
        return None

    @property
    def rate(self) -> float | None:
        """The effective rate limit in hits per second (None: unlimited, aggregated)."""
        if self.limits.rate is not None:
            return self.limits.rate
        return DEFAULT_RATES[self.kind]

    @property
    def eval_rate(self) -> float:
        """Evaluations of ``expect`` allowed per second (never below :attr:`rate`)."""
        if self.limits.eval_rate is not None:
            return self.limits.eval_rate
        return max(DEFAULT_EVAL_RATE, self.rate or 0.0)

    @property
    def violation_rate(self) -> float:
        """Violation hits allowed per second (never below :attr:`rate`)."""
        if self.limits.violation_rate is not None:
            return self.limits.violation_rate
        return max(DEFAULT_VIOLATION_RATE, self.rate or 0.0)

    @property
    def signature(self) -> str:
        """A stable hash of what the probe observes (kind, location and expressions).

        Ids, tags, limits and creation times are left out: two probes with the same signature
        observe the same thing and their hits are the same evidence.
        """
        payload = {
            "kind": self.kind.value,
            "location": str(self.location),
            "capture": [[c.name, c.expr] for c in self.capture],
            "condition": self.condition,
            "expect": self.expect,
            "template": self.template,
            "until_line": self.until_line,
        }
        if self.replay:  # only when set: every other probe keeps the signature it had
            payload["replay"] = True
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_changes(self, **changes: Any) -> Probe:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what the hub stores and sends to sensors)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "location": str(self.location),
            "capture": [
                c.expr if c.name == c.expr else {"name": c.name, "expr": c.expr}
                for c in self.capture
            ],
            "condition": self.condition,
            "expect": self.expect,
            "template": self.template,
            "until_line": self.until_line,
            "source_hash": self.source_hash,
            "source_line": self.source_line,
            "limits": self.limits.to_dict(),
            "tags": dict(self.tags),
            "created_at": self.created_at,
            "signature": self.signature,
            **({"replay": True} if self.replay else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Probe:
        """Build from the JSON form; unknown fields and wrong types are errors naming them."""
        _check_mapping("probe", data)
        known = {f.name for f in dataclasses.fields(cls)} | {"signature"}
        _reject_unknown("probe", data, known)
        values = {k: v for k, v in data.items() if k != "signature" and v is not None}
        for required in ("kind", "location"):
            if required not in values:
                raise ProbeSpecError(required, None, "a value (the field is required)")
        if "limits" in values:
            values["limits"] = ProbeLimits.from_dict(values["limits"])
        if "capture" in values:
            values["capture"] = _parse_captures(values["capture"])
        if "created_at" in values and (
            isinstance(values["created_at"], bool)
            or not isinstance(values["created_at"], int | float)
        ):
            raise ProbeSpecError("created_at", values["created_at"], "epoch seconds")
        probe = cls(**values)
        claimed = data.get("signature")
        if claimed is not None and claimed != probe.signature:
            raise ProbeSpecError("signature", claimed, f"{probe.signature} (computed)")
        return probe

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Probe:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProbeSpecError("probe", text[:80], f"JSON ({exc})") from exc
        return cls.from_dict(data)


class ProbeState(enum.StrEnum):
    """The life of a probe inside one sensor."""

    PENDING = "pending"  #: accepted; the target is not loaded yet (waiting for an import)
    INSTALLED = "installed"  #: armed on the target code
    ERROR = "error"  #: could not be placed (reason says why); other probes are unaffected
    DISABLED = "disabled"  #: was armed, then switched off by a guard (reason says which)
    REMOVED = "removed"  #: removed; the original code is back


@dataclasses.dataclass(slots=True)
class ProbeStatus:
    """What one sensor reports about one probe."""

    probe_id: str
    state: ProbeState = ProbeState.PENDING
    reason: str | None = None
    hits: int = 0  #: firings that produced a hit (or were counted, for aggregated kinds)
    drops: int = 0  #: hits lost after firing (full sink, capture over budget)
    skipped_rate: int = 0  #: firings skipped by the rate limit
    skipped_condition: int = 0  #: firings whose condition was false
    errors: int = 0  #: firings whose condition, capture or expectation failed
    backend: str | None = None
    updated_at: float = dataclasses.field(default_factory=time.time)
    evaluations: int = 0  #: firings whose ``expect`` was evaluated
    violations: int = 0  #: evaluations that were false or failed (captured or not)
    #: exception exits seen (exact, counted before any sampling): at ``@return``, exits by an
    #: ``Exception`` other than ``StopIteration``/``StopAsyncIteration``; at ``@exception``, every
    #: firing
    exceptions: int = 0
    #: firings not evaluated nor captured because the CPU budget shed load (sampled them out)
    skipped_budget: int = 0
    #: evaluations that gave no truth value (refused by the sandbox, raised, or not a bool):
    #: a part of ``violations``; ``violations - expect_errors`` evaluated false
    expect_errors: int = 0
    #: of ``skipped_rate`` and ``skipped_budget`` (not in addition), the firings skipped while
    #: the probe's gate was closed (its evaluation bucket or its budget share empty until a
    #: known time): counted without any work, inline where the backend allows it
    skipped_closed: int = 0
    #: rare-state sampling (passing firings captured because their value class is new):
    #: classes remembered (bounded), new classes admitted, refused by its rate limit, and not
    #: remembered because the classes table was full
    novel_classes: int = 0
    novel_admitted: int = 0
    novel_refused: int = 0
    novel_full: int = 0

    #: Counters a sensor of an older version does not send: a hub keeps them absent (unknown)
    #: rather than 0, so that nothing reads "0 evaluation errors" from a sensor that counts none.
    LATER_COUNTERS: ClassVar[tuple[str, ...]] = (
        "expect_errors",
        "skipped_closed",
        "novel_classes",
        "novel_admitted",
        "novel_refused",
        "novel_full",
    )

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies field by field, and the hub turns every status
        # of every heartbeat of a thousand sensors into a dict (the fields are scalars)
        data = {name: getattr(self, name) for name in _status_fields()}
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeStatus:
        _check_mapping("status", data)
        _reject_unknown("status", data, set(_status_fields()))
        values = dict(data)
        try:
            values["state"] = ProbeState(values.get("state", "pending"))
        except ValueError:
            raise ProbeSpecError(
                "status.state",
                data.get("state"),
                "one of " + ", ".join(s.value for s in ProbeState),
            ) from None
        return cls(**values)


@functools.cache
def _status_fields() -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(ProbeStatus))


@dataclasses.dataclass(slots=True)
class Hit:
    """One firing of a probe, with its captured state already encoded (typed JSON, bounded).

    Capture and encoding happen on the host thread (so the values cannot change afterwards);
    serialising to bytes and sending happen on the sensor's own thread.
    """

    probe_id: str
    signature: str
    kind: str
    location: str
    ts: float  #: epoch seconds
    hit_id: str = ""
    line: int | None = None  #: the line that fired
    thread: str | None = None
    captures: dict[str, Any] | None = None  #: name -> typed-JSON encoded value
    expect: dict[str, Any] | None = None  #: {"ok": bool|None, "error": str|None}
    exception: dict[str, Any] | None = None  #: {"type": "mod.Name", "message": encoded str}
    message: str | None = None  #: log probes: the formatted, redacted message
    aggregate: dict[str, Any] | None = None  #: counter/timer: count, sum_ns, min_ns, max_ns
    truncated: bool = False  #: some value was cut by a capture limit
    errors: list[str] | None = None  #: capture or evaluation problems, e.g. "deadline"
    source: dict[str, Any] | None = None  #: filled by the agent/hub: id, service, host, pid...
    #: replay probes: the call's arguments read at entry: ``{"values": {name: encoded},
    #: "names": [parameter names in code order], "positional": n, "posonly": n,
    #: "varargs": name|None, "varkw": name|None}``
    arguments: dict[str, Any] | None = None
    #: replay probes: how the call ended: ``{"returned": <encoded value>}``, or
    #: ``{"raised": "module.Type"}`` (the ``exception`` field has its message)
    outcome: dict[str, Any] | None = None
    #: lines probes: ``{"ran": [line, ...], "source": sha256 of the function's lines (16 hex),
    #: "first": first line, "last": last line}`` for one sampled call
    lines: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Hit:
        _check_mapping("hit", data)
        _reject_unknown("hit", data, {f.name for f in dataclasses.fields(cls)})
        for required in ("probe_id", "signature", "kind", "location", "ts"):
            if required not in data:
                raise ProbeSpecError(f"hit.{required}", None, "a value (the field is required)")
        return cls(**data)


def _number(value: int | float) -> str:
    """A maximum as messages and docs print it: ``65536``, ``500``, ``1e+09``."""
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:g}"


def _check_mapping(what: str, data: object) -> None:
    if not isinstance(data, Mapping):
        raise ProbeSpecError(what, data, "a JSON object")


def _reject_unknown(what: str, data: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProbeSpecError(what, unknown, "only the fields " + ", ".join(sorted(known)))
