"""Hypothesis strategies that draw production states, from evidence files or from the hub.

Writing generators is the hard part of property-based testing; production already wrote them::

    from hypothesis import given
    from pytest_runtime.strategies import production_examples, production_states

    STATES = production_states(
        "shop.pricing:apply_discount",
        variables=["price", "coupon", "currency"],
        evidence="evidence.jsonl",        # or hub="https://hub:8765" (SENSOR_CLIENT_TOKEN)
        around=True,                      # also values of the same shape and value class
    )

    @production_examples(STATES, "state")  # every run starts from the production states
    @given(state=STATES)
    def test_discount_never_negative(state):
        assert apply_discount(**state) >= 0

A state is one hit's values at the location: the arguments at entry for a replay probe, else
its captures. Each is rebuilt as real Python values (``Decimal``, ``datetime``, enums,
dataclasses, ... see :func:`pytest_runtime.compare.decode.rebuild`); a state with a value that
cannot be rebuilt whole (redacted, truncated, no constructor) is left out and counted in
:attr:`ProductionStates.skipped`, never drawn as something else. Evidence is read at the first
draw (or by :func:`production_examples`), not at import.

With ``around=True`` the strategy also draws *neighbours*: for each production state, values
of the same shape and value class (an int of the same sign, a Decimal with the same places, a
string over the same characters, a list of the same length, ...). The production states come
first in the strategy, so Hypothesis shrinks a failing neighbour toward them.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pytest_runtime.errors import EvidenceError

__all__ = ["ProductionStates", "production_examples", "production_states"]

F = TypeVar("F", bound=Callable[..., Any])

#: Explicit examples given by production_examples (the rarest states first).
DEFAULT_MAX_EXAMPLES = 20


@dataclasses.dataclass
class ProductionStates:
    """The production states of one location: encoded, ordered rarest first, loaded once."""

    location: str
    variables: tuple[str, ...] | None = None
    evidence: tuple[str, ...] = ()
    hub: str | None = None
    token: str | None = None
    since: float | None = None
    around: bool = False
    constructors: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None
    #: the encoded states (name -> typed JSON), rarest shape and value class first
    states: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: why states were left out: kind (redacted, truncated, no-constructor, missing) -> count
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    hits: int = 0  #: hits read at the location
    loaded: bool = False

    def load(self) -> ProductionStates:
        """Read the evidence (once); raise EvidenceError when no state can be drawn."""
        if self.loaded:
            return self
        from pytest_runtime.compare.decode import NotRebuildable, rebuild
        from pytest_runtime.replay import state_key

        seen: set[str] = set()
        groups: dict[str, list[dict[str, Any]]] = {}
        for hit in self._hits():
            self.hits += 1
            values = _values(hit)
            if values is None:
                self.skipped["no-values"] = self.skipped.get("no-values", 0) + 1
                continue
            if self.variables is not None:
                missing = [name for name in self.variables if name not in values]
                if missing:
                    self.skipped["missing"] = self.skipped.get("missing", 0) + 1
                    continue
                values = {name: values[name] for name in self.variables}
            canonical = json.dumps(values, sort_keys=True, default=str)
            if canonical in seen:
                continue
            seen.add(canonical)
            try:
                for name, node in values.items():
                    rebuild(node, constructors=self.constructors, path=name)
            except NotRebuildable as exc:
                self.skipped[exc.kind] = self.skipped.get(exc.kind, 0) + 1
                continue
            groups.setdefault(state_key(values), []).append(values)
        ordered = sorted(groups.values(), key=len)
        depth = 0
        while any(depth < len(g) for g in ordered):
            self.states.extend(g[depth] for g in ordered if depth < len(g))
            depth += 1
        self.loaded = True
        if not self.states:
            skipped = ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items())) or "none"
            raise EvidenceError(
                f"production_states({self.location!r}): no production state to draw from "
                f"{self._where()} ({self.hits} hit(s) at the location; left out: {skipped})"
            )
        return self

    def value(self, index: int) -> dict[str, Any]:
        """A fresh rebuild of state ``index`` (a test may mutate what it draws)."""
        from pytest_runtime.compare.decode import rebuild

        return {
            name: rebuild(node, constructors=self.constructors, path=name)
            for name, node in self.states[index].items()
        }

    def examples(self, limit: int | None = DEFAULT_MAX_EXAMPLES) -> list[dict[str, Any]]:
        """The first ``limit`` states (rarest first; None: all of them), rebuilt."""
        self.load()
        count = len(self.states) if limit is None else min(limit, len(self.states))
        return [self.value(i) for i in range(count)]

    def strategy(self) -> Any:
        """The Hypothesis strategy (loads the evidence)."""
        from hypothesis import strategies as st

        self.load()
        indices = st.sampled_from(range(len(self.states)))
        exact = indices.map(self.value)
        if not self.around:
            return exact
        # Each variable keeps its production value or moves to a neighbour of it (the value
        # first, so a failing draw shrinks back toward it); strings may also take another
        # value production had for the variable (a currency, a coupon code).
        rebuilt = [self.value(i) for i in range(len(self.states))]
        pools: dict[str, list[Any]] = {}
        for state in rebuilt:
            for name, value in state.items():
                pool = pools.setdefault(name, [])
                if type(value) is str and value not in pool:
                    pool.append(value)
        neighbours = [
            st.fixed_dictionaries(
                {
                    name: st.one_of(st.just(value), _around(value, pool=pools.get(name, ())))
                    for name, value in state.items()
                }
            )
            for state in rebuilt
        ]
        return st.one_of(exact, indices.flatmap(lambda i: neighbours[i]))

    def _where(self) -> str:
        if self.evidence:
            return "evidence " + ", ".join(self.evidence)
        return f"hub {self.hub}"

    def _hits(self) -> Iterable[Mapping[str, Any]]:
        from sensor.probes import Location

        location = str(Location.parse(self.location))
        if self.evidence:
            from pytest_runtime.evidence import read

            evidence = read(self.evidence)
            for hits in evidence.hits.values():
                for hit in hits:
                    if str(hit.get("location")) == location and _since(hit, self.since):
                        yield hit
            return
        if not self.hub:
            raise EvidenceError(
                f"production_states({self.location!r}): no evidence= file and no hub= URL "
                "(nor $PYTEST_RUNTIME_HUB) to read production states from"
            )
        from pytest_runtime.hub import HubClient

        client = HubClient(self.hub, self.token)
        try:
            for signature in client.signatures_at(location):
                for hit in client.evidence(signature, since=self.since).hits_for(signature):
                    yield hit
        finally:
            client.close()


def _since(hit: Mapping[str, Any], since: float | None) -> bool:
    return since is None or float(hit.get("ts") or 0) >= since


def _values(hit: Mapping[str, Any]) -> dict[str, Any] | None:
    arguments = hit.get("arguments")
    if isinstance(arguments, Mapping) and isinstance(arguments.get("values"), Mapping):
        return dict(arguments["values"])
    captures = hit.get("captures")
    return dict(captures) if isinstance(captures, Mapping) and captures else None


def _hub_from_env() -> str | None:
    """``$PYTEST_RUNTIME_HUB`` as the plugin reads it: blank or not a URL is an error naming it."""
    from sensor.config import check_hub_url

    raw = os.environ.get("PYTEST_RUNTIME_HUB")
    return None if raw is None else check_hub_url("PYTEST_RUNTIME_HUB", raw)


def production_states(
    location: str,
    *,
    variables: Sequence[str] | None = None,
    evidence: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    hub: str | None = None,
    since: float | None = None,
    around: bool = False,
    constructors: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
) -> Any:
    """A Hypothesis strategy of dicts ``{variable: value}`` drawn from production states.

    ``location`` is the probe location (``module:function`` is its ``@return``); ``variables``
    the names to draw (default: all of a hit's arguments or captures); ``evidence`` one or more
    evidence files or directories, else ``hub`` (default ``$PYTEST_RUNTIME_HUB``, token from
    ``$SENSOR_CLIENT_TOKEN``); ``since`` epoch seconds; ``around`` adds neighbours of the same
    shape and value class; ``constructors`` rebuilds user types (type name -> callable). The
    strategy's ``production`` attribute is the :class:`ProductionStates` behind it.
    """
    from hypothesis import strategies as st

    from sensor.probes import Location

    Location.parse(location)  # a bad location is an error here, with the reason
    if isinstance(evidence, str | os.PathLike):
        paths: tuple[str, ...] = (os.fspath(evidence),)
    else:
        paths = tuple(os.fspath(p) for p in evidence or ())
    source = ProductionStates(
        location=location,
        variables=tuple(variables) if variables is not None else None,
        evidence=paths,
        hub=(hub or _hub_from_env()) if not paths else None,
        token=os.environ.get("SENSOR_CLIENT_TOKEN") or os.environ.get("PYTEST_RUNTIME_TOKEN"),
        since=since,
        around=around,
        constructors=constructors,
    )
    strategy = st.deferred(lambda: source.strategy())
    strategy.production = source  # type: ignore[attr-defined]
    return strategy


def production_examples(
    strategy: Any, argname: str, *, limit: int | None = DEFAULT_MAX_EXAMPLES
) -> Callable[[F], F]:
    """Give the first ``limit`` production states (rarest first) as explicit ``@example``\\ s.

    Put it above ``@given``: every run of the test starts from them, whatever Hypothesis then
    generates (and they are run even with ``--hypothesis-seed`` or a cold database).
    ``limit=None`` gives every distinct production state (each is one call of the test).
    """
    from hypothesis import example

    if limit is not None and (type(limit) is not int or limit < 1):
        raise ValueError(
            f"production_examples: limit={limit!r}, expected a whole number >= 1 or None"
        )
    source = getattr(strategy, "production", None)
    if not isinstance(source, ProductionStates):
        raise TypeError(
            f"production_examples: got {strategy!r:.80}, expected a strategy made by "
            "production_states()"
        )

    def decorate(test: F) -> F:
        decorated: Any = test
        for state in reversed(source.examples(limit)):
            decorated = example(**{argname: state})(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate


# --------------------------------------------------------------------------- neighbours


def _around(value: Any, depth: int = 0, pool: Sequence[Any] = ()) -> Any:
    """A strategy of values of the same shape and value class as ``value`` (``pool``: other
    production values of the variable)."""
    from hypothesis import strategies as st

    if depth > 8:
        return st.just(value)
    t = type(value)
    if value is None or t is bool:
        return st.just(value)
    if t is int:
        if value == 0:
            return st.just(0)
        span = abs(value) * 2 + 10
        return st.integers(1, span) if value > 0 else st.integers(-span, -1)
    if t is float:
        if value != value or value in (float("inf"), float("-inf")) or value == 0:
            return st.just(value)
        span = abs(value) * 2 + 10
        low, high = (1e-9, span) if value > 0 else (-span, -1e-9)
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if t is decimal.Decimal:
        if not value.is_finite() or value == 0:
            return st.just(value)
        exponent = value.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        span = abs(value) * 2 + 10
        quantum = decimal.Decimal(1).scaleb(-places)
        low, high = (quantum, span) if value > 0 else (-span, -quantum)
        return st.decimals(low, high, places=places, allow_nan=False, allow_infinity=False)
    if t is str:
        if not value:
            return st.just("")
        text = st.text(alphabet=sorted(set(value)), min_size=1, max_size=max(1, len(value) * 2))
        return st.one_of(st.sampled_from(list(pool)), text) if pool else text
    if t is list or t is tuple:
        if not value:
            return st.just(t())
        items = st.one_of(*[_around(x, depth + 1) for x in value])
        strategy = st.lists(items, min_size=len(value), max_size=len(value))
        return strategy if t is list else strategy.map(tuple)
    if t is dict and all(type(k) is str for k in value):
        return st.fixed_dictionaries({k: _around(x, depth + 1) for k, x in value.items()})
    return st.just(value)  # other types keep the production value
