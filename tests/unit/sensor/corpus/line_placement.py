"""Control-flow corpus for the line placement matrix (tests/unit/sensor/test_line_placement.py).

Every function decorated with ``@case(...)`` is one entry of the matrix: a probe is placed on
every line of its code (and of the code nested in it), the function runs on each listed input,
and the hits per line must equal the ``sys.settrace`` line events of the same runs. Adding a
construct is adding one function here. Conventions:

- the first statement is ``_gate()``: a no-op, except when the matrix holds frames that are
  already running (the hybrid and monitoring backends must reach them), where it blocks until
  the probes are placed;
- every function takes ``n`` and never rebinds it (snapshot conditions read it);
- results are plain data, so a probed run can be compared with a plain one;
- one nested function, lambda or generator expression of each name per function (a probe
  names nested code by qualname).

Not linted (ruff excludes the corpus directory): the constructs are the point, not the style.
"""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable
from typing import Any

CASES: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []


class _Gate:
    """Holds every corpus frame at its first line while ``hold`` is on (running-frame runs)."""

    def __init__(self) -> None:
        self.hold = False
        self.arrived = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self) -> None:
        if self.hold:
            self.arrived.release()
            self.release.wait(30)


GATE = _Gate()
_gate = GATE


def case(*inputs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        CASES.append((fn, inputs))
        return fn

    return register


# -- helpers (not cases) ------------------------------------------------------------------------


@types.coroutine
def _tick() -> Any:
    yield


def run(coro: Any) -> Any:
    """Drive a coroutine to its end without an event loop (the awaitables here only yield)."""
    try:
        while True:
            coro.send(None)
    except StopIteration as stop:
        return stop.value


class Boom(Exception):
    pass


class Resource:
    def __init__(self, log: list[str], suppress: bool = False) -> None:
        self.log = log
        self.suppress = suppress

    def __enter__(self) -> Resource:
        self.log.append("enter")
        return self

    def __exit__(self, *exc: object) -> bool:
        self.log.append("exit")
        return self.suppress

    async def __aenter__(self) -> Resource:
        await _tick()
        self.log.append("aenter")
        return self

    async def __aexit__(self, *exc: object) -> bool:
        await _tick()
        self.log.append("aexit")
        return self.suppress


class Countdown:
    def __init__(self, n: int) -> None:
        self.n = n

    def __aiter__(self) -> Countdown:
        return self

    async def __anext__(self) -> int:
        await _tick()
        if self.n <= 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n


def traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def twice(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper


class Point:
    __match_args__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


# -- loops --------------------------------------------------------------------------------------


@case(0, 1, 3, 5)
def for_else_break(n):
    _gate()
    total = 0
    for i in range(n):
        if i == 3:
            break
        total += i
    else:
        total = -total
    after = total * 2
    return after


@case(0, 1, 3, 5)
def while_else_break(n):
    _gate()
    i = 0
    while i < n:
        if i == 3:
            break
        i += 1
    else:
        i = -i
    done = i
    return done


@case(0, 1, 4, 7)
def for_continue(n):
    _gate()
    kept = []
    for i in range(n):
        if i % 2:
            continue
        kept.append(i)
    return kept


@case(0, 1, 4, 7)
def while_continue(n):
    _gate()
    i = 0
    kept = []
    while i < n:
        i += 1
        if i % 3 == 0:
            continue
        kept.append(i)
    return kept


@case(0, 1, 3, 4)
def nested_loops(n):
    _gate()
    pairs = []
    for i in range(n):
        for j in range(n):
            if j > i:
                break
            if (i + j) % 2:
                continue
            pairs.append((i, j))
        else:
            pairs.append(None)
    return pairs


@case(0, 1, 5)
def loop_header_lines(n):
    _gate()
    total = 0
    for i in range(n): total += i
    j = 0
    while j < n: j += 1
    for k in range(n):
        total += k
    return total + j


@case(0, 1, 4)
def while_true(n):
    _gate()
    i = 0
    while True:
        i += 1
        if i > n:
            break
    return i


@case(0, 2, 4)
def while_true_return(n):
    _gate()
    i = 0
    while True:
        if i >= n:
            return i
        i += 1


@case(0, 1, 5)
def empty_loops(n):
    _gate()
    for _ in range(n):
        pass
    i = 0
    while i < n:
        i += 1
    for _ in range(n): pass
    while False:
        pass
    return i


@case(0, 3, 6)
def early_return(n):
    _gate()
    if n == 0:
        return "zero"
    for i in range(n):
        if i * i > n:
            return i
    return None


@case(0, 1, 2, 3)
def reached_only_by_jump(n):
    _gate()
    if n == 1:
        x = "one"
    elif n == 2:
        x = "two"
    else:
        x = "other"
    while n > 10:
        n_big = True
        break
    y = x
    return y


@case(0, 1, 6)
def loop_with_return_inside(n):
    _gate()
    for i in range(n):
        while i > 2:
            return i
    return -1


@case(0, 3)
def recursion(n):
    _gate()
    if n <= 0:
        return 0
    return n + recursion(n - 1)


# -- exceptions ---------------------------------------------------------------------------------


@case(0, 1, 2, 3)
def try_except_else_finally(n):
    _gate()
    log = []
    try:
        if n == 1:
            raise ValueError("one")
        if n == 2:
            raise KeyError("two")
        log.append("body")
    except ValueError:
        log.append("value")
    except (TypeError, AttributeError):
        log.append("never")
    else:
        log.append("else")
    finally:
        log.append("finally")
    return log


@case(0, 1, 2)
def try_except_as_reraise(n):
    _gate()
    try:
        if n:
            raise Boom(n)
    except Boom as exc:
        if n == 2:
            raise
        caught = exc.args
    else:
        caught = None
    return caught


@case(0, 1, 2)
def raise_from_handler(n):
    _gate()
    try:
        {}[n]
    except KeyError as exc:
        if n == 2:
            raise ValueError(n) from exc
        result = "missing"
    return result


@case(0, 1, 2)
def return_in_finally(n):
    _gate()
    try:
        if n == 1:
            raise Boom()
        return "body"
    finally:
        if n:
            return "finally"


@case(0, 1, 3)
def exception_in_loop(n):
    _gate()
    errors = 0
    for i in range(n):
        try:
            if i % 2:
                raise Boom(i)
        except Boom:
            errors += 1
            continue
        finally:
            errors += 10
    return errors


@case(0, 1)
def bare_raise_in_nested_try(n):
    _gate()
    try:
        try:
            raise Boom(n)
        except Boom:
            if n:
                raise
            value = "inner"
    except Boom:
        value = "outer"
    return value


@case(0, 1, 2)
def exception_group(n):
    _gate()
    seen = []
    try:
        if n == 1:
            raise ExceptionGroup("g", [ValueError(1), KeyError(2)])
        if n == 2:
            raise ExceptionGroup("g", [TypeError(3)])
    except* ValueError:
        seen.append("value")
    except* KeyError:
        seen.append("key")
    return seen


# -- with ---------------------------------------------------------------------------------------


@case(0, 1, 2)
def with_statement(n):
    _gate()
    log = []
    with Resource(log, suppress=n == 2) as res:
        log.append("body")
        if n:
            raise Boom()
        log.append("more")
    log.append("after")
    return log


@case(0, 1)
def return_inside_with(n):
    _gate()
    log = []
    with Resource(log):
        if n:
            return log
        log.append("no-return")
    return log


@case(0, 3)
def with_in_loop(n):
    _gate()
    log = []
    for i in range(n):
        with Resource(log):
            if i == 1:
                continue
            log.append(i)
    return log


# -- match --------------------------------------------------------------------------------------


@case(0, 1, 2, 3, 4, 5)
def match_statement(n):
    _gate()
    subject = [None, 1, (1, 2), Point(0, n), {"k": n}, "text"][n]
    match subject:
        case None:
            kind = "none"
        case 1 | 2:
            kind = "small"
        case (a, b) if a < b:
            kind = "pair"
        case Point(x=0, y=y):
            kind = f"point {y}"
        case {"k": value}:
            kind = f"map {value}"
        case _:
            kind = "other"
    return kind


# -- comprehensions -----------------------------------------------------------------------------


@case(0, 1, 4)
def list_comprehension(n):
    _gate()
    squares = [i * i for i in range(n)]
    return squares


@case(0, 1, 4)
def filtered_comprehension(n):
    _gate()
    evens = [i
             for i in range(n)
             if i % 2 == 0]
    return evens


@case(0, 1, 4)
def dict_set_comprehension(n):
    _gate()
    mapping = {i: str(i) for i in range(n)}
    unique = {i % 2 for i in range(n)}
    return mapping, sorted(unique)


@case(0, 1, 4)
def generator_expression(n):
    _gate()
    total = sum(i for i in range(n))
    return total


@case(0, 1, 3)
def nested_multiline_comprehension(n):
    _gate()
    grid = [
        (i, j)
        for i in range(n)
        if i != 1
        for j in range(i)
    ]
    return grid


@case(0, 2)
def comprehension_that_raises(n):
    _gate()
    try:
        values = [10 // (i - 1) for i in range(n)]
    except ZeroDivisionError:
        values = None
    return values


# -- generators ---------------------------------------------------------------------------------


@case(0, 1, 3)
def generator(n):
    _gate()
    for i in range(n):
        yield i
    yield "end"


@case(0, 2)
def generator_yield_from(n):
    _gate()
    yield "start"
    got = yield from generator(n)
    yield from range(n)
    yield got


@case(0, 3)
def generator_with_finally(n):
    _gate()
    try:
        i = 0
        while i < n:
            received = yield i
            i += 1
    finally:
        yield "cleanup"


@case(0, 2)
def generator_closed_early(n):
    _gate()

    def produce():
        try:
            for i in range(5):
                yield i
        finally:
            closed = True

    it = produce()
    first = next(it, None) if n else None
    it.close()
    return first


# -- async --------------------------------------------------------------------------------------


@case(0, 1, 3)
async def async_for(n):
    _gate()
    seen = []
    async for value in Countdown(n):
        seen.append(value)
    else:
        seen.append("else")
    return seen


@case(0, 1, 2)
async def async_with(n):
    _gate()
    log = []
    async with Resource(log, suppress=n == 2):
        await _tick()
        if n:
            raise Boom()
        log.append("body")
    return log


@case(0, 2)
async def await_in_loop(n):
    _gate()
    total = 0
    for i in range(n):
        await _tick()
        total += i
    await _tick()
    return total


@case(0, 3)
async def async_generator_consumer(n):
    _gate()

    async def agen():
        for i in range(n):
            await _tick()
            yield i

    values = [v async for v in agen()]
    async for v in agen():
        values.append(v)
    return values


# -- functions in functions ---------------------------------------------------------------------


@case(0, 2)
def lambdas(n):
    _gate()
    add = lambda x: x + n
    return [add(i) for i in range(n)]


@case(0, 2)
def multiline_lambda(n):
    _gate()
    pick = (lambda x:
            x * 2
            if x else -1)
    return list(map(pick, range(n)))


@case(0, 3)
def closure(n):
    _gate()
    count = 0

    def bump(step):
        nonlocal count
        for _ in range(step):
            count += 1
        return count

    bump(n)
    return bump(1)


@case(0, 2)
@traced
def decorated(n):
    _gate()
    out = []
    for i in range(n):
        out.append(i)
    return out


@case(1, 2)
@twice
def decorated_twice(n):
    _gate()
    value = n * 3
    return value


@case(0, 1)
def class_in_function(n):
    _gate()

    class Local:
        value = n
        doubled = value * 2

    return Local.doubled


# -- multi-line statements ----------------------------------------------------------------------


@case(0, 1, 2)
def multiline_statements(n):
    _gate()
    values = dict(
        a=n,
        b=n + 1,
    )
    if (
        n > 0
        and values["a"] < 2
    ):
        label = "small"
    else:
        label = (
            "zero"
            if n == 0
            else "big"
        )
    text = str(
        n
    ).join(
        ["<", ">"]
    )
    return label, text, values


@case(0, 1, 2)
def short_circuit_lines(n):
    _gate()
    ok = (n > 0
          and n < 2
          or n == 5)
    assert n >= 0, "negative"
    x = [n,
         n + 1] if ok else []
    del ok
    return x


def one_liner(n): _gate(); return n + 1  # noqa: E704


case(0, 1)(one_liner)
