"""The comparison's verdicts on realistic evidence: each divergence kind, noise and thresholds."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

import pytest
from compare_hits import LOCATION, dec, hit, order, prod_side, tdict, tt_side

from pytest_runtime.compare import CompareSettings, Divergence, NoiseRule, ProbeVerdict, compare
from sensor.probes import Probe

PROBE = Probe.from_dict(
    {
        "kind": "snapshot",
        "location": LOCATION,
        "capture": ["order", "price"],
        "expect": "price >= 0",
    }
)
PLAIN = Probe.from_dict({"kind": "snapshot", "location": LOCATION})


def only(verdict: ProbeVerdict, **match: Any) -> Divergence:
    found = [d for d in verdict.divergences if all(getattr(d, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [d.to_dict() for d in verdict.divergences])
    return found[0]


def test_same_evidence_as_tests_is_ok_with_full_coverage() -> None:
    verdict = compare(tt_side(), prod_side(), probe=PROBE)
    assert verdict.verdict == "ok", verdict.to_dict()
    assert verdict.divergences == ()
    assert verdict.state_coverage == 1.0
    assert verdict.counts["prod_hits"] == 200
    assert verdict.counts["covered_hits"] == 200


def test_none_where_tests_had_a_dict_is_a_high_shape_divergence_at_its_path() -> None:
    prod = prod_side(odd=lambda i: order(i, discount=None))
    verdict = compare(tt_side(), prod, probe=PROBE)
    assert verdict.verdict == "diverged"
    d = only(verdict, path="order.discount")
    assert (d.kind, d.severity, d.key) == ("shape", "high", "none")
    assert d.count == 20
    assert d.share == 0.1
    assert any("root['order']['discount']: type changed dict -> None" in x for x in d.deepdiff)
    assert d.representative["order"]["v"]["discount"] is None
    assert d.hit_ids[0] == "h-00000"
    assert d.sources == ("src-1",)
    assert verdict.state_coverage == 0.5
    assert "h-00000" in verdict.hint
    assert LOCATION in verdict.hint


def test_missing_key_is_high() -> None:
    prod = prod_side(odd=lambda i: order(i, drop="discount"))
    verdict = compare(tt_side(), prod, probe=PROBE)
    d = only(verdict, path="order.discount")
    assert (d.kind, d.severity, d.key) == ("shape", "high", "missing")
    assert any("removed" in line and "discount" in line for line in d.deepdiff)


def test_added_key_is_low() -> None:
    prod = prod_side(odd=lambda i: order(i, extra={"coupon": "X"}))
    verdict = compare(tt_side(), prod, probe=PROBE)
    d = only(verdict, path="order.coupon")
    assert (d.kind, d.severity, d.key) == ("shape", "low", "added")
    assert any("root['order']['coupon']: added 'X'" in line for line in d.deepdiff)
    assert verdict.verdict == "diverged"


def test_new_currency_in_a_small_categorical_set_is_medium() -> None:
    prod = prod_side(odd=lambda i: order(i, currency="JPY"))
    verdict = compare(tt_side(), prod, probe=PROBE)
    d = only(verdict, path="order.currency")
    assert (d.kind, d.severity, d.key) == ("range", "medium", "one-of:'JPY'")
    assert "'EUR', 'USD'" in d.message
    assert d.deepdiff == ("root['order']['currency']: value changed 'EUR' -> 'JPY'",)
    # The shape is the same: a value class is not a shape, coverage stays full.
    assert verdict.state_coverage == 1.0


def test_tests_with_one_distinct_value_each_still_form_a_one_of_set() -> None:
    # Five tested currencies plus AUD: six distinct production values, the most a category
    # has by default (it was six tested ones, seven in production, before the categorical
    # rule: seven is now free text).
    currencies = ["EUR", "USD", "GBP", "CHF", "SEK"]
    tests = [hit(i, order(i, currency=c), prefix="t") for i, c in enumerate(currencies)]
    prod = [hit(i, order(i + 100, currency=currencies[i % 5])) for i in range(200)]
    prod[::10] = [hit(i, order(i + 100, currency="AUD")) for i in range(0, 200, 10)]
    d = only(compare(tests, prod, probe=PROBE), path="order.currency")
    assert (d.key, d.count) == ("one-of:'AUD'", 20)


def test_negative_value_where_tests_only_had_positives_is_medium() -> None:
    prod = prod_side(odd=lambda i: order(i, price=-4))
    verdict = compare(tt_side(), prod, probe=PLAIN)
    d = only(verdict, path="price")
    assert (d.kind, d.severity, d.key) == ("range", "medium", "class:negative")
    assert "tests only had positive" in d.message


def test_zero_and_magnitude_are_value_classes_too() -> None:
    prod = prod_side(odd=lambda i: order(i, price=0 if i % 20 else 50_000))
    verdict = compare(tt_side(), prod, probe=PLAIN)
    assert only(verdict, path="price", key="class:zero").severity == "medium"
    assert only(verdict, path="price", key="magnitude").count == 10


def test_type_change_int_to_decimal_is_high() -> None:
    prod = prod_side(odd=lambda i: order(i, price=dec("12.50")))
    verdict = compare(tt_side(), prod, probe=PROBE)
    d = only(verdict, path="price")
    assert (d.kind, d.severity, d.key) == ("shape", "high", "type:decimal.Decimal")
    assert d.deepdiff == (
        "root['price']: type changed int -> decimal.Decimal (12 -> Decimal('12.50'))",
    )


def test_ids_timestamps_and_uuids_that_differ_on_every_hit_are_not_flagged() -> None:
    # order() gives every hit its own id, uid and created time, on both sides.
    verdict = compare(tt_side(), prod_side(n=500), probe=PROBE)
    assert verdict.verdict == "ok", verdict.to_dict()
    assert verdict.noise == {
        "order.created": "timestamp",
        "order.id": "unique",
        "order.uid": "uuid",
    }


def test_a_noisy_field_that_changes_type_is_still_reported() -> None:
    prod = prod_side(odd=lambda i: order(i, extra={"created": None}))
    verdict = compare(tt_side(), prod, probe=PROBE)
    assert only(verdict, path="order.created").key == "none"


def test_a_single_odd_hit_in_ten_thousand_is_not_flagged() -> None:
    prod = prod_side(n=10_000, odd=lambda i: order(i, discount=None), every=10_001)
    verdict = compare(tt_side(), prod, probe=PROBE)
    assert verdict.verdict == "ok"
    assert verdict.counts["below_threshold"] == 1
    assert verdict.state_coverage == 0.5  # honest: the odd shape is still uncovered


def test_a_single_violation_in_ten_thousand_is_violated() -> None:
    prod = prod_side(n=10_000)
    prod[4321] = hit(4321, order(4321, price=-1), ok=False)
    verdict = compare(tt_side(), prod, probe=PROBE)
    assert verdict.verdict == "violated"
    assert verdict.fails
    d = only(verdict, kind="violation")
    assert (d.severity, d.count, d.hit_ids) == ("high", 1, ("h-04321",))
    assert "price >= 0" in d.message
    assert any("-1" in line for line in d.deepdiff)
    assert verdict.counts["violations"] == 1


def test_too_few_hits_is_inconclusive() -> None:
    verdict = compare(tt_side(), prod_side(n=3), probe=PROBE)
    assert verdict.verdict == "inconclusive"
    assert "3 production hit(s), 10 needed" in verdict.hint
    empty = compare(tt_side(), [], probe=PROBE)
    assert empty.verdict == "inconclusive"
    assert empty.state_coverage == 0.0


def test_declared_ignore_path_is_compared_by_type_only() -> None:
    settings = CompareSettings(ignore=("order.currency",))
    prod = prod_side(odd=lambda i: order(i, currency="JPY"))
    assert compare(tt_side(), prod, probe=PROBE, settings=settings).verdict == "ok"
    prod = prod_side(odd=lambda i: order(i, currency=None))  # type: ignore[arg-type]
    verdict = compare(tt_side(), prod, probe=PROBE, settings=settings)
    assert only(verdict, path="order.currency").key == "none"


def test_ignore_accepts_deepdiff_paths_and_noise_rules() -> None:
    prod = prod_side(odd=lambda i: order(i, currency="JPY"))
    for settings in (
        CompareSettings(ignore=("root['order']['currency']",)),
        CompareSettings(noise_rules=(NoiseRule("order.curr*", "hook"),)),
        CompareSettings(ignore=("order",)),
    ):
        assert compare(tt_side(), prod, probe=PROBE, settings=settings).verdict == "ok"


def test_exception_never_raised_in_tests_is_high() -> None:
    prod = prod_side()
    for i in range(0, 200, 25):
        prod[i]["exception"] = {"type": "decimal.InvalidOperation", "message": "bad"}
    verdict = compare(tt_side(), prod, probe=PROBE)
    d = only(verdict, kind="exception")
    assert (d.severity, d.path, d.count) == ("high", "exception", 8)
    assert d.deepdiff == ("exception decimal.InvalidOperation: bad",)


def test_exception_also_raised_in_tests_is_not_a_divergence() -> None:
    tests = tt_side()
    tests[0]["exception"] = {"type": "KeyError", "message": "k"}
    prod = prod_side()
    prod[0]["exception"] = prod[1]["exception"] = {"type": "KeyError", "message": "k"}
    assert compare(tests, prod, probe=PROBE).verdict == "ok"


def test_a_location_the_tests_never_reached_is_a_high_path_divergence() -> None:
    verdict = compare([], prod_side(), probe=PROBE)
    d = only(verdict, key="no-test-states")
    assert (d.kind, d.severity, d.path) == ("path", "high", "")
    assert d.message == f"the tests never reached {LOCATION}@return; production did 200 times"
    assert d.count == 200
    assert d.deepdiff == ()  # there is no test-time state to diff against
    assert d.representative is not None
    assert verdict.verdict == "diverged"
    assert verdict.state_coverage == 0.0
    assert LOCATION in verdict.hint


def test_a_location_reached_once_says_time_not_times() -> None:
    d = only(compare([], prod_side(n=2), probe=PLAIN, settings=CompareSettings(min_hits=1)))
    assert d.message.endswith("production did 2 times")
    d = only(compare([], prod_side(n=1), probe=PLAIN, settings=CompareSettings(min_count=1)))
    assert d.message.endswith("production did 1 time")


# --------------------------------------------------------------------------- one-of: categories
# Realistic mixes: a currency has a handful of values that repeat; an address has free text
# (cities, streets, postcodes) with many distinct values.

_CURRENCY_MIX = ["USD"] * 10 + ["EUR"] * 4 + ["GBP"] * 3 + ["JPY"] * 3
_CITIES = [f"City {n}" for n in range(150)]


def _address_state(i: int, city: str, street: str, postcode: str, currency: str) -> Any:
    address = tdict(country="US", city=city, street=street, postcode=postcode)
    return {"address": address, "currency": currency}


def _address_tests(currencies: tuple[str, ...] = ("USD", "EUR")) -> list[dict[str, Any]]:
    # Two tested currencies: the test author exercised a category (one would be a fixture).
    return [
        hit(i, _address_state(i, "New York", "5th Avenue 1", "10001", c), prefix="t")
        for i, c in enumerate(currencies + currencies[:1])
    ]


def test_a_new_currency_among_few_repeated_values_is_still_flagged() -> None:
    # 4 distinct values over 40 hits: a category (a 5th currency as common as these would
    # have shown), and JPY is a value the tests never had.
    rng = random.Random(7)
    mix = _CURRENCY_MIX * 2
    prod = [
        hit(i, _address_state(i, "New York", "5th Avenue 1", "10001", c))
        for i, c in enumerate(rng.sample(mix, len(mix)))
    ]
    verdict = compare(_address_tests(), prod, probe=PLAIN)
    keys = {d.key for d in verdict.divergences if d.path == "currency"}
    assert keys == {"one-of:'GBP'", "one-of:'JPY'"}
    jpy = only(verdict, key="one-of:'JPY'")
    assert (jpy.kind, jpy.severity, jpy.count) == ("range", "medium", 6)
    assert "tests had one of {'EUR', 'USD'}" in jpy.message
    # Over 20 hits the same 4 currencies are not yet a category: 20 hits of 5 equally likely
    # currencies show only 4 of them in about 6% of samples (39 hits are needed for 0.1%).
    verdict = compare(_address_tests(), prod[:20], probe=PLAIN)
    assert not [d for d in verdict.divergences if d.path == "currency"]


def test_free_text_with_many_distinct_values_is_not_a_one_of_set() -> None:
    # One tested address; production: 200 orders from 150 cities, streets and postcodes.
    rng = random.Random(11)
    prod = []
    for i in range(200):
        n = rng.randrange(len(_CITIES))
        state = _address_state(i, _CITIES[n], f"Main St {n}", f"{10000 + n}", "USD")
        prod.append(hit(i, state))
    verdict = compare(_address_tests(), prod, probe=PLAIN)
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]


def test_a_small_pool_of_addresses_above_the_distinct_limit_is_not_a_one_of_set() -> None:
    # Like the demo's traffic (9 addresses, 7 postcodes), many hits each: not a category.
    pool = [(f"City {n}", f"Street {n}", f"{90000 + n}") for n in range(9)]
    prod = [hit(i, _address_state(i, *pool[i % 9], "USD")) for i in range(300)]
    verdict = compare(_address_tests(), prod, probe=PLAIN)
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]


def test_seven_distinct_values_are_free_text_by_default() -> None:
    pool = ["USD", "EUR", "GBP", "JPY", "CHF", "SEK", "NOK"]
    prod = [
        hit(i, _address_state(i, "New York", "5th Avenue 1", "10001", pool[i % 7]))
        for i in range(280)
    ]
    verdict = compare(_address_tests(), prod, probe=PLAIN)
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]
    six = [
        hit(i, _address_state(i, "New York", "5th Avenue 1", "10001", pool[i % 6]))
        for i in range(280)
    ]
    found = {d.key for d in compare(_address_tests(), six, probe=PLAIN).divergences}
    assert found == {f"one-of:{c!r}" for c in pool[2:6]}


def test_category_thresholds_are_settings() -> None:
    pool = [(f"City {n}", f"Street {n}", f"{90000 + n}") for n in range(9)]
    prod = [hit(i, _address_state(i, *pool[i % 9], "USD")) for i in range(300)]
    tests = [hit(i, _address_state(i, *pool[i], "USD"), prefix="t") for i in range(2)]
    settings = CompareSettings(category_max_distinct=9)
    verdict = compare(tests, prod, probe=PLAIN, settings=settings)
    assert {d.path for d in verdict.divergences} == {
        "address.city",
        "address.street",
        "address.postcode",
    }
    with pytest.raises(ValueError, match=r"category_min_repeat: got 0\.5"):
        CompareSettings(category_min_repeat=0.5)


def test_values_that_rarely_repeat_are_not_a_category_even_when_few() -> None:
    # 5 distinct values over 12 hits: 2.4 hits each, under the 4 a category needs.
    names = ["Ann", "Bob", "Cy", "Di", "Ed"]
    prod = [hit(i, _address_state(i, names[i % 5], "s", "1", "USD")) for i in range(12)]
    verdict = compare(_address_tests(), prod, probe=PLAIN)
    assert not [d for d in verdict.divergences if d.path == "address.city"]


# --------------------------------------------------------------------------- redaction

_REDACTED = {"@t": "str", "@redacted": "name", "@len": "1-8"}
_SECRET_PROBE = Probe.from_dict(
    {"kind": "snapshot", "location": LOCATION, "capture": ["user", "token"], "expect": "token"}
)


def _user_state(token: Any, email: Any, age: Any = 30) -> dict[str, Any]:
    return {"token": token, "user": tdict(email=email, age=age)}


@pytest.mark.parametrize("redacted_side", ["production", "tests"])
def test_redacted_on_one_side_and_plain_on_the_other_is_no_divergence(redacted_side: str) -> None:
    plain = [hit(i, _user_state("abc", "a@x.io"), prefix="t") for i in range(20)]
    hidden = [hit(i, _user_state(_REDACTED, _REDACTED)) for i in range(40)]
    tests, prod = (plain, hidden) if redacted_side == "production" else (hidden, plain)
    verdict = compare(tests, prod, probe=_SECRET_PROBE)
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]


def test_redacted_values_give_no_deepdiff_line_in_a_violation() -> None:
    tests = [hit(i, _user_state("abc", "a@x.io"), prefix="t") for i in range(5)]
    prod = [hit(i, _user_state(_REDACTED, _REDACTED, age=31), ok=False) for i in range(40)]
    d = only(compare(tests, prod, probe=_SECRET_PROBE), kind="violation")
    assert d.deepdiff == ("root['user']['age']: value changed 30 -> 31",)


def test_a_redacted_value_of_another_type_is_still_a_type_change() -> None:
    tests = [hit(i, _user_state("abc", "a@x.io"), prefix="t") for i in range(5)]
    redacted_int = {"@t": "int", "@redacted": "name", "@len": "1-8"}
    prod = [hit(i, _user_state(redacted_int, "a@x.io")) for i in range(40)]
    d = only(compare(tests, prod, probe=_SECRET_PROBE), path="token")
    assert (d.kind, d.severity, d.key) == ("shape", "high", "type:int")


def test_longer_list_is_a_length_class() -> None:
    items = {"@t": "list", "v": [tdict(sku="a", qty=1)] * 30}
    prod = prod_side(odd=lambda i: order(i, extra={"items": items}))
    verdict = compare(tt_side(), prod, probe=PROBE)
    d = only(verdict, path="order.items")
    assert (d.kind, d.severity, d.key) == ("range", "medium", "length:11-100")
    # The class in words: "length 11-100" read as if production had lists of 11 to 100 items.
    assert d.message.startswith("order.items: 11 to 100 items in production; tests had ")
    assert "1 item" in d.message or "2 to 10 items" in d.message


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "0 items"), (1, "1 item"), (5, "2 to 10 items"), (50, "11 to 100 items"),
     (5000, "over 1000 items")],
)  # fmt: skip
def test_length_classes_read_as_words(n: int, words: str) -> None:
    from pytest_runtime.compare.shapes import length_bucket
    from pytest_runtime.compare.verdict import _items

    assert _items(length_bucket(n)) == words


def test_none_inside_list_items_is_reported_at_the_item_path() -> None:
    items = {"@t": "list", "v": [tdict(sku="a", qty=None), tdict(sku="b", qty=2)]}
    prod = prod_side(odd=lambda i: order(i, extra={"items": items}))
    d = only(compare(tt_side(), prod, probe=PROBE), path="order.items[].qty")
    assert d.key == "none"


def test_unexpanded_values_do_not_look_like_missing_fields() -> None:
    deep = {"@t": "dict", "@depth": True}
    prod = prod_side(odd=lambda i: order(i, extra={"discount": deep}))
    verdict = compare(tt_side(), prod, probe=PROBE)
    assert [d.path for d in verdict.divergences if d.key == "missing"] == []


def test_output_is_bounded_and_counts_what_was_cut() -> None:
    extra = {f"f{k}": k for k in range(40)}
    prod = prod_side(odd=lambda i: order(i, extra=extra))
    verdict = compare(tt_side(), prod, probe=PROBE, settings=CompareSettings(max_divergences=5))
    assert len(verdict.divergences) == 5
    assert verdict.counts["divergences_cut"] == 35
    assert all(len(d.hit_ids) <= 10 for d in verdict.divergences)


def test_divergences_are_sorted_by_severity_then_kind_then_path() -> None:
    def odd(i: int) -> dict[str, Any]:
        return order(i, currency="JPY", price=dec("1"), extra={"coupon": "X"})

    verdict = compare(tt_side(), prod_side(odd=odd), probe=PROBE)
    assert [d.severity for d in verdict.divergences] == ["high", "medium", "low"]


def test_result_does_not_depend_on_the_order_of_hits() -> None:
    prod = prod_side(n=300, odd=lambda i: order(i, discount=None, currency="GBP"), every=7)
    tests = tt_side()
    first = compare(tests, prod, probe=PROBE).to_dict()
    rng = random.Random(4)
    for _ in range(3):
        rng.shuffle(prod)
        rng.shuffle(tests)
        assert compare(tests, prod, probe=PROBE).to_dict() == first


def test_verdict_round_trips_through_json() -> None:
    prod = prod_side(odd=lambda i: order(i, discount=None))
    verdict = compare(tt_side(), prod, probe=PROBE, settings=CompareSettings(strict=True))
    again = ProbeVerdict.from_dict(json.loads(json.dumps(verdict.to_dict())))
    assert again == verdict
    assert again.fails  # diverged under strict


def test_diverged_fails_only_under_strict() -> None:
    prod = prod_side(odd=lambda i: order(i, discount=None))
    assert not compare(tt_side(), prod, probe=PROBE).fails


def test_expectation_is_rechecked_on_hits_without_a_result() -> None:
    prod = [hit(i, {"price": -1 if i == 3 else 5}, ok=None) for i in range(10)]
    tests = [hit(i, {"price": 5}, prefix="t") for i in range(3)]
    verdict = compare(tests, prod, probe=PROBE)
    assert verdict.counts["expect_rechecked"] == 10
    assert verdict.counts["expect_unchecked"] == 0
    assert verdict.verdict == "violated"
    assert only(verdict, kind="violation").hit_ids == ("h-00003",)


def test_recheck_needs_every_name_the_expectation_reads() -> None:
    prod = [hit(i, {"other": 1}, ok=None) for i in range(10)]
    verdict = compare([hit(0, {"other": 1}, prefix="t")], prod, probe=PROBE)
    assert verdict.counts["expect_unchecked"] == 10
    assert verdict.verdict == "ok"


def test_recheck_is_bounded_and_takes_the_smallest_hit_ids() -> None:
    prod = [hit(i, {"price": -1 if i == 7 else 5}, ok=None) for i in range(10)]
    settings = CompareSettings(max_rechecks=5)
    verdict = compare([hit(0, {"price": 5}, prefix="t")], prod, probe=PROBE, settings=settings)
    assert verdict.counts["expect_rechecked"] == 5
    assert verdict.counts["expect_unchecked"] == 5
    assert verdict.verdict == "ok"  # h-00007 was not among the 5 judged


def test_sensor_results_are_sampled_and_disagreements_counted() -> None:
    # The sensor said ok, yet the captured price breaks the expectation: a truncated or
    # redacted capture could explain it, so the sensor's result stands, and it is counted.
    prod = [hit(i, {"price": -1 if i == 2 else 5}, ok=True) for i in range(10)]
    verdict = compare([hit(0, {"price": 5}, prefix="t")], prod, probe=PROBE)
    assert verdict.counts["expect_disagreements"] == 1
    assert verdict.counts["violations"] == 0


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="min_share"):
        CompareSettings(min_share=2.0)
    with pytest.raises(TypeError, match="ignore"):
        CompareSettings(ignore="order.id")  # type: ignore[arg-type]


def test_importing_compare_does_not_import_deepdiff() -> None:
    code = "import sys, pytest_runtime.compare; print('deepdiff' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_deepdiff_lines_are_not_flooded_by_long_lists() -> None:
    items = {"@t": "list", "v": [None] * 300}
    prod = prod_side(odd=lambda i: order(i, extra={"items": items}))
    verdict = compare(tt_side(), prod, probe=PROBE)
    for d in verdict.divergences:
        assert len(d.deepdiff) <= 21


def test_deepdiff_runs_are_budgeted_and_shared_by_divergences_of_one_state() -> None:
    def odd(i: int) -> dict[str, Any]:
        return order(i, discount=None, extra={"coupon": "X"})

    prod = prod_side(odd=odd)
    prod += [hit(900 + i, order(900 + i, price=dec("1"))) for i in range(5)]
    shared = compare(tt_side(), prod, probe=PROBE, settings=CompareSettings(max_diffed=1))
    # discount and coupon share their representative: one deepdiff run serves both ...
    assert only(shared, path="order.discount").deepdiff
    assert only(shared, path="order.coupon").deepdiff
    # ... the Decimal price lives in other hits, past the budget: counted, not diffed.
    assert only(shared, path="price").deepdiff == ()
    assert shared.counts["not_diffed"] == 1


def test_an_item_lacking_a_key_every_tested_item_had_is_missing() -> None:
    items = {"@t": "list", "v": [tdict(sku="a", qty=1), tdict(sku="b")]}
    prod = prod_side(odd=lambda i: order(i, extra={"items": items}))
    d = only(compare(tt_side(), prod, probe=PROBE), path="order.items[].qty")
    assert (d.kind, d.severity, d.key) == ("shape", "high", "missing")
    assert "every tested item had it (int)" in d.message


def test_items_with_optional_keys_in_tests_are_not_missing() -> None:
    both = {"@t": "list", "v": [tdict(sku="a", qty=1), tdict(sku="b")]}
    tests = [
        hit(i, order(i, currency=["EUR", "USD"][i % 2], extra={"items": both}), prefix="t")
        for i in range(10)
    ]
    prod = prod_side(odd=lambda i: order(i, extra={"items": both}))
    assert compare(tests, prod, probe=PROBE).verdict == "ok"
