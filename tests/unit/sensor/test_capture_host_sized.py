"""A capture's work must not grow with the size of the host's values.

The sensor runs inside the host's request: capturing, redacting or judging a value may read a
bounded head of it (``max_string`` characters and the redactor's look-ahead), never copy,
lower-case or scan the whole of a string the host happens to hold, however large. These tests
hold values of 8 MiB and check what the capture allocated (``tracemalloc``'s peak), how much of
the value the redactor was shown, and how much came out, so they do not depend on the
machine's speed.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import tracemalloc
from collections.abc import Callable

import pytest

from sensor import redaction
from sensor.capture.encode import encode, known_secrets
from sensor.probes import CaptureLimits
from sensor.redaction import Redactor

N = 8 * 1024 * 1024  # characters of the host's value
#: What a capture may allocate, whatever the size of the values it reads.
ALLOC_BOUND = 1024 * 1024
#: The most of one value the redactor may be shown: a kept string and its look-ahead window.
SHOWN_BOUND = CaptureLimits().max_string + 1024


class RecordingRedactor(Redactor):
    """The built-in rules, recording the longest text each query was given."""

    def __init__(self) -> None:
        super().__init__()
        self.longest: dict[str, int] = collections.defaultdict(int)

    def _note(self, what: str, text: object) -> None:
        if isinstance(text, str):
            self.longest[what] = max(self.longest[what], len(text))

    def match_secret_value(self, text: str) -> str | None:
        self._note("match_secret_value", text)
        return super().match_secret_value(text)

    def redact_text(self, text: str) -> str:
        self._note("redact_text", text)
        return super().redact_text(text)


class Obj:
    pass


class Slots:
    __slots__ = ("v",)

    def __init__(self, v: object) -> None:
        self.v = v


class MyStr(str):
    pass


@dataclasses.dataclass
class Record:
    note: object


Pair = collections.namedtuple("Pair", ["name", "password"])


def _with_attr(name: str, value: object) -> Obj:
    o = Obj()
    o.__dict__[name] = value
    return o


def _shapes() -> dict[str, Callable[[str], dict[str, object]]]:
    return {
        "str": lambda s: {"v": s},
        "str subclass": lambda s: {"v": MyStr(s)},
        "bytes": lambda s: {"v": s.encode()},
        "dict key": lambda s: {"v": {s: 1, "b": 2}},
        "str subclass dict key": lambda s: {"v": {MyStr(s): 1}},
        "dict value under a secret key": lambda s: {"v": {"password": s}},
        "secret-named local": lambda s: {"password": s},
        "attribute name": lambda s: {"v": _with_attr(s, 1)},
        "attribute value": lambda s: {"v": _with_attr("note", s)},
        "slots": lambda s: {"v": Slots(s)},
        "dataclass": lambda s: {"v": Record(s)},
        "namedtuple": lambda s: {"v": Pair(s, s)},
        "list": lambda s: {"v": [s, s]},
        "argv": lambda s: {"v": ["--password", s, s]},
        "set": lambda s: {"v": {s}},
    }


SHAPES = _shapes()


@pytest.mark.parametrize("text", ["x", "the quick brown fox "], ids=["token-chars", "prose"])
@pytest.mark.parametrize("shape", SHAPES.keys())
def test_capturing_a_huge_value_reads_a_bounded_head_of_it(shape: str, text: str) -> None:
    s = (text * (N // len(text) + 1))[:N]
    ns = SHAPES[shape](s)
    red = RecordingRedactor()
    redaction.set_redactor(red)
    try:
        tracemalloc.start()
        try:
            out = encode(ns, redactor=red)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        redaction.set_redactor(None)
    size = len(json.dumps(out))
    assert peak < ALLOC_BOUND, f"{shape}: the capture allocated {peak:,} bytes"
    assert size < CaptureLimits().max_bytes + 2 * SHOWN_BOUND, f"{shape}: {size:,} bytes out"
    for what, n in red.longest.items():
        assert n <= SHOWN_BOUND, f"{shape}: {what} was shown {n:,} characters"


@pytest.mark.parametrize("text", ["x", "the quick brown fox "], ids=["token-chars", "prose"])
def test_judging_a_huge_name_allocates_nothing_in_proportion(text: str) -> None:
    name = (text * (N // len(text) + 1))[:N]
    red = Redactor()
    tracemalloc.start()
    try:
        red.is_secret_name(name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < ALLOC_BOUND, f"is_secret_name allocated {peak:,} bytes"


def test_a_huge_name_is_judged_by_its_ends_and_not_kept() -> None:
    red = Redactor()
    filler = "q" * N
    assert red.is_secret_name(filler + "_password")
    assert red.is_secret_name("password_" + filler)
    assert not red.is_secret_name(filler)
    # Not kept in the cache of names: it would hold the host's value for the process's life.
    assert all(len(k) <= 4096 for k in red._name_cache)


def test_the_secret_values_of_a_frame_are_found_without_copying_huge_ones() -> None:
    red = Redactor()
    huge = "x" * N
    tracemalloc.start()
    try:
        known = known_secrets({"password": huge, "token": "Zq9-short-secret"}, red)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < ALLOC_BOUND, f"known_secrets allocated {peak:,} bytes"
    assert known is not None
    assert known.search("see Zq9-short-secret here")


def test_redacting_a_huge_text_allocates_a_bounded_copy() -> None:
    red = Redactor()
    text = "x" * N
    tracemalloc.start()
    try:
        shown = red.redact_text(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert shown.endswith(f"<redacted:unscanned {N - redaction.MAX_MATCH_CHARS} chars>")
    assert peak < ALLOC_BOUND, f"redact_text allocated {peak:,} bytes"


@pytest.mark.parametrize("redactor", [Redactor(), None], ids=["redacted", "unredacted"])
def test_a_key_longer_than_a_short_max_string_is_cut_even_once_its_verdict_is_cached(
    redactor: Redactor | None,
) -> None:
    # The encoder caches the verdicts of keys of up to 64 characters, whatever the probe's
    # max_string; a probe whose max_string is shorter must still cut a cached key.
    key = "customer_reference_number"  # 25 characters
    assert key in json.dumps(encode({"v": {key: 1}}, redactor=redactor))  # caches its verdict
    out = json.dumps(encode({"v": {key: 1}}, CaptureLimits(max_string=10), redactor=redactor))
    assert key not in out, out
    assert key[:10] in out, out
