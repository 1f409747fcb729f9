"""The fused hot path of an always-on expectation: the same answers, rules and metering, cheaper.

An expectation evaluated on every call goes through :mod:`sensor.hotpath` and the compiler's
inline forms (the probe's value in a slot, chained order comparisons, ``isinstance`` of builtin
classes, ``sum`` of a short list of numbers). Each test here holds one of them to the general
path's behaviour: the same value or the same error, no user code run, every firing metered.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from sensor import guards, hotpath
from sensor.engine import Engine
from sensor.errors import ExpressionError
from sensor.expressions import Redacted, compile
from sensor.guards import CpuBudget, Novelty, tally_count, value_class
from sensor.hotpath import SETTLE_EVERY, FastExpectGate
from sensor.probes import Probe, ProbeState

SECRET = "AKIAIOSFODNN7EXAMPLE"  # a secret by content (R2)


class Hostile:
    """Every hook Python could call on it records the call (none may be)."""

    calls: list[str] = []

    def __eq__(self, other: object) -> bool:
        Hostile.calls.append("__eq__")
        return True

    __hash__ = object.__hash__

    def __lt__(self, other: object) -> bool:
        Hostile.calls.append("__lt__")
        return True

    def __le__(self, other: object) -> bool:
        Hostile.calls.append("__le__")
        return True

    def __ge__(self, other: object) -> bool:
        Hostile.calls.append("__ge__")
        return True

    def __bool__(self) -> bool:
        Hostile.calls.append("__bool__")
        return True

    def __repr__(self) -> str:
        Hostile.calls.append("__repr__")
        return "Hostile()"

    def __len__(self) -> int:
        Hostile.calls.append("__len__")
        return 1

    def __iter__(self) -> Any:
        Hostile.calls.append("__iter__")
        return iter([1])


class Meta(type):
    def __eq__(cls, other: object) -> bool:
        Hostile.calls.append("Meta.__eq__")
        return True

    __hash__ = type.__hash__

    def __instancecheck__(cls, obj: object) -> bool:
        Hostile.calls.append("Meta.__instancecheck__")
        return True


class WithMeta(metaclass=Meta):
    pass


class Text(str):
    pass


def outcome(fn: Callable[[], object]) -> tuple[str, object]:
    """('value', v) or ('error', message): Redacted markers compared by their class."""
    try:
        v = fn()
    except ExpressionError as exc:
        return "error", re.sub(r"^expression '[^']*'", "", str(exc))  # the source aside
    if isinstance(v, Redacted):
        return "redacted", type(v).__name__
    if isinstance(v, float) and math.isnan(v):
        return "value", "nan"
    return "value", (type(v), v)


VALUES: list[object] = [
    0,
    -3,
    7.5,
    math.nan,
    True,
    None,
    "short",
    "a longer clean text",
    SECRET,
    Text("abcdefgh"),
    [1, 2, 3],
    (1.5, 2),
    ["password", 5],
    Hostile(),
    WithMeta(),
]

SOURCES = [
    "result >= 0",
    "result > 1",
    "result < 10",
    "result == 7.5",
    "result != 0",
    "result",
    "0 <= result <= 10",
    "result <= price <= 100",
    "0 < discount < result",
    "isinstance(result, str)",
    "isinstance(result, (int, float))",
    "isinstance(result, str) and len(result) < 64",
    "sum(result)",
    "result == sum(prices)",
    "len(result)",
]


@pytest.mark.parametrize("source", SOURCES)
def test_a_value_in_a_slot_evaluates_as_the_same_name_in_the_locals(source: str) -> None:
    # The slot form is what the hot path runs; the locals form is the general path.
    plain, slotted = compile(source), compile(source, slots=("result",))
    for value in VALUES:
        for price in (5, 2.5, "x", None):
            Hostile.calls.clear()
            ns: dict[str, object] = {"price": price, "discount": 1, "prices": [1, 2, value]}
            general = outcome(lambda ns=ns, v=value: plain.evaluate({**ns, "result": v}))
            fast = outcome(lambda ns=ns, v=value: slotted.evaluate(ns, values=(v,)))
            assert fast == general, (source, value, price)
            assert Hostile.calls == [], (source, value, Hostile.calls)


def test_a_secret_in_a_slot_is_redacted_as_in_the_locals() -> None:
    expr = compile("result", slots=("result",))
    assert isinstance(expr.evaluate({}, values=(SECRET,)), Redacted)  # R2
    named = compile("password", slots=("password",))
    assert isinstance(named.evaluate({}, values=("hunter22",)), Redacted)  # R1
    # A guessed secret compares as the marker it is (the general path's answer): never equal.
    guess = "result == 'AKIAIOSFODNN7EXAMPLE'"
    assert compile(guess).evaluate({"result": SECRET}) is False
    assert compile(guess, slots=("result",)).evaluate({}, values=(SECRET,)) is False


def test_a_slot_given_no_value_reads_the_name_from_the_locals() -> None:
    expr = compile("result > 1", slots=("result",))
    assert expr.evaluate({"result": 3}) is True
    with pytest.raises(ExpressionError, match="'result' is not defined"):
        expr.evaluate({})


@pytest.mark.parametrize(
    ("a", "b", "c"),
    [
        (0, 1, 2),
        (2, 1, 0),
        (0, 0.5, math.nan),
        (math.nan, 1, 2),
        (True, 1, 2),
        (0, "x", 2),
        ("a", "b", "c"),
        (0, 5, "x"),
        (0, None, 1),
        (5, 1, "x"),  # the first comparison is false: c is never compared
        (0, Hostile(), 1),
        (SECRET, "b", "c"),
    ],
)
def test_a_chained_order_comparison_is_the_pair_of_comparisons(
    a: object, b: object, c: object
) -> None:
    Hostile.calls.clear()
    ns = {"a": a, "b": b, "c": c}

    def ev(source: str) -> tuple[str, object]:
        return outcome(lambda: compile(source).evaluate(ns))

    for op1, op2 in (("<=", "<="), ("<", "<"), (">=", ">"), ("<", ">=")):
        chained, pair = ev(f"a {op1} b {op2} c"), ev(f"a {op1} b and b {op2} c")
        assert chained == pair, (a, b, c, op1, op2)
        assert ev(f"0 {op1} b {op2} 10") == ev(f"0 {op1} b and b {op2} 10")
    assert Hostile.calls == []


def test_isinstance_of_builtin_classes_runs_no_metaclass_code() -> None:
    Hostile.calls.clear()
    ev = compile("isinstance(x, str)").evaluate
    assert ev({"x": WithMeta()}) is False
    assert ev({"x": Text("abc")}) is True  # a subclass, through the MRO
    assert compile("isinstance(x, (int, str))").evaluate({"x": WithMeta()}) is False
    assert compile("isinstance(x, (int, str))").evaluate({"x": 3}) is True
    assert Hostile.calls == []
    with pytest.raises(ExpressionError, match="redacted"):
        compile("isinstance(password, str)").evaluate({"password": "hunter22"})


def test_sum_of_a_short_list_of_numbers_is_charged_one_step_per_item() -> None:
    small = compile("sum(xs)", max_steps=40)
    assert small.evaluate({"xs": list(range(30))}) == sum(range(30))
    with pytest.raises(ExpressionError, match="step budget"):
        small.evaluate({"xs": list(range(50))})
    # What the inline form does not take goes through sum() as before.
    assert compile("sum(xs)").evaluate({"xs": [1, 2.5]}) == 3.5
    with pytest.raises(ExpressionError):
        compile("sum(xs)").evaluate({"xs": [1, "a"]})
    with pytest.raises(ExpressionError):
        compile("sum(xs)").evaluate({"xs": ["token", 5]})


# -- the gate ------------------------------------------------------------------------------


def gate(
    budget: CpuBudget,
    source: str = "result >= 0",
    *,
    slow: Callable[..., None] | None = None,
    stops: list[str] | None = None,
) -> FastExpectGate:
    return FastExpectGate(
        expr=compile(source, slots=("result",)),
        value_name="result",
        slow=slow or (lambda *a: None),
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e9,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=(stops if stops is not None else []).append,
        budget=budget,
        account=budget.account("p"),
    )


def test_every_firing_is_metered_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches close by count only: a firing descheduled past SLOW_FIRING_NS on a loaded machine
    # is metered alone, and a batch older than SETTLE_NS settles early (both by design).
    monkeypatch.setattr(hotpath, "SLOW_FIRING_NS", 10**15)
    monkeypatch.setattr(hotpath, "SETTLE_NS", 10**15)
    budget = CpuBudget(0.5)
    g = gate(budget)
    for _ in range(3 * SETTLE_EVERY + 5):
        g.hook(1)
    account = budget.account("p")
    # (the probe's own hook, the lane: its timed evaluations count their strides, see
    # hotpath.METER_STRIDE_BITS; those after the last timed one are in the stride under way)
    cells = g.hook.__closure__ or ()
    lane = {n: c.cell_contents for n, c in zip(g.hook.__code__.co_freevars, cells, strict=True)}
    in_stride = lane["lstride"] - lane["lskip"]
    assert account.fired + lane["lcount"] + in_stride == 3 * SETTLE_EVERY + 5
    assert account.fired >= 2 * SETTLE_EVERY - 2**hotpath.METER_STRIDE_BITS  # two batches
    assert account.spent > 0
    from sensor.guards import tally_count

    assert tally_count(g.evaluations) == 3 * SETTLE_EVERY + 5


class _Metered(CpuBudget):
    """A budget that adds up every nanosecond handed to it (a window resets its accounts)."""

    def __init__(self, fraction: float) -> None:
        super().__init__(fraction)
        self.total_ns = 0

    def spend(self, account: Any, ns: int, clock: Any = None) -> str | None:
        self.total_ns += ns
        return super().spend(account, ns, clock)

    def spend_sampled(
        self, account: Any, ns: int, count: int, extra: int = 0, whole: bool = True
    ) -> str | None:
        self.total_ns += ns * count + extra
        return super().spend_sampled(account, ns, count, extra)


class _DearWaker:
    """A waker whose ``schedule`` burns ``burn_ns`` of the calling thread's CPU, then refuses
    (the gate reopens at once), standing for what a closing costs the host thread."""

    def __init__(self, burn_ns: int) -> None:
        self.burn_ns = burn_ns
        self.calls = 0

    def schedule(self, at: float, reopen: Callable[[], None]) -> bool:
        self.calls += 1
        end = time.thread_time_ns() + self.burn_ns
        while time.thread_time_ns() < end:
            pass
        return False


def test_the_budget_is_handed_what_a_closing_costs_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under a rate limit the evaluation bucket is empty after nearly every evaluation, so the
    # hook closes its gate (the waker's schedule) after each one: in a real service that and
    # the budget's own accounting were more than half of what an evaluating call cost, and
    # the budget, metering only the evaluation, let 2.5x its share through. Each firing here
    # finds a full token (a clock that jumps 2 s a read) and closes after it.
    import sensor.hotpath as hotpath

    ticks = iter(range(10**9, 10**13, 2 * 10**9))
    monkeypatch.setattr(hotpath, "_perf", lambda: next(ticks))
    monkeypatch.setattr(hotpath, "PRECISE_STRIDE_BITS", 0)  # every precise firing timed
    budget = _Metered(0.9)
    budget._to_precise(time.monotonic_ns())  # metered in thread CPU time: the burn is exact
    waker = _DearWaker(burn_ns=300_000)
    stops: list[str] = []
    g = FastExpectGate(
        expr=compile("result >= 0", slots=("result",)),
        value_name="result",
        slow=lambda *a: None,
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=1.0,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=stops.append,
        budget=budget,
        account=budget.account("p"),
        waker=waker,  # type: ignore[arg-type]
    )
    firings = 10
    for _ in range(firings):
        g.hook(1)
    assert tally_count(g.evaluations) == firings
    # It closes after an evaluation unless the jittered need leaves less than a tick to wait
    # (the gate then stays open: see guards.jitter_seed); about one run in ten has one such.
    assert waker.calls >= firings // 2
    assert stops == []
    # Every closing but the last has been handed over (the last one's, with the next firing).
    assert budget.total_ns >= (waker.calls - 1) * waker.burn_ns


def test_a_batch_is_kept_while_the_budget_is_busy() -> None:
    budget = CpuBudget(0.5)
    g = gate(budget)
    account = budget.account("p")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with budget._lock:  # another thread settling, or the window ending
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    # (the probe's own hook, the lane, times one firing per stride of up to 16 and tries to
    # hand its batch over at a timed one: see hotpath.METER_STRIDE_BITS)
    stride = 2**hotpath.METER_STRIDE_BITS
    n = SETTLE_EVERY + 3 + stride
    try:
        for _ in range(n):
            g.hook(1)
        assert account.fired == 0
    finally:
        release.set()
        t.join()
    for _ in range(stride):
        if account.fired:
            break
        g.hook(1)
        n += 1
    # Handed over at the next timed firing, none lost: the firings settled, in the batch and
    # in the stride under way are all of them.
    assert account.fired >= SETTLE_EVERY
    cells = g.hook.__closure__ or ()
    lane = {k: c.cell_contents for k, c in zip(g.hook.__code__.co_freevars, cells, strict=True)}
    assert account.fired + lane["lcount"] + lane["lstride"] - lane["lskip"] == n


@pytest.mark.parametrize("stride", [1, 2, 3, 16])
def test_a_capture_dearer_than_the_one_hit_cap_disables_the_probe(
    monkeypatch: pytest.MonkeyPatch, stride: int
) -> None:
    # The cap (200 us here) is below SLOW_FIRING_NS: such a firing must not be batched.
    # The precise mode's stride is pinned: whether the dear firings after the switch are the
    # stride's timed ones (stride 1: every one) must not matter. A timed firing hands over its
    # cheap part apart from the capture; that part is under the cap and must not end the run
    # of dear firings (CI20 caught it on the random stride's draws, about 1 in 16).
    monkeypatch.setattr(hotpath, "_bits", lambda bits: stride - 1)
    # And the lane's sample (which serves the precise mode too): the same stride.
    monkeypatch.setattr(guards._rng, "getrandbits", lambda bits: stride - 1)
    budget = CpuBudget(0.0002)
    stops: list[str] = []

    def burn(*args: object) -> None:
        end = time.thread_time_ns() + 300_000
        while time.thread_time_ns() < end:
            pass

    g = gate(budget, slow=burn, stops=stops)
    g.hook(-1)  # a violation, captured: the capture burns 0.3 ms of CPU
    g.hook(-1)  # the first switched the budget to CPU time
    # One dear firing may be an outlier (a collection, a page fault): no stop yet.
    assert not stops
    g.hook(-1)  # the second in a row over the cap
    assert stops
    assert "disabled by the CPU budget" in stops[0]


# -- through the engine --------------------------------------------------------------------

TARGET = """
def price(i):
    base = i * 2
    result = -1 if i % 100 == 0 else base
    return result

def total(prices):
    t = 0
    for p in prices:
        t += p
    return t
"""


@pytest.fixture
def target(load: Callable[..., ModuleType]) -> ModuleType:
    return load(TARGET)


def test_a_violation_of_an_expectation_reading_only_result_captures_the_frame(
    engine: Engine, target: ModuleType
) -> None:
    probe = Probe(
        kind="expect",
        location=f"{target.__name__}:price",
        expect="result >= 0",
        limits={"eval_rate": 1e6, "violation_rate": 1e6},
    )
    assert engine.install(probe).state is ProbeState.INSTALLED
    for i in range(300):
        target.price(i)
    hits = engine.drain()
    assert [h.expect for h in hits] == [{"ok": False, "error": None}] * 3
    assert all(h.captures and {"i", "base", "result"} <= set(h.captures) for h in hits)
    got = engine.status(probe.id)
    assert got is not None
    assert (got.evaluations, got.violations) == (300, 3)


def test_an_expectation_reading_locals_in_place_changes_no_variable(
    engine: Engine, target: ModuleType
) -> None:
    probe = Probe(
        kind="expect",
        location=f"{target.__name__}:total",
        expect="result == sum(prices) and t == result and p >= 0",
        limits={"eval_rate": 1e6},
    )
    assert engine.install(probe).state is ProbeState.INSTALLED
    for n in range(50):
        assert target.total(list(range(n + 1))) == sum(range(n + 1))
    got = engine.status(probe.id)
    assert got is not None
    assert (got.evaluations, got.violations) == (50, 0)
    assert engine.drain() == []


class Money(Decimal):
    def __ge__(self, other: object) -> bool:
        Hostile.calls.append("Money.__ge__")
        return True


def test_decimals_compare_natively_and_their_subclasses_are_still_checked() -> None:
    Hostile.calls.clear()
    assert compile("x >= 0 and x < y").evaluate({"x": Decimal("1.5"), "y": 2.5}) is True
    assert compile("0 <= x <= y").evaluate({"x": Decimal("3"), "y": Decimal("2")}) is False
    with pytest.raises(ExpressionError, match="failed"):
        compile("x >= 0").evaluate({"x": Decimal("NaN")})  # InvalidOperation, as before
    with pytest.raises(ExpressionError, match="refused"):
        compile("x >= y").evaluate({"x": Money("1"), "y": Decimal("0")})
    assert Hostile.calls == []


def test_a_rule_change_is_applied_by_the_hook_from_the_next_firing() -> None:
    # R1 is decided when the closures are built: the hook must use the rebuilt ones.
    from sensor import redaction

    red = redaction.get_redactor()
    before = red.to_dict()
    seen: list[object] = []
    g = FastExpectGate(
        expr=compile("result == 'plain-value'", slots=("result",)),
        value_name="result",
        slow=lambda frame, value, outcome, error: seen.append((outcome, error)),
        failed=lambda exc: seen.append(exc),
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e9,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=lambda why: None,
        budget=CpuBudget(0.5),
        account=CpuBudget(0.5).account("p"),
    )
    g.hook("plain-value")
    assert seen == []  # held: nothing captured
    try:
        red.update(names=[*before["names"], "result"])  # `result` is now a secret name
        g.hook("plain-value")
    finally:
        red.update(names=before["names"])
    assert seen == [("violation", None)]  # a redacted marker is never equal to the text
    g.hook("plain-value")
    assert seen == [("violation", None)]  # the rules are back: it holds again


# -- novelty: a rare passing state is captured though the pass bucket refuses it --------------


def passing_gate(
    source: str,
    seen: list[tuple[object, str]],
    *,
    novelty: Novelty | None = None,
    value_name: str | None = "result",
) -> FastExpectGate:
    """A snapshot probe's gate with an expectation: passing firings captured at 1 a second."""
    return FastExpectGate(
        expr=compile(source, slots=() if value_name is None else (value_name,)),
        value_name=value_name,
        slow=lambda frame, value, outcome, error: seen.append((value, outcome)),
        failed=lambda exc: seen.append((exc, "failed")),
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e9,
        violation_rate=1e9,
        pass_rate=1.0,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=lambda why: None,
        budget=CpuBudget(0.99),
        account=CpuBudget(0.99).account("p"),
        novelty=novelty,
    )


def test_a_rare_passing_state_is_captured_among_a_hundred_thousand_common_ones() -> None:
    # 10^5 passing calls of one class and 3 of rare classes, at 1 passing capture a second:
    # uniform sampling would capture a rare one with a probability of about 3 in 10^5.
    seen: list[tuple[object, str]] = []
    g = passing_gate("result != 'never'", seen)
    aware = datetime(2026, 1, 2, tzinfo=UTC)
    rare: dict[int, object] = {20_011: None, 50_021: aware, 90_031: "sku-17 "}
    for i in range(100_000):
        g.hook(rare.get(i, i + 1))
    captured = [value for value, _ in seen]
    for value in rare.values():
        assert value in captured, value
    outcomes = {repr(value): outcome for value, outcome in seen}
    assert outcomes[repr(aware)] == "novel"
    assert outcomes["'sku-17 '"] == "novel"
    # The common class is captured within the pass rate, never again as new.
    assert [o for v, o in seen if type(v) is int] == ["pass"] * len(
        [v for v, _ in seen if type(v) is int]
    )
    assert tally_count(g.evaluations) == 100_000
    assert tally_count(g.violations) == 0


def test_novelty_keys_the_locals_the_expectation_reads() -> None:
    seen: list[tuple[object, str]] = []
    g = passing_gate("label is not None or result >= 0", seen)

    def call(result: object, label: object) -> None:
        g.hook(result)

    for i in range(20_000):
        call(i + 1, "a")
    call(7, "")  # same result class, an empty label: new
    call(8, "b\u00e9")  # a label that is not ASCII: new
    call(9, " c")  # leading whitespace: new
    call(10, None)  # None label: new
    call(11, "d")  # the common class again: nothing
    novel = [value for value, outcome in seen if outcome == "novel"]
    assert novel == [7, 8, 9, 10]


def test_value_classes_of_builtins() -> None:
    Novelty()  # imports datetime and Decimal for value_class
    vc = value_class
    assert len({vc(0), vc(1), vc(-1)}) == 3
    assert len({vc(0.0), vc(1.5), vc(-1.5), vc(math.nan)}) == 4
    assert len({vc(""), vc("a"), vc("a "), vc(" a"), vc("\u00e9")}) == 4  # both ends alike
    assert vc("a ") == vc(" a")
    assert len({vc(Decimal("0")), vc(Decimal("2")), vc(Decimal("-2")), vc(Decimal("NaN"))}) == 4
    naive, aware = datetime(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)
    assert vc(naive) != vc(aware)
    assert vc([]) != vc([1])
    assert vc({}) != vc({"a": 1})
    assert vc(()) != vc((1,))
    assert vc(None) != vc(0)
    assert vc(True) != vc(False)
    assert vc(True) != vc(1)
    assert vc(Text("")) == vc(Text("x y "))  # a subclass of str: its type only
    assert vc("x" * 10_000 + " ") == vc("y ")  # never the whole text


class Recording(type):
    """A metaclass whose every hook records: a type is never hashed or compared either."""

    def __eq__(cls, other: object) -> bool:
        Hostile.calls.append("Recording.__eq__")
        return True

    def __hash__(cls) -> int:
        Hostile.calls.append("Recording.__hash__")
        return 1


class Booby(metaclass=Recording):
    """Every attribute, comparison and hash raises and records."""

    def __getattribute__(self, name: str) -> Any:
        Hostile.calls.append(f"Booby.{name}")
        raise RuntimeError(name)

    def __eq__(self, other: object) -> bool:
        Hostile.calls.append("Booby.__eq__")
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        Hostile.calls.append("Booby.__hash__")
        raise RuntimeError("hash")

    def __bool__(self) -> bool:
        Hostile.calls.append("Booby.__bool__")
        raise RuntimeError("bool")


class Sly(str):
    def isascii(self) -> bool:
        Hostile.calls.append("Sly.isascii")
        return True

    def __getitem__(self, key: Any) -> Any:
        Hostile.calls.append("Sly.__getitem__")
        return "x"

    def __len__(self) -> int:
        Hostile.calls.append("Sly.__len__")
        return 1


class Zoned(datetime):
    @property
    def tzinfo(self) -> Any:
        Hostile.calls.append("Zoned.tzinfo")
        raise RuntimeError("tzinfo")


def test_novelty_runs_no_user_code() -> None:
    Hostile.calls.clear()
    seen: list[tuple[object, str]] = []
    g = passing_gate("result is not None and other is not None", seen, novelty=Novelty(rate=1e9))

    def call(result: object, other: object) -> None:
        g.hook(result)

    for _ in range(1000):
        call(1, 1)
    hostile = [Hostile(), WithMeta(), Booby(), Sly("abc "), Zoned(2026, 1, 1), Text("t ")]
    for value in hostile:
        call(value, value)
        call(1, value)
        call(value, 1)
    assert Hostile.calls == []
    novel = [v for v, outcome in seen if outcome == "novel"]
    assert len(novel) == 3 * len(hostile)  # each a new class, by its type's identity
    assert [o for _, o in seen if o == "failed"] == []  # no failure of the sensor's own


def test_novelty_is_bounded_in_keys_and_in_rate() -> None:
    classes = [type(f"C{n}", (), {}) for n in range(40)]
    seen: list[tuple[object, str]] = []
    bounded = Novelty(rate=1e9, max_keys=8)
    g = passing_gate("result is not None", seen, novelty=bounded)
    for _ in range(5):
        g.hook(0)  # the first captured within the pass rate (its class noted), 4 refused
    for cls in classes:
        g.hook(cls())
    novel = [v for v, outcome in seen if outcome == "novel"]
    assert len(novel) == 7  # 8 keys: the int's and 7 new ones
    assert len(bounded.seen) == 8
    # counted, never silent: all over the key bound (the bucket of 1e9/s refuses none)
    assert (tally_count(bounded.full), tally_count(bounded.refused)) == (40 - 7, 0)
    assert bounded.dropped() == 40 - 7
    assert tally_count(bounded.admitted) == 7
    assert bounded.counts() == {
        "novel_classes": 8, "novel_admitted": 7, "novel_refused": 0, "novel_full": 33
    }  # fmt: skip
    # A flood of new classes within the key bound: the novelty bucket caps the captures.
    seen.clear()
    slow = Novelty(rate=2.0, max_keys=1000)
    g = passing_gate("result is not None", seen, novelty=slow)
    started = time.monotonic()
    for cls in classes:
        g.hook(cls())
    elapsed = time.monotonic() - started
    novel = [v for v, outcome in seen if outcome == "novel"]
    assert 1 <= len(novel) <= 2 + int(2 * elapsed) + 1
    # all refused by the bucket (the bound of 1000 keys is never reached)
    assert (tally_count(slow.refused), tally_count(slow.full)) == (39 - len(novel), 0)
    assert len(slow.seen) == len(novel) + 1  # a refused key is not remembered


def test_an_expect_kind_probe_never_captures_a_passing_firing_as_new() -> None:
    seen: list[tuple[object, str]] = []
    g = FastExpectGate(
        expr=compile("result is not None", slots=("result",)),
        value_name="result",
        slow=lambda frame, value, outcome, error: seen.append((value, outcome)),
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e9,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=lambda why: None,
        budget=CpuBudget(0.99),
        account=CpuBudget(0.99).account("p"),
    )
    values: list[object] = [1, "a", 2.5, [], Hostile()]
    for value in values:
        g.hook(value)
    assert seen == []
    assert g.novelty is None


@pytest.mark.parametrize("names", [("a",), ("a", "b"), ("a", "b", "c")])
def test_novelty_keys_one_two_or_more_locals(names: tuple[str, ...]) -> None:
    # A probe with no value slot (a line probe): the key is the locals alone.
    seen: list[tuple[object, str]] = []
    source = " and ".join(f"{n} is not None" for n in names)
    g = passing_gate(source, seen, value_name=None, novelty=Novelty(rate=1e9))

    def call(a: object, b: object, c: object) -> None:
        g.hook()

    for i in range(1000):
        call(i + 1, "x", [1])
    call(1, "x", [1])  # the common classes: nothing
    assert [o for _, o in seen] == ["pass"]
    call(-1, "x", [1])  # a negative a: new
    call(1, "", [1])  # an empty b: new only if b is read
    call(1, "x", [])  # an empty c: new only if c is read
    assert [o for _, o in seen].count("novel") == len(names)
