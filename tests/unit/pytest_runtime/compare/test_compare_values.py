"""Value classes tidy tests never have (text, time zones), numbers that are not ids, categories."""

from __future__ import annotations

import random
from typing import Any

import pytest
from compare_hits import LOCATION, hit

from pytest_runtime.compare import CompareSettings, Divergence, ProbeVerdict, compare
from pytest_runtime.compare.values import (
    CATEGORY_ERROR,
    VALUE_CLASSES,
    category_min_hits,
    is_categorical,
    text_classes,
    unseen_values,
)
from sensor.probes import Probe

PLAIN = Probe.from_dict({"kind": "snapshot", "location": LOCATION})


def dt(text: str) -> dict[str, Any]:
    return {"@t": "datetime.datetime", "v": text}


def sides(
    tested: list[Any], produced: list[Any], *, n: int = 60, field: str = "name"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Test-time hits with the tested values; production hits cycling through ``produced``."""
    tests = [hit(i, {field: v, "qty": 2}, prefix="t") for i, v in enumerate(tested)]
    prod = [hit(i, {field: produced[i % len(produced)], "qty": 2}) for i in range(n)]
    return tests, prod


def keys(verdict: ProbeVerdict, path: str = "name") -> dict[str, Divergence]:
    return {d.key: d for d in verdict.divergences if d.path == path}


TIDY = ["alice", "bob", "carol", "dave smith"]


@pytest.mark.parametrize(
    ("odd", "key", "severity"),
    [
        (" alice", "class:edge-whitespace", "medium"),
        ("bob ", "class:edge-whitespace", "medium"),
        ("bob\tsmith", "class:tab-or-newline", "medium"),
        ("bob\nsmith", "class:tab-or-newline", "medium"),
        ("bob\xa0smith", "class:non-breaking-space", "medium"),
        ("bob\u200bsmith", "class:zero-width", "medium"),
        ("bob\x07smith", "class:control", "medium"),
        ("bob\u202esmith", "class:direction-mark", "medium"),
        ("zoe\u0301", "class:combining-mark", "medium"),
        ("zoë", "class:non-ascii-letter", "low"),
        ("bob 🎉", "class:emoji", "low"),
        ("BOB", "class:upper-case", "low"),
        ("Bob", "class:mixed-case", "low"),
    ],
)
def test_a_text_class_production_has_and_tests_never_had_is_named(
    odd: str, key: str, severity: str
) -> None:
    tests, prod = sides(TIDY, [*TIDY, odd])
    verdict = compare(tests, prod, probe=PLAIN)
    found = keys(verdict)
    assert key in found, [d.message for d in verdict.divergences]
    d = found[key]
    assert (d.kind, d.severity, d.count) == ("range", severity, 12)
    # The example shows what is invisible: escaped by repr, or by ascii for combining marks
    # (which print fused with their letter).
    shown = ascii(odd) if key == "class:combining-mark" else repr(odd)
    assert shown[:20].rstrip("'") in d.message
    assert verdict.verdict == "diverged"


def test_strings_that_differ_only_in_content_stay_ok() -> None:
    tests, prod = sides(TIDY, [f"user {n}" for n in range(40)] + ["zed", "xavier"])
    verdict = compare(tests, prod, probe=PLAIN)
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]


def test_accented_tests_make_accented_production_ordinary() -> None:
    names = [f"{first} {n}" for n in range(10) for first in ("chloé", "anaïs", "jürgen")]
    tests, prod = sides(["zoë", "renée", "bob"], names)
    assert compare(tests, prod, probe=PLAIN).verdict == "ok"


def test_text_classes_are_still_checked_on_an_id_path_but_not_case() -> None:
    # Unique tokens are noise (compared by type), yet a trailing newline in one is news (one
    # line: the newline, not also "trailing whitespace").
    tests = [hit(i, {"token": f"tok{i:04d}abc"}, prefix="t") for i in range(5)]
    prod = [hit(i, {"token": f"tok{i:04d}ABC" + ("\n" * (i % 10 == 0))}) for i in range(60)]
    verdict = compare(tests, prod, probe=PLAIN)
    assert verdict.noise == {"token": "unique"}
    found = keys(verdict, "token")
    assert set(found) == {"class:tab-or-newline"}


def test_every_text_class_of_the_table_is_detected() -> None:
    # The table is what a reader audits: each of its text classes has a value showing it.
    samples = {
        "empty": "",
        "non-empty": "a",
        "edge-whitespace": " a",
        "tab-or-newline": "a\tb",
        "non-breaking-space": "a\u202fb",
        "zero-width": "a\ufeffb",
        "control": "a\x1bb",
        "direction-mark": "a\u200fb",
        "combining-mark": "a\u0308",
        "non-ascii-letter": "ß",
        "emoji": "🙂",
        "upper-case": "AB",
        "lower-case": "ab",
        "mixed-case": "Ab",
    }
    names = {c.name for c in VALUE_CLASSES if c.of == "text"}
    assert set(samples) == names
    for name, value in samples.items():
        assert name in text_classes(value), (name, value)
    assert "zero-width" not in text_classes("👨\u200d👩")  # a joiner inside an emoji is not


def test_a_timezone_aware_datetime_where_tests_had_naive_ones_is_medium() -> None:
    naive = [dt(f"2026-01-0{d}T10:00:00") for d in range(1, 4)]
    tests, prod = sides(naive, [*naive, dt("2026-01-05T10:00:00+02:00")], field="at")
    d = keys(compare(tests, prod, probe=PLAIN), "at")["class:tz-aware"]
    assert (d.severity, d.count) == ("medium", 15)
    assert "+02:00" in d.message


def test_a_naive_datetime_where_tests_had_aware_ones_is_medium() -> None:
    aware = [dt(f"2026-01-0{d}T10:00:00+00:00") for d in range(1, 4)]
    tests, prod = sides(aware, [*aware, dt("2026-01-05T10:00:00")], field="at")
    assert keys(compare(tests, prod, probe=PLAIN), "at")["class:naive"].severity == "medium"


def test_another_utc_offset_is_low_and_one_line_for_every_offset() -> None:
    utc = [dt(f"2026-01-0{d}T10:00:00+00:00") for d in range(1, 4)]
    odd = [dt("2026-01-05T10:00:00+02:00"), dt("2026-01-05T10:00:00-05:00")]
    tests, prod = sides(utc, utc + odd, field="at")
    found = keys(compare(tests, prod, probe=PLAIN), "at")
    assert set(found) == {"class:other-utc-offset"}
    d = found["class:other-utc-offset"]
    assert d.severity == "low"
    assert "+02:00, -05:00" in d.message
    assert "tests had +00:00" in d.message


def test_iso_timestamps_as_text_are_noise_yet_keep_their_time_zone_class() -> None:
    tests = [hit(i, {"at": f"2026-01-01T10:00:{i:02d}"}, prefix="t") for i in range(5)]
    prod = [hit(i, {"at": f"2026-01-02T10:{i:02d}:00Z"}) for i in range(40)]
    verdict = compare(tests, prod, probe=PLAIN)
    assert verdict.noise == {"at": "timestamp"}
    assert set(keys(verdict, "at")) == {"class:tz-aware"}


# --------------------------------------------------------------------------- ids vs numbers


def test_a_small_range_quantity_distinct_on_every_hit_is_not_an_id() -> None:
    # 45 hits, quantities 5..49, all distinct (seeded, sequential traffic): a quantity. A
    # negative one and a huge one must still be seen.
    tests = [hit(i, {"qty": q}, prefix="t") for i, q in enumerate((1, 2, 3))]
    prod = [hit(i, {"qty": 5 + i}) for i in range(45)]
    prod[10]["captures"]["qty"] = prod[20]["captures"]["qty"] = -7
    prod[30]["captures"]["qty"] = prod[40]["captures"]["qty"] = 90_000
    verdict = compare(tests, prod, probe=PLAIN)
    assert "qty" not in verdict.noise
    found = keys(verdict, "qty")
    assert {"class:negative", "magnitude"} <= set(found)


def test_ids_named_like_ids_or_spread_wide_are_noise_yet_keep_their_sign() -> None:
    tests = [hit(i, {"order_id": 1 + i, "ref": 10**9 + i * 7919}, prefix="t") for i in range(3)]
    prod = [hit(i, {"order_id": 5000 + i, "ref": 10**9 + i * 104_729}) for i in range(60)]
    prod[7]["captures"]["order_id"] = prod[8]["captures"]["order_id"] = -1
    verdict = compare(tests, prod, probe=PLAIN)
    assert verdict.noise == {"order_id": "unique", "ref": "unique"}
    assert set(keys(verdict, "order_id")) == {"class:negative"}  # sign kept, no magnitude
    assert keys(verdict, "ref") == {}


# --------------------------------------------------------------------------- categories


def _kinds(tested: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return sides(tested, ["mug", "mug", "cup", "plate"], field="kind")


def test_a_new_value_of_a_field_with_one_tested_value_is_no_divergence() -> None:
    tests, prod = _kinds(["mug"])
    verdict = compare(tests, prod, probe=PLAIN)
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]


def test_under_strict_a_field_with_one_tested_value_reports_new_values_as_low() -> None:
    tests, prod = _kinds(["mug"])
    verdict = compare(tests, prod, probe=PLAIN, settings=CompareSettings(strict=True))
    found = keys(verdict, "kind")
    assert set(found) == {"one-of:'cup'", "one-of:'plate'"}
    assert {d.severity for d in found.values()} == {"low"}
    assert "tests had only 'mug'" in found["one-of:'cup'"].message


def test_a_new_value_of_a_field_tested_with_several_values_is_medium() -> None:
    tests, prod = _kinds(["mug", "plate"])
    found = keys(compare(tests, prod, probe=PLAIN), "kind")
    assert set(found) == {"one-of:'cup'"}
    assert found["one-of:'cup'"].severity == "medium"


def test_an_empty_value_of_a_category_is_one_line_not_two() -> None:
    tests, prod = sides(["EUR", "USD"], ["EUR", "USD", ""], field="currency")
    found = keys(compare(tests, prod, probe=PLAIN), "currency")
    assert set(found) == {"class:empty"}
    assert found["class:empty"].message == "currency: empty value in production; tests never had ''"


# A category is a closed set: a sample too small to have shown every value of a field is not
# one. The accuracy suite's streets (7 equally likely values, two of them tested) flaked: 24
# hits that missed one street looked like a 6-value category, and the other streets were "new".

_STREETS = ["Oak St", "Pine Ave", "Maple Rd", "Cedar Ln", "Elm St", "Birch Way", "Hill Rd"]


def _drawn(pool: list[str], n: int, seed: int, weights: list[float] | None = None) -> list[str]:
    return random.Random(f"{seed}:{n}").choices(pool, weights, k=n)


def test_a_field_of_seven_equally_likely_values_is_never_a_category_in_a_small_sample() -> None:
    # Before: 6 of 7 streets over 24 to ~40 hits were a category (about 1 sample in 6 at 24
    # hits), and the streets the tests lacked were new one-of values.
    tests = [hit(i, {"street": s}, prefix="t") for i, s in enumerate(["Oak St", "Elm St"])]
    flagged = []
    for n in range(20, 61):
        for seed in range(40):
            drawn = _drawn(_STREETS, n, seed)
            prod = [hit(i, {"street": s}) for i, s in enumerate(drawn)]
            if compare(tests, prod, probe=PLAIN).divergences:
                flagged.append((n, seed, len(set(drawn))))
    assert flagged == []


def test_the_hits_a_category_needs_bound_the_chance_of_missing_one_more_value() -> None:
    # The figure the docs give: a field of d + 1 equally likely values shows only d of them
    # (and so passes for a d-value category) in at most CATEGORY_ERROR of samples, exactly,
    # whatever their size (occupancy probabilities, not a simulation).
    assert [category_min_hits(d) for d in range(1, 7)] == [11, 20, 29, 39, 48, 58]
    for d in range(1, 7):
        m = d + 1
        shown = [1.0] + [0.0] * m  # P(exactly j of the m values shown) after n hits
        for n in range(1, 301):
            shown = [
                shown[j] * j / m + (shown[j - 1] * (m - j + 1) / m if j else 0.0)
                for j in range(m + 1)
            ]
            read_as_category = sum(
                shown[k] for k in range(1, m) if n >= category_min_hits(k) and n >= 4 * k
            )
            assert read_as_category <= CATEGORY_ERROR, (d, n, read_as_category)
        n = category_min_hits(d)
        assert m * (d / m) ** n <= CATEGORY_ERROR < m * (d / m) ** (n - 1)


@pytest.mark.parametrize(
    ("counts", "category"),
    [
        ([20, 20], True),  # a yes/no field
        ([14, 13, 13], True),  # 3 values over 40 hits
        ([30, 20, 9, 1], True),  # a rare value seen once is no sign of more
        ([10, 4, 3, 3], False),  # 20 hits cannot tell 4 currencies from 5 (5.8% would look so)
        ([20, 8, 6, 6], True),  # 40 can
        ([10] * 6, True),  # 6 values over 60 hits
        ([4] * 6, False),  # 24 hits of 7 equally likely values show only 6 in 1 sample in 6
        ([30, 15, 8, 5, 1, 1], False),  # two values seen once: more are arriving (Chao1 7)
        ([40, 10, 1, 1, 1], False),  # three of five seen once
        ([9] * 7, False),  # more than 6 values
        ([], False),
    ],
)
def test_a_category_is_a_few_values_over_a_sample_that_shows_them_all(
    counts: list[int], category: bool
) -> None:
    assert is_categorical(counts) is category


def test_values_seen_once_estimate_the_values_not_seen() -> None:
    assert unseen_values([10, 10, 10]) == 0.0  # every value repeats: no sign of another
    assert unseen_values([10, 10, 1]) == 0.0  # one singleton: no estimate beyond it
    assert unseen_values([10, 1, 1]) == pytest.approx(11 / 12)
    assert unseen_values([10, 2, 1, 1, 1]) == pytest.approx(14 / 15 * 3 * 2 / 4)


def test_a_small_enum_over_forty_hits_still_reports_a_value_the_tests_lacked() -> None:
    # A status of 3 values, two tested: the third is news as soon as 29 hits show 3 values.
    tests = [hit(i, {"status": s}, prefix="t") for i, s in enumerate(["paid", "open"])]
    for seed in range(40):
        drawn = _drawn(["paid", "open", "void"], 40, seed, [0.5, 0.3, 0.2])
        prod = [hit(i, {"status": s}) for i, s in enumerate(drawn)]
        found = keys(compare(tests, prod, probe=PLAIN), "status")
        assert set(found) == {"one-of:'void'"}, (seed, drawn)
        assert found["one-of:'void'"].severity == "medium"
        assert found["one-of:'void'"].count == drawn.count("void")


def test_a_long_tail_of_values_seen_once_is_not_a_category() -> None:
    # A heavy head and rare values trickling in: the next sample shows others.
    tests, _ = sides(["a", "b"], ["a"], field="kind")
    values = ["a"] * 30 + ["b"] * 15 + ["c"] * 8 + ["d"] * 5 + ["e", "f"]
    prod = [hit(i, {"kind": v, "qty": 2}) for i, v in enumerate(values)]
    assert keys(compare(tests, prod, probe=PLAIN), "kind") == {}
    values[-2:] = ["e", "e"]  # the same head with the tail gone: a category, c d e are news
    prod = [hit(i, {"kind": v, "qty": 2}) for i, v in enumerate(values)]
    assert set(keys(compare(tests, prod, probe=PLAIN), "kind")) == {
        "one-of:'c'",
        "one-of:'d'",
        "one-of:'e'",
    }


def test_the_category_error_is_a_setting() -> None:
    tests, prod = sides(["mug", "plate"], ["mug", "plate", "cup"], n=24, field="kind")
    assert keys(compare(tests, prod, probe=PLAIN), "kind") == {}  # 24 < 29 hits
    loose = CompareSettings(category_error=0.05)  # 3 values need 16 hits then
    assert set(keys(compare(tests, prod, probe=PLAIN, settings=loose), "kind")) == {"one-of:'cup'"}
    with pytest.raises(ValueError, match=r"category_error: got 0"):
        CompareSettings(category_error=0)


def test_the_docs_table_of_value_classes_is_the_code_table() -> None:
    from pathlib import Path

    page = Path(__file__).parents[4] / "docs" / "explanation" / "comparison.md"
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `") and line.count("|") == 6
    ]
    documented = [
        (name.strip("`"), of, severity, meaning.replace("\\\\", "\\"), noise)
        for name, of, severity, meaning, noise in rows
    ]
    assert documented == [
        (c.name, c.of, c.severity, c.meaning, "yes" if c.on_noise else "no") for c in VALUE_CLASSES
    ]


def _quantities(n: int, odd: Any, *, every: int = 10, moved: int = 3) -> list[int]:
    """``n`` production quantities: tidy ones distinct in 5..100, ``moved`` of every ``every``
    replaced by ``odd(i)`` (the issue's trial: 30% of quantities changed)."""
    return [odd(i) if i % every < moved else 5 + (i * 37) % 96 for i in range(n)]


def _int_sides(
    tested: list[int], produced: list[int], field: str = "quantity"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tests = [hit(i, {field: v}, prefix="t") for i, v in enumerate(tested)]
    prod = [hit(i, {field: v}) for i, v in enumerate(produced)]
    return tests, prod


@pytest.mark.parametrize(
    ("odd", "key"),
    [
        (lambda i: 20_000 + i * 7_919 % 1_980_000, "magnitude"),  # wholesale lines
        (lambda i: -20_000 - i * 7_919 % 1_980_000, "class:negative"),  # huge returns
        (lambda i: -(1 + i % 500), "class:negative"),  # returns
    ],
    ids=["magnitude", "huge-negative", "negative"],
)
@pytest.mark.parametrize("moved", [3, 4], ids=["30pct", "40pct"])
def test_a_quantity_whose_production_spread_got_wide_is_not_an_id(
    odd: Any, key: str, moved: int
) -> None:
    # Tests had 5..99, production's quantities are distinct on every hit and a minority of
    # them moved far away: the middle 80% of production is wide, yet this is a quantity.
    tests, prod = _int_sides([5, 12, 40, 64, 99], _quantities(60, odd, moved=moved))
    verdict = compare(tests, prod, probe=PLAIN)
    assert "quantity" not in verdict.noise, verdict.noise
    assert key in keys(verdict, "quantity"), [d.message for d in verdict.divergences]
    if key == "magnitude":
        assert "magnitude up to" in keys(verdict, "quantity")[key].message


def _ids_verdict(tested: list[int], produced: list[int], field: str) -> ProbeVerdict:
    tests, prod = _int_sides(tested, produced, field)
    return compare(tests, prod, probe=PLAIN)


@pytest.mark.parametrize(
    ("field", "tested", "produced"),
    [
        # Sequential ids; the tests used small placeholders (an unnamed field).
        ("order", [1042, 1043], [7_340_000 + 5 * i for i in range(60)]),
        # Random ids in a wide range; the tests passed one small one.
        ("account", [42], [(i * 104_729) % 1_000_000 + 1 for i in range(60)]),
        # Large distinct ints in the tests too.
        ("ref", [10**9 + 7, 10**9 + 7_919], [10**9 + i * 104_729 for i in range(60)]),
        ("ref", [10**9 + 7], [10**9 + 5 * i for i in range(60)]),
        # Named like an id: noise whatever its values.
        ("order_id", [1, 2, 3], [5 + i for i in range(60)]),
        ("seq", [1, 2], [100 + i for i in range(60)]),
    ],
    ids=["sequential", "random", "large-in-tests", "large-sequential", "named", "named-seq"],
)
def test_real_ids_stay_noise(field: str, tested: list[int], produced: list[int]) -> None:
    verdict = _ids_verdict(tested, produced, field)
    assert verdict.noise == {field: "unique"}
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]


def test_an_id_that_turns_negative_keeps_its_sign_class() -> None:
    produced = [7_340_000 + 5 * i for i in range(60)]
    produced[7] = produced[8] = -1
    verdict = _ids_verdict([1042, 1043], produced, "order")
    assert verdict.noise == {"order": "unique"}
    assert set(keys(verdict, "order")) == {"class:negative"}
