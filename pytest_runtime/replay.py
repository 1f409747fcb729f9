"""Replay: call a marked function, as the test process has it, on production argument states.

A probe marked ``replay=True`` records, for each sampled call in production, the arguments at
entry and the outcome (the returned value or the exception) in one hit. With
``--runtime-replay N`` the plugin picks up to N distinct argument states from that evidence
(exact duplicates once; the rarest shape and value class first, one of each class before a
second of any), rebuilds them as real Python values (:func:`pytest_runtime.compare.decode.
rebuild`), calls the function of the test process on each (the PR's code) with the same probe
armed in-process, and compares every outcome with the one production had:

- the marker's expectation on the new outcome: broken on a production state fails the test;
- the outcome itself: a different result (deepdiff of old and new) or exception on a state
  that production handled well is a behaviour change the PR's own tests did not show;
- a state that cannot be rebuilt whole (redacted, truncated, a type with no constructor) is
  counted and named, never replayed as something else.

It runs in the marked test's call phase, right after the test body and its probes, so that the
test's fixtures (fakes of side effects) are still in place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_runtime.markers import ProbeRequest

__all__ = [
    "ReplayReport",
    "call_arguments",
    "resolve_function",
    "run_replay",
    "select_states",
    "state_key",
]

_MAX_EXAMPLES = 5  # states shown per category (all are counted)
_MAX_DIFF_LINES = 8
_MAX_REASONS = 5  # distinct not-rebuildable reasons named per kind


@dataclasses.dataclass
class ReplayReport:
    """What replaying one probe's production states on the test process's code showed."""

    nodeid: str
    location: str
    signature: str
    available: int = 0  #: production hits of the probe read
    no_arguments: int = 0  #: hits without arguments (not from a replay probe)
    distinct: int = 0  #: distinct argument states among them
    limit: int = 0  #: --runtime-replay N
    replayed: int = 0  #: states called
    held: int = 0  #: new outcome keeps the expectation (and raises nothing undeclared)
    fails_now: int = 0  #: new outcome breaks the expectation or raises an undeclared exception
    production_failed: int = 0  #: of the replayed states, those that failed in production
    failing_distinct: int = 0  #: distinct states in the evidence that failed in production
    fixed: int = 0  #: failed in production, hold now
    changed: int = 0  #: held in production, and the outcome differs now
    not_rebuildable: dict[str, int] = dataclasses.field(default_factory=dict)  #: kind -> count
    reasons: dict[str, list[str]] = dataclasses.field(default_factory=dict)  #: kind -> examples
    not_called: int = 0  #: rebuilt but not callable with them (the signature changed)
    examples: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    error: str | None = None  #: why nothing could be replayed at all
    strict: bool = False

    @property
    def verifies_fix(self) -> bool:
        """True when every distinct state that failed in production was replayed and holds
        now (none cut by the limit or left unrebuildable), and no replayed state fails."""
        return (
            not self.fails_now
            and self.error is None
            and self.failing_distinct > 0
            and self.fixed == self.failing_distinct
        )

    @property
    def fails(self) -> bool:
        """True when the test fails: the expectation broke on a production state (or, under
        strict, the behaviour changed on one, or nothing could be replayed)."""
        if self.fails_now:
            return True
        return self.strict and bool(self.changed or self.error)

    def skipped(self) -> int:
        return sum(self.not_rebuildable.values())

    def lines(self) -> list[str]:
        """What the report says, most important first (terminal, failure text, markdown)."""
        head = f"replay {self.location}: "
        out: list[str] = []
        if self.error is not None:
            return [head + self.error]
        if not self.replayed:
            out.append(
                head + f"no production state could be replayed ({self.available} production "
                f"hit(s), {self.distinct} distinct argument state(s))"
            )
        elif self.fails_now:
            out.append(
                head + f"the expectation fails on {self.fails_now} of {self.replayed} production "
                "state(s) with this code"
                + (
                    f"; {self.production_failed} of them failed in production too"
                    if self.production_failed
                    else ""
                )
            )
        elif self.production_failed:
            out.append(
                head + f"the fix holds on {self.replayed} production states; "
                f"{self.production_failed} of them violated the expectation in production"
            )
        else:
            out.append(
                head + f"the expectation holds on {self.replayed} production states (none "
                "failed in production either)"
            )
        if self.changed:
            out.append(
                f"  behaviour changed on {self.changed} of {self.replayed} production states "
                "(states production handled well)"
            )
        for category in ("fails_now", "changed"):
            for example in self.examples.get(category, [])[:3]:
                out.append(f"    production hit {example['hit_id']}: {example['arguments']}")
                out.extend(f"      {line}" for line in example.get("lines", ()))
        skipped = self.skipped()
        if skipped:
            parts = []
            for kind, count in sorted(self.not_rebuildable.items()):
                named = "; ".join(self.reasons.get(kind, [])[:2])
                parts.append(f"{count} {kind}" + (f" ({named})" if named else ""))
            out.append(f"  {skipped} state(s) not rebuildable: " + ", ".join(parts))
        if self.not_called:
            out.append(
                f"  {self.not_called} state(s) not callable with production's arguments "
                "(the function's signature changed)"
            )
        if self.no_arguments:
            out.append(
                f"  {self.no_arguments} hit(s) carry no arguments (not from a replay probe): "
                "not replayed"
            )
        if self.distinct > self.replayed + skipped + self.not_called:
            out.append(
                f"  {self.distinct} distinct production states; replayed up to "
                f"--runtime-replay {self.limit}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["fails"] = self.fails
        data["verifies_fix"] = self.verifies_fix
        data["summary"] = self.lines()[0] if self.lines() else ""
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplayReport:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- choosing states


def _leaf_class(type_name: str, value: Any) -> str:
    from pytest_runtime.compare.values import text_classes

    if type_name in ("int", "float", "decimal.Decimal") or isinstance(value, int | float):
        try:
            x = float(str(value))
        except ValueError:
            return type_name
        return "zero" if x == 0 else "negative" if x < 0 else "positive" if x == x else "nan"
    if type_name == "str" and isinstance(value, str):
        return ",".join(sorted(text_classes(value)))
    return type_name


def state_key(values: Mapping[str, Any]) -> str:
    """The shape and value class of one argument state (equal keys: the same class of state)."""
    from pytest_runtime.compare.shapes import ShapeWalker

    shape, leaves = ShapeWalker().walk(values)
    classes = sorted({(path, _leaf_class(t, v)) for path, t, v in leaves})
    text = json.dumps([sorted(map(list, shape)), classes], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _failed(hit: Mapping[str, Any], raises: Sequence[str]) -> bool:
    """True when a hit's outcome broke the expectation or raised an undeclared exception."""
    outcome = hit.get("outcome") or {}
    if "raised" in outcome:
        from pytest_runtime.compare.verdict import _declared

        return not _declared(str(outcome["raised"]), raises)
    expect = hit.get("expect")
    return isinstance(expect, Mapping) and expect.get("ok") is not True


def select_states(
    hits: Iterable[Mapping[str, Any]], limit: int, *, raises: Sequence[str] = ()
) -> tuple[list[Mapping[str, Any]], int, int, int, int]:
    """``(chosen hits, hits read, hits without arguments, distinct states, distinct states
    that failed in production)``.

    Exact duplicates (same encoded arguments) count once; states are grouped by shape and
    value class, the smallest groups (the rarest states) first, one state of every group
    before a second of any; within a group, states that failed in production first.
    """
    seen: set[str] = set()
    failing = 0
    groups: dict[str, list[tuple[int, str, Mapping[str, Any]]]] = {}
    total = missing = 0
    for hit in hits:
        total += 1
        arguments = hit.get("arguments")
        if not isinstance(arguments, Mapping) or not isinstance(arguments.get("values"), Mapping):
            missing += 1
            continue
        canonical = json.dumps(arguments["values"], sort_keys=True, default=str)
        if canonical in seen:
            continue
        seen.add(canonical)
        rank = 0 if _failed(hit, raises) else 1
        failing += 1 - rank
        digest = hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()
        groups.setdefault(state_key(arguments["values"]), []).append((rank, digest, hit))
    ordered = [sorted(members, key=lambda m: m[:2]) for _, members in sorted(groups.items())]
    ordered.sort(key=lambda members: (len(members), members[0][:2]))
    chosen: list[Mapping[str, Any]] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(m) for m in ordered):
        for members in ordered:
            if depth < len(members) and len(chosen) < limit:
                chosen.append(members[depth][2])
        depth += 1
    return chosen, total, missing, len(seen), failing


# --------------------------------------------------------------------------- calling


def resolve_function(location: str) -> Callable[..., Any]:
    """The function at ``module:qualname`` as the test process has it; ValueError if none."""
    module_name, _, rest = location.partition(":")
    qualname = rest.partition("@")[0]
    if "<locals>" in qualname:
        raise ValueError(
            f"{qualname} is a nested function: the test process cannot reach it by name"
        )
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"{module_name} has no {qualname}")
    if not callable(obj):
        raise ValueError(f"{location} is not callable")
    return obj  # type: ignore[no-any-return]


def call_arguments(
    arguments: Mapping[str, Any], rebuilt: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments of the call, from the hit's layout and rebuilt values.

    Parameters before ``*args`` go by position (``*args`` follows them), keyword-only ones and
    ``**kwargs`` by name: the binding production's call had.
    """
    names = list(arguments.get("names") or rebuilt)
    positional = int(arguments.get("positional", len(names)))
    varargs = arguments.get("varargs")
    varkw = arguments.get("varkw")
    args = [rebuilt[name] for name in names[:positional] if name in rebuilt]
    kwargs: dict[str, Any] = {}
    for name in names[positional:]:
        if name in (varargs, varkw) or name not in rebuilt:
            continue
        kwargs[name] = rebuilt[name]
    if varargs and varargs in rebuilt:
        args.extend(rebuilt[varargs])
    if varkw and varkw in rebuilt:
        kwargs.update(rebuilt[varkw])
    return args, kwargs


def _render_arguments(values: Mapping[str, Any], names: Sequence[str] = ()) -> str:
    """``price=Decimal('3.50'), coupon='FIXED'``: in parameter order, bounded."""
    from pytest_runtime.session import render_value

    order = [n for n in names if n in values] + [n for n in values if n not in names]
    text = ", ".join(f"{k}={render_value(values[k], 60)}" for k in order)
    return text if len(text) <= 300 else text[:297] + "..."


def _outcome_text(outcome: Mapping[str, Any] | None) -> str:
    from pytest_runtime.session import render_value

    if not outcome:
        return "no outcome"
    if "raised" in outcome:
        return f"raised {outcome['raised']}"
    return f"returned {render_value(outcome.get('returned'), 80)}"


def _difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str] | None:
    """deepdiff lines from production's outcome to the new one, None when they are the same."""
    if "returned" in old and "returned" in new:
        a = json.dumps(old["returned"], sort_keys=True, default=str)
        b = json.dumps(new["returned"], sort_keys=True, default=str)
        if a == b:
            return None
        from pytest_runtime.compare.diff import decode_state, diff_lines

        lines = diff_lines(
            decode_state({"result": old["returned"]}, None),
            decode_state({"result": new["returned"]}, None),
            max_lines=_MAX_DIFF_LINES,
        )
        return (
            ["production -> this code:", *lines]
            if lines
            else [f"production {_outcome_text(old)}; this code {_outcome_text(new)}"]
        )
    if old.get("raised") is not None and old.get("raised") == new.get("raised"):
        return None
    return [f"production {_outcome_text(old)}; this code {_outcome_text(new)}"]


def run_replay(
    request: ProbeRequest,
    hits: Sequence[Mapping[str, Any]],
    *,
    nodeid: str,
    limit: int,
    engine: Any,
    constructors: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
    strict: bool = False,
) -> ReplayReport:
    """Replay up to ``limit`` production states of ``request``'s probe (see the module doc)."""
    from pytest_runtime.compare.decode import NotRebuildable, rebuild
    from sensor.probes import ProbeLimits

    probe = request.probe
    raises = tuple(request.settings.raises)
    report = ReplayReport(nodeid, request.location, request.signature, limit=limit, strict=strict)
    (
        chosen,
        report.available,
        report.no_arguments,
        report.distinct,
        report.failing_distinct,
    ) = select_states(hits, limit, raises=raises)
    if not report.available:
        report.error = (
            "no production evidence to replay yet (a replay=True probe records arguments in "
            "production: place it, or read an evidence file that has its hits)"
        )
        return report
    try:
        function = resolve_function(str(probe.location))
    except (ImportError, ValueError) as exc:
        report.error = f"cannot replay: {exc}"
        return report
    import inspect

    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None
    local = probe.with_changes(
        id=f"replay-{uuid.uuid4().hex[:20]}",
        limits=ProbeLimits(rate=1e9, burst=10**9, capture=probe.limits.capture),
    )
    collected: list[Any] = []
    status = engine.install(local, on_hit=collected.append)
    if str(status.state) == "error":
        report.error = f"cannot replay: the probe could not be armed: {status.reason}"
        return report
    try:
        for hit in chosen:
            _replay_one(
                report,
                hit,
                function,
                signature,
                collected,
                constructors,
                raises,
                rebuild,
                NotRebuildable,
            )
    finally:
        engine.remove(local.id)
    return report


def _replay_one(
    report: ReplayReport,
    hit: Mapping[str, Any],
    function: Callable[..., Any],
    signature: Any,
    collected: list[Any],
    constructors: Any,
    raises: Sequence[str],
    rebuild: Callable[..., Any],
    not_rebuildable: type[Exception],
) -> None:
    arguments = hit["arguments"]
    values = arguments["values"]
    try:
        rebuilt = {
            name: rebuild(node, constructors=constructors, path=name)
            for name, node in values.items()
        }
    except not_rebuildable as exc:
        kind = str(getattr(exc, "kind", "unsupported"))
        report.not_rebuildable[kind] = report.not_rebuildable.get(kind, 0) + 1
        named = report.reasons.setdefault(kind, [])
        if str(exc) not in named and len(named) < _MAX_REASONS:
            named.append(str(exc))
        return
    args, kwargs = call_arguments(arguments, rebuilt)
    if signature is not None:
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            report.not_called += 1
            named = report.reasons.setdefault("not-callable", [])
            if len(named) < _MAX_REASONS:
                named.append(f"{exc}")
            return
    before = len(collected)
    raised: Exception | None = None
    try:
        function(*args, **kwargs)
    except Exception as exc:  # the outcome is in the replay probe's hit; kept for a lost hit
        raised = exc
    mine = collected[before:]
    report.replayed += 1
    new = mine[-1].to_dict() if mine else {}
    old_outcome = hit.get("outcome") or {}
    new_outcome = new.get("outcome") or {}
    failed_before = _failed(hit, raises)
    failed_now = bool(new) and _failed(new, raises)
    if not new:
        failed_now = True  # the probe saw no end of this call: never counted as holding
    difference = (
        _difference(old_outcome, new_outcome)
        if new
        else [f"this call left no hit ({type(raised).__name__ if raised else 'returned'})"]
    )
    if failed_before:
        report.production_failed += 1
    if failed_now:
        report.fails_now += 1
        category = "fails_now"
    else:
        report.held += 1
        if failed_before:
            report.fixed += 1
            category = "fixed"
        elif difference is not None:
            report.changed += 1
            category = "changed"
        else:
            return
    examples = report.examples.setdefault(category, [])
    if len(examples) < _MAX_EXAMPLES:
        lines = list(difference or [])
        expect = new.get("expect")
        if failed_now and isinstance(expect, Mapping) and expect.get("ok") is not True:
            lines.insert(
                0,
                f"expectation {expect.get('ok')!r} on this code's outcome "
                f"({_outcome_text(new_outcome)})"
                + (f": {expect['error']}" if expect.get("error") else ""),
            )
        examples.append(
            {
                "hit_id": str(hit.get("hit_id") or "?"),
                "arguments": _render_arguments(values, arguments.get("names") or ()),
                "production": _outcome_text(old_outcome),
                "now": _outcome_text(new_outcome),
                "lines": lines,
            }
        )
