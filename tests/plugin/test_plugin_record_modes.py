"""--runtime-record-mode, as pytest-recording's --record-mode: the hub is the network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from plugin_support import REQUEST, HubProcess
from test_plugin_standing import publish, standing, standing_hits
from test_plugin_standing import suite as suite  # the fixture

pytestmark = pytest.mark.usefixtures("suite")


def file_hits(path: Path) -> list[str]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["record"] == "header"
    return sorted(r["hit"]["hit_id"] for r in records if r["record"] == "hit")


def run(pytester: pytest.Pytester, mode: str | None, *extra: str) -> pytest.RunResult:
    args = ["--runtime-evidence", "rec.jsonl", "--runtime-service", "shop", *extra]
    if mode is not None:
        args += ["--runtime-record-mode", mode]
    return pytester.runpytest_subprocess(*args)


@pytest.fixture
def hub_hits(pytester: pytest.Pytester, suite: HubProcess) -> Any:
    """A published standing probe with 12 hits on the hub; call it to post more."""
    publish(pytester)
    (record,) = standing(suite)
    source = suite.register("shop")
    posted = standing_hits(record["id"], REQUEST.signature, REQUEST.location, 12)
    suite.post_hits(source, posted)

    def more(count: int) -> None:
        hits = standing_hits(record["id"], REQUEST.signature, REQUEST.location, 12 + count)
        suite.post_hits(source, hits[12:])

    return more


def add_old_hit(path: Path) -> None:
    """A hit recorded earlier that the hub no longer has (another window, another hub)."""
    lines = path.read_text().splitlines()
    hit = json.loads(next(line for line in lines if '"record": "hit"' in line))["hit"]
    hit["hit_id"] = "old-1"
    lines.append(json.dumps({"record": "hit", "hit": hit}))
    path.write_text("\n".join(lines) + "\n")


def test_once_records_then_replays_without_the_hub(
    pytester: pytest.Pytester, suite: HubProcess, hub_hits: Any
) -> None:
    first = run(pytester, "once")
    first.stdout.fnmatch_lines(["*recorded 12 hit(s) to rec.jsonl (record mode once)*"])
    path = pytester.path / "rec.jsonl"
    assert len(file_hits(path)) == 12
    written = path.read_text()
    suite.launcher.stop()  # no network: once must not need the hub any more
    again = run(pytester, "once")
    again.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*12 production hits*"])
    assert "recorded" not in again.stdout.str()
    assert path.read_text() == written


def test_none_reads_the_file_only_and_needs_it(
    pytester: pytest.Pytester, suite: HubProcess, hub_hits: Any
) -> None:
    missing = run(pytester, "none")
    missing.stderr.fnmatch_lines(["*--runtime-evidence: got 'rec.jsonl', expected an existing*"])
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    run(pytester, "rewrite")
    path = pytester.path / "rec.jsonl"
    written = path.read_text()
    hub_hits(5)  # the hub moves on; none does not look
    replay = run(pytester, "none", "--runtime-probe")
    replay.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*12 production hits*"])
    assert path.read_text() == written


def test_new_episodes_compares_with_both_and_adds_only_new_hits(
    pytester: pytest.Pytester, hub_hits: Any
) -> None:
    run(pytester, "rewrite")
    path = pytester.path / "rec.jsonl"
    add_old_hit(path)
    hub_hits(5)
    result = run(pytester, "new_episodes")
    result.stdout.fnmatch_lines(
        [
            "DIVERGED test_shop.py::test_discount*18 production hits*",
            "*recorded 18 hit(s) to rec.jsonl (record mode new_episodes, 5 new)*",
        ]
    )
    assert len(file_hits(path)) == 18
    # re-recording with nothing new on the hub: no hit counted twice
    again = run(pytester, "new_episodes")
    again.stdout.fnmatch_lines(
        ["*recorded 18 hit(s) to rec.jsonl (record mode new_episodes, 0 new)*"]
    )
    assert len(file_hits(path)) == 18


def test_all_compares_with_the_hub_and_adds_to_the_file(
    pytester: pytest.Pytester, hub_hits: Any
) -> None:
    run(pytester, "rewrite")
    path = pytester.path / "rec.jsonl"
    add_old_hit(path)
    hub_hits(5)
    result = run(pytester, "all")
    result.stdout.fnmatch_lines(
        [
            "DIVERGED test_shop.py::test_discount*17 production hits*",  # the hub's only
            "*recorded 18 hit(s) to rec.jsonl (record mode all, 5 new)*",
        ]
    )
    assert "old-1" in file_hits(path)
    assert len(file_hits(path)) == 18


def test_rewrite_replaces_the_file_with_the_hub_evidence(
    pytester: pytest.Pytester, hub_hits: Any
) -> None:
    run(pytester, "rewrite")
    path = pytester.path / "rec.jsonl"
    add_old_hit(path)
    result = run(pytester, "rewrite")
    result.stdout.fnmatch_lines(["*recorded 12 hit(s) to rec.jsonl (record mode rewrite)*"])
    assert "old-1" not in file_hits(path)
    assert len(file_hits(path)) == 12


def test_old_record_option_still_works_and_says_its_new_spelling(
    pytester: pytest.Pytester, hub_hits: Any
) -> None:
    result = pytester.runpytest_subprocess(
        "--runtime-probe", "--runtime-service", "shop", "--runtime-record", "old.jsonl"
    )
    result.stdout.fnmatch_lines(
        [
            "runtime: --runtime-record old.jsonl is the old spelling of --runtime-evidence "
            "old.jsonl --runtime-record-mode rewrite (still works)",
        ]
    )
    result.stdout.fnmatch_lines(["*recorded 12 hit(s) to old.jsonl (record mode rewrite)*"])
    assert len(file_hits(pytester.path / "old.jsonl")) == 12
