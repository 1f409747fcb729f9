"""Replay and lines probes on every backend: one hit per sampled call, from entry to end."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import ModuleType

import pytest

from sensor.engine import Engine
from sensor.errors import ProbeSpecError
from sensor.probes import Hit, Probe, ProbeState

Loader = Callable[..., ModuleType]

TARGET = """
from decimal import Decimal

def discount(price, coupon=None, *extra, currency="USD", **options):
    price = price * 2  # a local that shadows the argument: the hit keeps the entry value
    if coupon == "BAD":
        raise ValueError(f"bad coupon {coupon}")
    return price - 1

def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)

def shipping(country, postcode):
    zone = 1
    if country != "US":
        zone = 3
    if postcode and postcode[:1] == "9":
        zone += 1
        zone += 0
    return zone

def gen(n):
    yield n

async def coro(n):
    return n

def secret(token, amount):
    return amount

def grows(items):
    items.append(99)
    return len(items)
"""


def _collect(engine: Engine, probe: Probe) -> tuple[list[Hit], object]:
    hits: list[Hit] = []
    status = engine.install(probe, on_hit=hits.append)
    return hits, status


def _replay(location: str, **kw: object) -> Probe:
    return Probe(
        kind="snapshot",
        location=location,
        replay=True,
        limits={"rate": 1e9, "burst": 10**9},
        **kw,  # type: ignore[arg-type]
    )


def test_replay_hit_holds_entry_arguments_and_result(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    hits, status = _collect(engine, _replay(f"{mod.__name__}:discount", expect="result > 0"))
    assert status.state is ProbeState.INSTALLED, status.reason
    assert mod.discount(3, "OK", 7, currency="EUR", flag=True) == 5
    [hit] = hits
    assert hit.arguments is not None
    values = hit.arguments["values"]
    assert values["price"] == 3  # at entry, before the body reassigned it
    assert values["coupon"] == "OK"
    assert values["extra"] == {"@t": "tuple", "v": [7]}
    assert values["currency"] == "EUR"
    assert values["options"] == {"@t": "dict", "v": {"flag": True}}
    assert hit.arguments["varargs"] == "extra"
    assert hit.arguments["varkw"] == "options"
    assert hit.arguments["names"] == ["price", "coupon", "currency", "extra", "options"]
    assert hit.outcome == {"returned": 5}
    assert hit.expect == {"ok": True, "error": None}


def test_replay_hit_of_an_exception_exit_names_the_exception(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    hits, _ = _collect(engine, _replay(f"{mod.__name__}:discount"))
    with pytest.raises(ValueError, match="bad coupon"):
        mod.discount(2, "BAD")
    [hit] = hits
    assert hit.outcome == {"raised": "ValueError"}
    assert hit.exception is not None
    assert hit.exception["type"] == "ValueError"
    assert hit.arguments is not None
    assert hit.arguments["values"]["coupon"] == "BAD"
    assert engine.status(hits[0].probe_id).exceptions == 1  # type: ignore[union-attr]


def test_replay_pairs_entries_and_exits_under_recursion(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    hits, _ = _collect(engine, _replay(f"{mod.__name__}:fact"))
    assert mod.fact(4) == 24
    pairs = sorted((h.arguments["values"]["n"], h.outcome["returned"]) for h in hits)  # type: ignore[index]
    assert pairs == [(1, 1), (2, 2), (3, 6), (4, 24)]


def test_replay_pairs_calls_of_many_threads(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    hits, _ = _collect(engine, _replay(f"{mod.__name__}:fact"))
    threads = [threading.Thread(target=mod.fact, args=(n,)) for n in range(2, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    import math

    for hit in hits:
        n = hit.arguments["values"]["n"]  # type: ignore[index]
        assert hit.outcome == {"returned": math.factorial(n)}
    assert len(hits) == sum(range(2, 9))


def test_replay_never_keeps_a_reference_and_sees_arguments_before_mutation(
    engine: Engine, load: Loader
) -> None:
    mod = load(TARGET)
    hits, _ = _collect(engine, _replay(f"{mod.__name__}:grows"))
    items = [1]
    assert mod.grows(items) == 2
    [hit] = hits
    assert hit.arguments["values"]["items"] == {"@t": "list", "v": [1]}  # type: ignore[index]
    probe_id = hit.probe_id
    assert engine._probes[probe_id].pending == {}  # nothing of the call is kept


@pytest.mark.parametrize("name", ["gen", "coro"])
def test_replay_refuses_generators_and_coroutines(engine: Engine, load: Loader, name: str) -> None:
    mod = load(TARGET)
    _, status = _collect(engine, _replay(f"{mod.__name__}:{name}"))
    assert status.state is ProbeState.ERROR  # type: ignore[attr-defined]
    assert "replay needs a plain function" in str(status.reason)  # type: ignore[attr-defined]


def test_replay_redacts_secret_arguments(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    hits, _ = _collect(engine, _replay(f"{mod.__name__}:secret"))
    mod.secret("tok-123456789", 5)
    [hit] = hits
    token = hit.arguments["values"]["token"]  # type: ignore[index]
    assert token["@redacted"] == "name"
    assert "tok-" not in repr(hit.to_dict())


def test_replay_samples_calls_at_the_probe_rate(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    probe = Probe(kind="snapshot", location=f"{mod.__name__}:fact", replay=True)
    hits, _ = _collect(engine, probe)
    for _ in range(200):
        mod.fact(1)
    assert len(hits) == 1  # the default snapshot rate: 1 call a second
    status = engine.status(probe.id)
    assert status is not None
    assert status.skipped_rate == 199


def test_replay_option_is_checked_where_the_probe_is_made() -> None:
    with pytest.raises(ProbeSpecError, match="replay"):
        Probe(kind="snapshot", location="m:f@entry", replay=True)
    with pytest.raises(ProbeSpecError, match="replay"):
        Probe(kind="counter", location="m:f", replay=True)
    plain = Probe(kind="snapshot", location="m:f")
    assert "replay" not in plain.to_dict()
    replay = Probe(kind="snapshot", location="m:f", replay=True)
    assert replay.signature != plain.signature
    assert Probe.from_dict(replay.to_dict()).replay is True


def _lines(location: str, **limits: object) -> Probe:
    return Probe(kind="lines", location=location, limits={"rate": 1e9, "burst": 10**9, **limits})


def _settrace_lines(function: Callable[..., object], *args: object) -> set[int]:
    seen: set[int] = set()
    code = function.__code__  # type: ignore[attr-defined]

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        if frame.f_code is code and event == "line":
            seen.add(frame.f_lineno)
        return tracer

    sys.settrace(tracer)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return seen


def test_lines_probe_records_the_lines_each_call_ran(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    expected_west = _settrace_lines(mod.shipping, "US", "94103")
    expected_east = _settrace_lines(mod.shipping, "DE", "10115")
    hits, status = _collect(engine, _lines(f"{mod.__name__}:shipping"))
    assert status.state is ProbeState.INSTALLED, status.reason  # type: ignore[attr-defined]
    assert mod.shipping("US", "94103") == 2
    assert mod.shipping("DE", "10115") == 3
    assert [set(h.lines["ran"]) for h in hits] == [expected_west, expected_east]  # type: ignore[index]
    assert hits[0].lines["first"] <= min(expected_west)  # type: ignore[index]
    assert len(hits[0].lines["source"]) == 16  # type: ignore[index]
    assert expected_west - expected_east  # the west-coast lines ran on the first call only


def test_lines_probe_separates_recursive_calls(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    hits, _ = _collect(engine, _lines(f"{mod.__name__}:fact"))
    mod.fact(3)
    base = mod.fact.__code__.co_firstlineno
    ran = sorted(tuple(h.lines["ran"]) for h in hits)  # type: ignore[index]
    assert ran == sorted([(base + 1, base + 2), (base + 1, base + 3), (base + 1, base + 3)]), ran


def test_lines_probe_records_calls_that_raise(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    hits, _ = _collect(engine, _lines(f"{mod.__name__}:discount"))
    with pytest.raises(ValueError, match="bad coupon"):
        mod.discount(1, "BAD")
    [hit] = hits
    assert hit.exception is not None
    assert hit.exception["type"] == "ValueError"
    base = mod.discount.__code__.co_firstlineno
    assert hit.lines["ran"] == [base + 1, base + 2, base + 3]  # type: ignore[index]


def test_lines_probe_between_samples_runs_no_line_hook(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    probe = Probe(kind="lines", location=f"{mod.__name__}:shipping", limits={"rate": 1.0})
    hits, _ = _collect(engine, probe)
    mod.shipping("US", "94103")  # the sample of this second
    assert len(hits) == 1
    called: list[str] = []

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name in ("on_line", "on_return", "on_raise"):
            called.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        for _ in range(50):
            mod.shipping("US", "94103")
    finally:
        sys.setprofile(None)
    assert len(hits) == 1
    assert engine._probes[probe.id].pending == {}
    if engine.backend_name != "monitoring":
        # The switch is tested inline: no call between samples. (sys.monitoring alone calls
        # the line hooks, which return at their switch test; its callbacks are not profiled.)
        assert called == []
    status = engine.status(probe.id)
    assert status is not None
    assert status.hits == 1
    assert status.skipped_rate == 50


def test_lines_probe_refuses_coroutines(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    _, status = _collect(engine, _lines(f"{mod.__name__}:coro"))
    assert status.state is ProbeState.ERROR  # type: ignore[attr-defined]
    assert "lines probe needs a plain function" in str(status.reason)  # type: ignore[attr-defined]


def test_lines_probe_removal_restores_the_code(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    code = mod.shipping.__code__
    probe = _lines(f"{mod.__name__}:shipping")
    engine.install(probe, on_hit=lambda hit: None)
    engine.remove(probe.id)
    assert mod.shipping.__code__ is code
    assert mod.shipping("US", "94103") == 2
