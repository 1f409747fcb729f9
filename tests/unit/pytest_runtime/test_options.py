"""Option values: durations, since, min hits, and combinations that cannot mean anything."""

from __future__ import annotations

import re

import pytest

from pytest_runtime.errors import OptionError
from pytest_runtime.options import (
    RuntimeOptions,
    parse_min_hits,
    parse_rate,
    parse_seconds,
    parse_since,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30.0), ("2.5", 2.5), ("1m", 60.0), ("2h", 7200.0), ("", 30.0)]
)
def test_parse_seconds_accepts_numbers_and_units(text: str, seconds: float) -> None:
    assert parse_seconds("--runtime-wait", text) == seconds


@pytest.mark.parametrize("text", ["abc", "-1", "1y", "nan"])
def test_parse_seconds_rejects_with_the_option_and_value(text: str) -> None:
    with pytest.raises(OptionError, match=r"--runtime-wait: got '.*', expected seconds"):
        parse_seconds("--runtime-wait", text)


def test_parse_min_hits_needs_a_positive_whole_number() -> None:
    assert parse_min_hits("--runtime-min-hits", "3") == 3
    assert parse_min_hits("--runtime-min-hits", None) == 10
    for bad in ("0", "2.5", "x"):
        with pytest.raises(OptionError, match="whole number >= 1"):
            parse_min_hits("--runtime-min-hits", bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - 1800),
        ("1d", NOW - 86400),
        (None, NOW - 3600),
        ("1700000000", 1_700_000_000.0),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),
    ],
)
def test_parse_since_reads_durations_iso_times_and_epochs(
    text: str | None, expected: float
) -> None:
    assert parse_since("--runtime-since", text, now=NOW) == pytest.approx(expected)


def test_parse_since_rejects_garbage() -> None:
    with pytest.raises(OptionError, match="--runtime-since: got 'yesterday'"):
        parse_since("--runtime-since", "yesterday", now=NOW)


def test_probe_and_evidence_together_are_refused() -> None:
    with pytest.raises(OptionError, match="one source of production evidence"):
        RuntimeOptions(probe=True, hub="http://h", evidence=("e.jsonl",)).check()


def test_probe_without_hub_is_refused_naming_every_way_to_give_it() -> None:
    with pytest.raises(OptionError, match=r"PYTEST_RUNTIME_HUB or ini runtime_hub"):
        RuntimeOptions(probe=True).check()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (RuntimeOptions(hub="ftp://x"), "an http:// or https:// URL"),
        (RuntimeOptions(record="r.jsonl"), "--runtime-probe too"),
        (RuntimeOptions(write_baseline=True), "a --runtime-baseline PATH"),
    ],
)
def test_meaningless_combinations_are_refused(options: RuntimeOptions, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        options.check()


def test_active_only_when_an_option_asks_for_work() -> None:
    assert not RuntimeOptions().active
    assert RuntimeOptions(evidence=("e",)).active
    assert RuntimeOptions(report_json="r.json").active
    assert RuntimeOptions(probe=True, hub="http://h").wants_production


@pytest.mark.parametrize(
    ("text", "rate"), [("5%", 0.05), ("0.01", 0.01), (" 12.5% ", 0.125), (None, 0.1), ("", 0.1)]
)
def test_parse_rate_reads_fractions_and_percentages(text: str | None, rate: float) -> None:
    assert parse_rate("--runtime-rarer-than", text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["0", "1", "100%", "-5%", "x", "nan", "5 %%"])
def test_parse_rate_rejects_what_is_not_a_rate(text: str) -> None:
    with pytest.raises(OptionError, match=r"--runtime-rarer-than: got .*, expected a rate between"):
        parse_rate("--runtime-rarer-than", text)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            RuntimeOptions(record_mode="rewrite", probe=True, hub="http://h", evidence=()),
            "exactly one --runtime-evidence PATH",
        ),
        (
            RuntimeOptions(record_mode="none", evidence=("/no/such/file.jsonl",)),
            "an existing evidence file with --runtime-record-mode none",
        ),
        (
            RuntimeOptions(record_mode="all", probe=True, evidence=("e.jsonl",)),
            "a hub URL for --runtime-record-mode all",
        ),
        (
            RuntimeOptions(
                record_mode="rewrite", probe=True, hub="http://h", evidence=("e",), record="r"
            ),
            "no --runtime-record-mode as well",
        ),
        (RuntimeOptions(dry_run=True), "--runtime-publish too"),
        (RuntimeOptions(publish=True), "a hub URL for --runtime-publish"),
        (
            RuntimeOptions(publish=True, hub="http://h", evidence=("e",)),
            "no evidence file or record mode",
        ),
    ],
)
def test_record_modes_and_publish_refuse_what_cannot_work(
    options: RuntimeOptions, message: str
) -> None:
    with pytest.raises(OptionError, match=re.escape(message)):
        options.check()


@pytest.mark.parametrize(
    ("mode", "exists", "reads", "writes"),
    [
        ("none", True, True, None),
        ("once", True, True, None),
        ("once", False, False, "e.jsonl"),
        ("new_episodes", True, True, "e.jsonl"),
        ("all", True, False, "e.jsonl"),
        ("rewrite", True, False, "e.jsonl"),
    ],
)
def test_record_mode_decides_what_is_read_and_written(
    mode: str, exists: bool, reads: bool, writes: str | None
) -> None:
    # the hub is read when the mode needs it (from_config sets probe so)
    probe = mode in ("new_episodes", "all", "rewrite") or (mode == "once" and not exists)
    options = RuntimeOptions(record_mode=mode, probe=probe, evidence=("e.jsonl",))
    assert options.reads_file is reads
    assert options.writes_file == writes
