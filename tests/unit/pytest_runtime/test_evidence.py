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


STATUS = {
    "signature": PROBE.signature,
    "probe_id": PROBE.id,
    "source_id": "src-1",
    "state": "installed",
    "counters": {"hits": 40, "evaluations": 900, "violations": 3, "exceptions": 2},
    "placed_at": 1000.0,
    "reported_at": 1035.0,
}


def lines(*records: dict[str, Any], version: int = 1) -> str:
    header = {
        "record": "header",
        "schema": "pytest-runtime/evidence",
        "version": version,
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
    assert f"{path}: skipped 1 record(s) of unknown type 'annotation'" in evidence.notes


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "empty file"),
        ('{"record": "hit"}\n', 1, "expected the header record"),
        (lines() + "{not json\n", 2, "not JSON"),
        (lines() + "[1, 2]\n", 2, 'an object with a "record" field'),
        (lines({"record": "hit", "hit": {"signature": "s"}}), 2, "invalid hit record"),
        (lines({"record": "probe", "probe": {"kind": "nope"}}), 2, "invalid probe record"),
        (lines().replace('"version": 1', '"version": 3'), 1, "version 3, expected one of 1, 2"),
        (
            lines(version=2) + '{"record": "status", "status": {"signature": "s"}}\n',
            2,
            "invalid status record: status.probe_id",
        ),
        (
            lines(version=2)
            + json.dumps({"record": "status", "status": {**STATUS, "counters": {"hits": -1}}}),
            2,
            "status.counters",
        ),
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


def test_statuses_are_written_and_read_back_with_version_2(tmp_path: Path) -> None:
    evidence = Evidence()
    evidence.add_probe(PROBE.to_dict())
    evidence.add_status(STATUS)
    older = {**STATUS, "reported_at": 1010.0, "counters": {"hits": 4}}
    evidence.add_status(older)  # an older report of the same probe and source loses
    evidence.add_hits([hit(1)])
    path = tmp_path / "rec.jsonl"
    write(path, evidence)
    assert json.loads(path.read_text().splitlines()[0])["version"] == 2
    again = read_file(path)
    assert again.statuses_for(PROBE.signature) == [STATUS]
    assert not [n for n in again.notes if "no sensor counters" in n]


def test_version_1_files_still_load_and_say_their_counts_are_lower_bounds(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text(lines({"record": "hit", "hit": hit(1)}))
    evidence = read_file(path)
    assert evidence.hit_count == 1
    assert evidence.statuses == {}
    assert evidence.notes == [
        f"{path}: evidence version 1 has no sensor counters: its rates are over captured hits, "
        "and its counts are lower bounds"
    ]
    # A status record in a version 1 file is an unknown record type there.
    path.write_text(lines({"record": "status", "status": STATUS}))
    assert "skipped 1 record(s) of unknown type 'status'" in read_file(path).notes[0]


def test_overlapping_files_are_deduplicated_by_hit_id_however_far_apart(tmp_path: Path) -> None:
    # Two recordings of the same 300 hits, one newest first: the old check looked at the last
    # 64 hits only and counted most of them twice.
    (tmp_path / "a.jsonl").write_text(
        lines(*({"record": "hit", "hit": hit(n)} for n in range(300)))
    )
    (tmp_path / "b.jsonl").write_text(
        lines(*({"record": "hit", "hit": hit(n)} for n in reversed(range(100, 400))))
    )
    evidence = read([tmp_path])
    assert evidence.hit_count == 400
    assert evidence.duplicates == 200
    hub = Evidence()
    hub.add_hits([hit(n) for n in range(350, 450)])
    evidence.merge(hub)
    assert evidence.hit_count == 450


def test_hits_without_an_id_are_deduplicated_by_content() -> None:
    evidence = Evidence()
    bare = [{k: v for k, v in hit(n).items() if k != "hit_id"} for n in range(3)]
    evidence.add_hits(bare)
    evidence.add_hits(bare)
    assert evidence.hit_count == 3


def test_memory_is_bounded_and_the_kept_sample_does_not_depend_on_order() -> None:
    hits = [hit(n) for n in range(1000)]
    for n in range(0, 1000, 100):
        hits[n]["expect"] = {"ok": False, "error": None}
    kept = []
    for order in (hits, list(reversed(hits)), hits[500:] + hits[:500]):
        evidence = Evidence(max_hits=100)
        for h in order:
            evidence.add_hits([h])
            assert len(evidence.hits.get(PROBE.signature, ())) <= 125
        evidence.add_hits(order[:300])  # hits read again are still duplicates, not new
        ids = sorted(h["hit_id"] for h in evidence.hits_for(PROBE.signature))
        assert len(ids) == 100
        assert evidence.capped == {PROBE.signature: 900}
        assert all(f"h-{n}" in ids for n in range(0, 1000, 100))  # violations kept first
        kept.append(ids)
    assert kept[0] == kept[1] == kept[2]
    assert "left out 900 more" in evidence.cap_notes()[0]


def test_a_written_file_validates_against_the_published_schema(tmp_path: Path) -> None:
    import jsonschema  # type: ignore[import-untyped]

    schema_path = Path(__file__).parents[3] / "docs" / "reference" / "evidence.schema.json"
    schema = json.loads(schema_path.read_text())
    evidence = Evidence()
    evidence.add_probe(PROBE.to_dict())
    evidence.add_status({**STATUS, "reason": "disabled: reached max_hits (1)"})
    evidence.add_hits([hit(1)])
    path = tmp_path / "rec.jsonl"
    write(path, evidence)
    validator = jsonschema.Draft202012Validator(schema)
    for line in path.read_text().splitlines():
        validator.validate(json.loads(line))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"record": "status", "status": {**STATUS, "counters": {"hits": -1}}})


def test_keep_hits_forgets_the_others_so_they_can_be_read_again() -> None:
    evidence = Evidence()
    evidence.add_hits(
        [hit(n, source={"id": f"s{n}", "version": "2.0" if n % 2 else "1.0"}) for n in range(6)]
    )
    kept = evidence.keep_hits(PROBE.signature, lambda h: h["source"]["version"] == "2.0")
    assert [h["hit_id"] for h in kept] == ["h-1", "h-3", "h-5"]
    assert [h["hit_id"] for h in evidence.hits_for(PROBE.signature)] == ["h-1", "h-3", "h-5"]
    evidence.add_hits([hit(0, source={"id": "s0", "version": "1.0"})])  # not a duplicate now
    assert evidence.duplicates == 0
    assert len(evidence.hits_for(PROBE.signature)) == 4
