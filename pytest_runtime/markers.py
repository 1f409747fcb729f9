"""The ``runtime_probe`` marker: its arguments parsed into a probe and per-probe settings."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_runtime import plugin as _plugin
from pytest_runtime.errors import MarkerError

if TYPE_CHECKING:
    import pytest

    from sensor.probes import Probe

__all__ = [
    "MARKER",
    "MARKER_HELP",
    "ProbeRequest",
    "ProbeSettings",
    "exception_name",
    "parse_probe_args",
    "requests_for_item",
]

MARKER = "runtime_probe"
# The help lives in plugin.py, which must not import this module at start-up.
MARKER_HELP = _plugin.MARKER_HELP

_KINDS = ("snapshot", "expect", "log", "counter", "timer", "lines")
_KNOWN = (
    "location",
    "capture",
    "expect",
    "ignore",
    "min_hits",
    "strict",
    "wait",
    "labels",
    "service",
    "kind",
    "condition",
    "rate",
    "max_hits",
    "template",
    "raises",
    "replay",
    "plumbing",
)
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_RAISES_EXPECTED = (
    "an exception class, a dotted name such as 'decimal.InvalidOperation', or a tuple or list "
    "of them"
)


@dataclasses.dataclass(frozen=True)
class ProbeSettings:
    """What a marker asks of the comparison and of the hub, beyond the probe itself.

    ``None`` means "use the run's option" (``--runtime-min-hits``, ``--runtime-strict``, ...).
    """

    ignore: tuple[str, ...] = ()
    min_hits: int | None = None
    strict: bool | None = None
    wait: float | None = None
    service: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: exception types the test author expects to leave the function (``ValueError``,
    #: ``decimal.InvalidOperation``): production raising them is no divergence
    raises: tuple[str, ...] = ()
    #: set server plumbing aside (None: the ini option ``runtime_plumbing``)
    plumbing: bool | None = None

    def selector(self, default_service: str | None = None) -> dict[str, Any]:
        """The hub selector (service and labels) of the sources to probe."""
        selector: dict[str, Any] = {}
        service = self.service or default_service
        if service:
            selector["service"] = service
        if self.labels:
            selector["labels"] = dict(sorted(self.labels.items()))
        return selector

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ignore"] = list(self.ignore)
        data["labels"] = dict(self.labels)
        data["raises"] = list(self.raises)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeSettings:
        values = dict(data)
        values["ignore"] = tuple(values.get("ignore", ()))
        values["labels"] = dict(values.get("labels") or {})
        values["raises"] = tuple(values.get("raises", ()))
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ProbeRequest:
    """One probe asked for by a marker or a ``runtime.probe()`` call, with its settings."""

    probe: Probe
    settings: ProbeSettings = dataclasses.field(default_factory=ProbeSettings)

    @property
    def signature(self) -> str:
        return self.probe.signature

    @property
    def location(self) -> str:
        return str(self.probe.location)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (sent from xdist workers to the controller)."""
        return {"probe": self.probe.to_dict(), "settings": self.settings.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeRequest:
        from sensor.probes import Probe

        return cls(Probe.from_dict(data["probe"]), ProbeSettings.from_dict(data["settings"]))


def _strings(argument: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise MarkerError(argument, value, "a list of strings, not one string")
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise MarkerError(argument, value, "a list of strings")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise MarkerError(argument, value, "a list of non-empty strings")
    return items


def _number(argument: str, value: object, *, whole: bool, minimum: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MarkerError(argument, value, "a whole number" if whole else "a number")
    if whole and not isinstance(value, int):
        raise MarkerError(argument, value, "a whole number")
    if not math.isfinite(value) or value < minimum:
        raise MarkerError(argument, value, f"a number >= {minimum:g}")
    return value


def exception_name(cls: type[BaseException]) -> str:
    """An exception class's name as the sensor writes it: ``ValueError``, ``json.decoder.X``."""
    module = getattr(cls, "__module__", "") or ""
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module == "builtins" else f"{module}.{qualname}"


def _raises(value: object) -> tuple[str, ...]:
    """``raises=``: a class, a dotted name, or a tuple/list of them; names the sensor's way."""
    items = value if isinstance(value, tuple | list) else (value,)
    if not items:
        raise MarkerError("raises", value, _RAISES_EXPECTED + " (not empty)")
    names = []
    for item in items:
        if isinstance(item, type) and issubclass(item, BaseException):
            names.append(exception_name(item))
        elif isinstance(item, str) and _DOTTED.match(item.strip()):
            name = item.strip()
            names.append(name[len("builtins.") :] if name.startswith("builtins.") else name)
        else:
            raise MarkerError("raises", value, _RAISES_EXPECTED)
    return tuple(sorted(set(names)))


def parse_probe_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> ProbeRequest:
    """Build a :class:`ProbeRequest` from marker (or fixture) arguments.

    Raises :class:`MarkerError` naming the argument and its value; errors from the probe
    model (a bad location, an expectation at ``@entry`` reading ``result``) are wrapped.
    """
    from sensor.errors import ProbeSpecError
    from sensor.probes import Probe

    unknown = sorted(set(kwargs) - set(_KNOWN))
    if unknown:
        raise MarkerError(unknown[0], kwargs[unknown[0]], "one of " + ", ".join(_KNOWN))
    if len(args) > 1:
        raise MarkerError("args", args, "one positional argument, the location")
    if args and "location" in kwargs:
        raise MarkerError("location", kwargs["location"], "the location given once")
    if not args and "location" not in kwargs:
        raise MarkerError(
            "location", None, "a location such as 'pkg.module:function@return' (first argument)"
        )
    location = args[0] if args else kwargs["location"]
    if not isinstance(location, str):
        raise MarkerError("location", location, "a string such as 'pkg.module:function@return'")

    capture = _strings("capture", kwargs.get("capture", ()))
    ignore = _strings("ignore", kwargs.get("ignore", ()))
    for name in ("expect", "condition", "template", "service"):
        value = kwargs.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise MarkerError(name, value, "a non-empty string")
    kind = kwargs.get("kind", "snapshot")
    if kind not in _KINDS:
        raise MarkerError("kind", kind, "one of " + ", ".join(_KINDS))
    labels = kwargs.get("labels", {})
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise MarkerError("labels", labels, "a mapping of strings to strings")
    strict = kwargs.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise MarkerError("strict", strict, "True or False")
    min_hits = kwargs.get("min_hits")
    if min_hits is not None:
        _number("min_hits", min_hits, whole=True, minimum=1)
    wait = kwargs.get("wait")
    if wait is not None:
        wait = float(_number("wait", wait, whole=False, minimum=0))
    rate = kwargs.get("rate")
    if rate is not None:
        rate = float(_number("rate", rate, whole=False, minimum=0))
    max_hits = kwargs.get("max_hits")
    if max_hits is not None:
        _number("max_hits", max_hits, whole=True, minimum=1)
    replay = kwargs.get("replay", False)
    if not isinstance(replay, bool):
        raise MarkerError("replay", replay, "True or False")
    plumbing = kwargs.get("plumbing")
    if plumbing is not None and not isinstance(plumbing, bool):
        raise MarkerError("plumbing", plumbing, "True or False")

    try:
        probe = Probe.from_dict(
            {
                "kind": kind,
                "location": location,
                "capture": list(capture),
                "condition": kwargs.get("condition"),
                "expect": kwargs.get("expect"),
                "template": kwargs.get("template"),
                "limits": {"rate": rate, "max_hits": max_hits},
                "tags": {"placed_by": "pytest-runtime"},
                "replay": replay,
            }
        )
    except ProbeSpecError as exc:
        argument = exc.field.split(".")[0]
        if argument not in _KNOWN:
            argument = "location" if argument == "location" else exc.field
        raise MarkerError(argument, exc.value, exc.expected) from exc
    _check_expressions(probe)
    raises: tuple[str, ...] = ()
    if kwargs.get("raises") is not None:
        raises = _raises(kwargs["raises"])
        point = probe.location.point.value
        if point not in ("return", "exception"):
            raise MarkerError(
                "raises",
                kwargs["raises"],
                f"a probe at @return or @exception (a probe at {location!r} never sees an "
                "exception leave the function)",
            )
    settings = ProbeSettings(
        ignore=ignore,
        min_hits=min_hits,
        strict=strict,
        wait=wait,
        service=kwargs.get("service"),
        labels=dict(labels),
        raises=raises,
        plumbing=plumbing,
    )
    return ProbeRequest(probe, settings)


def _check_expressions(probe: Probe) -> None:
    """Compile every expression now, so a refused one fails at collection, not in production."""
    try:
        from sensor import expressions
    except ImportError:  # the sandbox stream has not landed: the engine reports it at install
        return
    from sensor.errors import ExpressionError

    checks = [("expect", probe.expect), ("condition", probe.condition)]
    checks += [("capture", spec.expr) for spec in probe.capture]
    for argument, source in checks:
        if source is None:
            continue
        try:
            expressions.compile(source)
        except ExpressionError as exc:
            expected = f"an expression the sensor accepts ({exc})"
            raise MarkerError(argument, source, expected) from exc


def requests_for_item(item: pytest.Item) -> list[ProbeRequest]:
    """Every ``runtime_probe`` marker of a test (closest first), parsed; raises MarkerError."""
    requests = []
    for mark in item.iter_markers(name=MARKER):
        requests.append(parse_probe_args(mark.args, mark.kwargs))
    return requests
