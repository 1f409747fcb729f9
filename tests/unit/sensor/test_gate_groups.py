"""Several gates on one return point: one group test while they are all closed, counts exact.

Standing expectations stand three or four to a return point; while closed, each used to cost its
own inline test and skip count. The bytecode backend now places a run of gates behind their
group's switch (:class:`~sensor.guards.SwitchGroup`): one test and one count while every gate
there is closed. These tests hold it to that, and to what must not change: a group is never
closed while one of its gates is open (whatever the interleaving of the gates' openings and
closings), and every gate's closed count (``skipped_closed``, its skips, the budget's share)
still counts each firing exactly once, across re-instrumentation and code still running.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FunctionType, ModuleType
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from waker_doubles import StillClock

from sensor.engine import Engine
from sensor.expressions import compile
from sensor.guards import (
    MAX_GROUPS,
    CpuBudget,
    Switch,
    SwitchGroup,
    closed_count_of,
    group_of,
    new_tally,
    switch_of,
    tally_count,
)
from sensor.hotpath import FastExpectGate
from sensor.inject.bytecode_backend import BytecodeBackend
from sensor.probes import Point, Probe, ProbeState


def price(x: int) -> int:
    return x + 1


def make_gate(budget: CpuBudget, name: str) -> FastExpectGate:
    return FastExpectGate(
        expr=compile("result >= 0", slots=("result",)),
        value_name="result",
        slow=lambda *a: None,
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e9,  # unlimited: every firing of an open gate is evaluated
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=lambda why: None,
        budget=budget,
        account=budget.account(name),
    )


def switch(gate: FastExpectGate) -> Switch:
    pair = switch_of(gate.hook)
    assert pair is not None
    return pair[0]


@pytest.fixture
def backend() -> Iterator[BytecodeBackend]:
    be = BytecodeBackend()
    yield be
    be.close()


def opcodes_run(fn: Callable[[int], object], arg: int) -> int:
    """The bytecodes one call of ``fn`` runs in its own frame (instruction events on 3.12+,
    opcode tracing on 3.11)."""
    count = 0
    if sys.version_info >= (3, 12):
        mon: Any = getattr(sys, "monitoring")  # noqa: B009 (3.12+; mypy checks for 3.11)
        tool = next(t for t in range(6) if mon.get_tool(t) is None)
        code = fn.__code__

        def on_instruction(_code: object, _offset: int) -> None:
            nonlocal count
            count += 1

        mon.use_tool_id(tool, "test_gate_groups")
        try:
            mon.register_callback(tool, mon.events.INSTRUCTION, on_instruction)
            mon.set_local_events(tool, code, mon.events.INSTRUCTION)
            fn(arg)
        finally:
            mon.set_local_events(tool, code, 0)
            mon.register_callback(tool, mon.events.INSTRUCTION, None)
            mon.free_tool_id(tool)
        return count

    def local(frame: Any, event: str, _: object) -> Any:
        nonlocal count
        if event == "opcode":
            count += 1
        return local

    def trace(frame: Any, event: str, _: object) -> Any:
        if frame.f_code.co_name != fn.__name__:
            return None
        frame.f_trace_opcodes = True
        return local

    sys.settrace(trace)
    try:
        fn(arg)
    finally:
        sys.settrace(None)
    return count


def test_closed_gates_at_a_return_point_cost_one_test_however_many(
    backend: BytecodeBackend,
) -> None:
    budget = CpuBudget(0.5)
    plain = opcodes_run(price, 1)
    costs = {}
    handles = []
    gates = []
    for k in (1, 2, 4):
        while len(gates) < k:
            gates.append(make_gate(budget, f"p{len(gates)}"))
            handles.append(backend.arm(price.__code__, Point.RETURN, None, gates[-1].hook))
        for gate in gates:
            switch(gate).close()
        costs[k] = opcodes_run(price, 1) - plain
    # One gate closed: its test and its count. Two or four: the group's test and count, the
    # same bytecodes (each gate's own sequence used to run: k times one gate's).
    assert costs[1] > 0
    assert costs[2] == costs[1], costs
    assert costs[4] == costs[1], costs
    assert [gate.closed_count() for gate in gates] == [3, 2, 1, 1]
    for handle in handles:
        backend.disarm(handle)


def test_open_gates_still_run_each_test_and_a_lone_gate_is_placed_as_before(
    backend: BytecodeBackend,
) -> None:
    budget = CpuBudget(0.5)
    one = make_gate(budget, "one")
    backend.arm(price.__code__, Point.RETURN, None, one.hook)
    # A single gate: no group at all (exactly the code placed before groups).
    assert switch(one).groups == ()
    two = make_gate(budget, "two")
    backend.arm(price.__code__, Point.RETURN, None, two.hook)
    group = switch(one).groups[-1]  # type: ignore[index]
    assert group.members == (switch(one), switch(two))
    switch(one).close()
    assert group.on  # two is open: the group too, and each gate's own test decides
    for i in range(5):
        assert price(i) == i + 1
    assert (one.closed_count(), tally_count(one.evaluations)) == (5, 0)
    assert (two.closed_count(), tally_count(two.evaluations)) == (0, 5)
    switch(two).close()
    assert not group.on
    for i in range(3):
        price(i)
    assert (one.closed_count(), two.closed_count()) == (8, 3)
    switch(one).open()
    assert group.on
    price(0)
    assert (one.closed_count(), tally_count(one.evaluations)) == (8, 1)
    assert (two.closed_count(), tally_count(two.evaluations)) == (4, 5)


def test_counts_stay_exact_while_threads_open_and_close_gates_under_traffic(
    backend: BytecodeBackend,
) -> None:
    # Every firing of every gate is counted once: evaluated (its gate open) or skipped closed
    # (by its own test or by the group's), however the openings and closings on another
    # thread interleave with the firings.
    budget = CpuBudget(0.5)
    gates = [make_gate(budget, f"p{i}") for i in range(3)]
    for gate in gates:
        backend.arm(price.__code__, Point.RETURN, None, gate.hook)
    switches = [switch(gate) for gate in gates]
    for member in switches:
        member.close()  # from closed: the group skips whatever runs before the togglers do
    calls_each, callers = 4000, 2
    stop = threading.Event()

    def toggle(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            member = rng.choice(switches)
            # Closed three times in four: all closed about half the time (the group's skip),
            # some open the rest (their gates' own tests and evaluations).
            if rng.random() < 0.25:
                member.open()
            else:
                member.close()
            if rng.random() < 0.1:
                time.sleep(0)

    def call() -> None:
        for i in range(calls_each):
            price(i)
            if i % 4 == 0:
                time.sleep(0)  # let the togglers run between calls too, on every Python

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # many thread switches: many interleavings
    try:
        togglers = [threading.Thread(target=toggle, args=(s,)) for s in (1, 2)]
        runners = [threading.Thread(target=call) for _ in range(callers)]
        for t in togglers + runners:
            t.start()
        for t in runners:
            t.join()
        stop.set()
        for t in togglers:
            t.join()
    finally:
        sys.setswitchinterval(old)
    total = calls_each * callers
    groups = {id(g): g for s in switches for g in s.groups or ()}
    assert groups, "the gates formed a group"
    for group in groups.values():
        # Once the stores are done: never closed while a member is open.
        assert group.on or not any(m.on for m in group.members)
    assert any(tally_count(group.tally) for group in groups.values()), "the group skipped some"
    for gate in gates:
        assert gate.closed_count() + tally_count(gate.evaluations) == total
        assert gate.counts() == (0, gate.closed_count())  # all of them skips while closed
    assert any(gate.closed_count() for gate in gates), "some firings were skipped closed"
    assert any(tally_count(gate.evaluations) for gate in gates), "and some evaluated"


def test_re_instrumentation_keeps_every_count_old_code_included(
    backend: BytecodeBackend,
) -> None:
    budget = CpuBudget(0.5)
    a, b, c = (make_gate(budget, name) for name in "abc")
    ha = backend.arm(price.__code__, Point.RETURN, None, a.hook)
    hb = backend.arm(price.__code__, Point.RETURN, None, b.hook)
    for gate in (a, b):
        switch(gate).close()
    for i in range(10):
        price(i)
    before = price.__code__
    hc = backend.arm(price.__code__, Point.RETURN, None, c.hook)
    switch(c).close()
    assert price.__code__ is not before
    # A frame still running the code of before (a worker's loop, a suspended generator).
    old = FunctionType(before, price.__globals__)
    for i in range(7):
        price(i)
    for i in range(5):
        old(i)  # counted on the old group's tally: still a and b's
    assert (a.closed_count(), b.closed_count(), c.closed_count()) == (22, 22, 7)
    backend.disarm(hb)
    b.disarm()  # (the engine disarms the gate too: open for good)
    for i in range(4):
        price(i)
        old(i)
    assert (a.closed_count(), b.closed_count(), c.closed_count()) == (30, 22, 11)
    assert tally_count(b.evaluations) == 0, "a disarmed gate's hook ignores its firings"
    backend.disarm(ha)
    backend.disarm(hc)


def test_the_engine_counts_each_closed_firing_of_each_standing_probe_once(
    load: Callable[..., ModuleType], still: StillClock, engine: Engine
) -> None:
    # Three standing expectations on one return point, their evaluation rate far below the
    # traffic: after each one's first evaluation every gate closes, and the group skips the
    # firings (bytecode, and the hybrid's new calls). Each probe's status still says where each
    # of its firings went.
    module = load("def price(x):\n    result = x + 1\n    return result\n")
    probes = [
        Probe(
            kind="expect",
            location=f"{module.__name__}:price@return",
            expect=expect,
            limits={"eval_rate": 0.01},
        )
        for expect in ("result >= 0", "result > -5", "result < 10**9")
    ]
    for probe in probes:
        status = engine.install(probe)
        assert status.state is ProbeState.INSTALLED, status.reason
    calls = 500
    for i in range(calls):
        module.price(i)
    for probe in probes:
        got = engine.status(probe.id)
        assert got is not None
        assert got.evaluations == 1
        assert got.evaluations + got.skipped_rate + got.skipped_budget == calls
        assert got.skipped_closed == calls - 1, got


def test_a_switch_in_max_groups_is_grouped_no_further(backend: BytecodeBackend) -> None:
    budget = CpuBudget(0.5)
    gates = [make_gate(budget, f"p{i}") for i in range(3)]
    first = switch(gates[0])
    for _ in range(MAX_GROUPS):
        assert group_of([first, Switch(True, grouped=True)]) is not None
    assert len(first.groups or ()) == MAX_GROUPS
    one = opcodes_run(price, 1)
    for gate in gates:
        backend.arm(price.__code__, Point.RETURN, None, gate.hook)
        switch(gate).close()
    assert len(first.groups or ()) == MAX_GROUPS, "a switch's groups are bounded"
    # Not grouped: each gate's own test and count, as before groups; counts exact.
    assert opcodes_run(price, 1) - one > 0
    for i in range(6):
        price(i)
    assert [gate.closed_count() for gate in gates] == [7, 7, 7]


def test_group_of_refuses_what_cannot_be_grouped() -> None:
    a, b = Switch(True, grouped=True), Switch(True, grouped=True)
    assert group_of([a]) is None
    assert group_of([a, a]) is None
    assert group_of([a, Switch(True)]) is None, "a switch stored to directly is never grouped"
    group = group_of([a, b])
    assert isinstance(group, SwitchGroup)
    assert group_of([b, a]) is group, "one group per set of members"


class _Spy(Switch):
    """A member switch whose every read and store of ``on`` may let another operation run
    first or right after (what a thread switch there would do)."""

    __slots__ = ()
    machine: GroupMachine

    @property  # type: ignore[override]
    def on(self) -> bool:
        self.machine.access()
        value: bool = Switch.on.__get__(self)  # type: ignore[attr-defined]
        self.machine.access()
        return value

    @on.setter
    def on(self, value: bool) -> None:
        self.machine.access()
        Switch.on.__set__(self, value)  # type: ignore[attr-defined]
        self.machine.access()


N_MEMBERS = 3


class GroupMachine(RuleBasedStateMachine):
    """Openings and closings of grouped switches, one interleaved into another at any of its
    reads and stores of a member's ``on``, and firings counted as the backend counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[int, Callable[[], None]]] = []
        self.accesses = 0
        _Spy.machine = self
        self.members = [_Spy(True, grouped=True) for _ in range(N_MEMBERS)]
        self.tallies = [new_tally() for _ in range(N_MEMBERS)]
        self.evaluated = [0] * N_MEMBERS
        self.fired = [0] * N_MEMBERS
        group = group_of(list(self.members))
        assert group is not None
        self.groups = [group]  # every group some code may still test (re-instrumentation)

    def access(self) -> None:
        self.accesses += 1
        while self.pending and self.pending[0][0] <= self.accesses:
            _, operation = self.pending.pop(0)
            operation()

    def operation(self, opening: bool, member: int) -> Callable[[], None]:
        target = self.members[member]
        return target.open if opening else target.close

    @rule(opening=st.booleans(), member=st.integers(0, N_MEMBERS - 1))
    def alone(self, opening: bool, member: int) -> None:
        self.operation(opening, member)()

    @rule(
        opening=st.booleans(),
        member=st.integers(0, N_MEMBERS - 1),
        inner_opening=st.booleans(),
        inner=st.integers(0, N_MEMBERS - 1),
        at=st.integers(1, 12),
    )
    def interleaved(
        self, opening: bool, member: int, inner_opening: bool, inner: int, at: int
    ) -> None:
        # The inner operation runs whole at the ``at``-th access of the outer one (if it has
        # that many; else right after it).
        self.pending.append((self.accesses + at, self.operation(inner_opening, inner)))
        self.operation(opening, member)()
        while self.pending:
            self.pending.pop(0)[1]()

    @rule(members=st.sets(st.integers(0, N_MEMBERS - 1), min_size=2))
    def re_instrument(self, members: set[int]) -> None:
        # New code with a group of these members; the older code may still run.
        group = group_of([self.members[i] for i in sorted(members)])
        if group is not None and all(g is not group for g in self.groups):
            self.groups.append(group)

    @rule(which=st.integers(0, 100))
    def fire(self, which: int) -> None:
        # What the rebuilt code does at the point, with one of the groups placed there.
        group = self.groups[which % len(self.groups)]
        if not group.on:
            next(group.tally)
            for i, member in enumerate(self.members):
                if member in group.members:
                    self.fired[i] += 1
            return
        for i, member in enumerate(self.members):
            if member not in group.members:
                continue
            self.fired[i] += 1
            if Switch.on.__get__(member):  # type: ignore[attr-defined]
                self.evaluated[i] += 1
            else:
                next(self.tallies[i])

    @invariant()
    def never_closed_while_a_member_is_open(self) -> None:
        for group in self.groups:
            if any(Switch.on.__get__(m) for m in group.members):  # type: ignore[attr-defined]
                assert group.on, (group, group.members)

    @invariant()
    def every_firing_counted_once(self) -> None:
        for i, member in enumerate(self.members):
            closed = closed_count_of(member, self.tallies[i])
            assert closed + self.evaluated[i] == self.fired[i]


TestGroupMachine = GroupMachine.TestCase
TestGroupMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
