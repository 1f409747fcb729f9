"""Evidence files: round trip, grouping by signature, and errors naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_runtime.errors import EvidenceError, EvidenceFormatError
from pytest_runtime.evidence import Evidence, read, read_file, write
from sensor.probes import Probe

PROBE = Probe(kind="snapshot", location="shop.pricing:apply_discount", capture=("price",))


def hit(n: int, signature: str = PROBE.signature, **extra: Any) -> dict[str, Any]:
    return {
        "probe_id": PROBE.id,
        "signature": signature,
        "kind": "snapshot",
        "location": "shop.pricing:apply_discount@return",
        "ts": 1000.0 + n,
        "hit_id": f"h-{n}",
        "captures": {"price": n},
        "source": {"id": "src-1", "service": "shop"},
        **extra,
    }


def lines(*records: dict[str, Any]) -> str:
    header = {
        "record": "header",
        "schema": "pytest-runtime/evidence",
        "version": 1,
        "created_at": 1.0,
        "generator": "test",
    }
    return "\n".join(json.dumps(r) for r in (header, *records)) + "\n"


def test_write_then_read_gives_the_same_probes_and_hits(tmp_path: Path) -> None:
    evidence = Evidence()
    evidence.add_probe(PROBE.to_dict())
    evidence.add_hits([hit(2), hit(1)])
    path = tmp_path / "out" / "prod.jsonl"
    assert write(path, evidence) == 2
    again = read_file(path)
    assert list(again.probes) == [PROBE.signature]
    assert [h["hit_id"] for h in again.hits_for(PROBE.signature)] == ["h-1", "h-2"]
    first = json.loads(path.read_text().splitlines()[0])
    assert first["record"] == "header"
    assert first["schema"] == "pytest-runtime/evidence"


def test_hits_are_grouped_by_signature_and_filtered_by_since(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(
        lines(
            *({"record": "hit", "hit": hit(n)} for n in range(5)),
            {"record": "hit", "hit": hit(9, signature="other")},
        )
    )
    evidence = read_file(path)
    assert evidence.hit_count == 6
    assert len(evidence.hits_for(PROBE.signature, since=1003.0)) == 2
    assert evidence.hits_for("missing") == []


def test_directory_reads_every_jsonl_file_sorted_and_merges_overlaps(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(lines({"record": "hit", "hit": hit(1)}))
    (tmp_path / "b.jsonl").write_text(
        lines({"record": "hit", "hit": hit(1)}, {"record": "hit", "hit": hit(2)})
    )
    (tmp_path / "notes.txt").write_text("not evidence")
    evidence = read([tmp_path])
    assert [h["hit_id"] for h in evidence.hits_for(PROBE.signature)] == ["h-1", "h-2"]


def test_unknown_record_types_are_skipped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(lines({"record": "annotation", "text": "x"}, {"record": "hit", "hit": hit(1)}))
    evidence = read_file(path)
    assert evidence.hit_count == 1
    assert evidence.notes == [f"{path}: skipped 1 record(s) of unknown type 'annotation'"]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "empty file"),
        ('{"record": "hit"}\n', 1, "expected the header record"),
        (lines() + "{not json\n", 2, "not JSON"),
        (lines() + "[1, 2]\n", 2, 'an object with a "record" field'),
        (lines({"record": "hit", "hit": {"signature": "s"}}), 2, "invalid hit record"),
        (lines({"record": "probe", "probe": {"kind": "nope"}}), 2, "invalid probe record"),
        (lines().replace('"version": 1', '"version": 2'), 1, "version 2, expected 1"),
        (lines().replace("pytest-runtime/evidence", "other"), 1, "schema 'other'"),
    ],
)
def test_malformed_lines_name_the_file_and_line(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(EvidenceFormatError) as info:
        read([path])
    assert info.value.line == line
    assert str(info.value).startswith(f"evidence file {path}, line {line}: ")
    assert problem in str(info.value)


def test_missing_paths_and_empty_directories_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match="no such file or directory"):
        read([tmp_path / "absent.jsonl"])
    with pytest.raises(EvidenceError, match=r"no \*\.jsonl file"):
        read([tmp_path])


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(EvidenceError, match="not UTF-8"):
        read_file(path)
