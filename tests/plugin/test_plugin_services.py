"""Which sources get a probe: a service must be named when the hub has several (real hub)."""

from __future__ import annotations

import pytest
from plugin_support import CLIENT_TOKEN, REQUEST, TEST_SOURCE, HubProcess, make_shop

from pytest_runtime.hub import HubClient


@pytest.fixture
def shop(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    make_shop(pytester)
    pytester.makepyfile(
        test_shop=TEST_SOURCE.replace(
            "def test_discount():", "def test_discount():\n    print('BODY RAN')"
        )
    )
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", CLIENT_TOKEN)
    return pytester


def placed(hub: HubProcess) -> list[dict[str, object]]:
    client = HubClient(hub.url, CLIENT_TOKEN)
    try:
        return client.find_probes(REQUEST.signature, state="removed")
    finally:
        client.close()


def test_two_services_and_none_named_stops_before_any_test_listing_them(
    shop: pytest.Pytester, hub: HubProcess
) -> None:
    hub.register("shop")
    hub.register("billing")
    result = shop.runpytest_subprocess("--runtime-probe", "--runtime-hub", hub.url, "-s")
    result.stderr.fnmatch_lines(
        [
            "ERROR: pytest-runtime: test_shop.py::test_discount: runtime_probe "
            "shop.pricing:apply_discount@return: no service named, and the hub has 2 live "
            "services (billing, shop): name one with --runtime-service, ini runtime_service or "
            "the marker's service=*"
        ]
    )
    assert "BODY RAN" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert placed(hub) == []


@pytest.mark.parametrize(
    "how", ["option", "ini", "marker"], ids=["--runtime-service", "ini", "marker"]
)
def test_two_services_and_one_named_probes_only_that_service(
    shop: pytest.Pytester, hub: HubProcess, how: str
) -> None:
    hub.register("shop")
    hub.register("billing")
    args = ["--runtime-probe", "--runtime-hub", hub.url, "--runtime-wait", "0"]
    if how == "option":
        args += ["--runtime-service", "shop"]
    elif how == "ini":
        shop.makeini("[pytest]\nruntime_service = shop\n")
    else:
        shop.makepyfile(
            test_shop=TEST_SOURCE.replace(
                'capture=["price", "rate"]', 'capture=["price", "rate"], service="shop"'
            )
        )
    result = shop.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    [record] = placed(hub)
    assert record["selector"] == {"service": "shop"}


def test_one_live_service_is_used_and_the_header_says_so(
    shop: pytest.Pytester, hub: HubProcess
) -> None:
    hub.register("shop")
    result = shop.runpytest_subprocess(
        "--runtime-probe", "--runtime-hub", hub.url, "--runtime-wait", "0"
    )
    result.stdout.fnmatch_lines(
        [
            "runtime: the hub has one live service, 'shop': probes that name no service go to "
            "its sources (--runtime-service or ini runtime_service to choose)"
        ]
    )
    [record] = placed(hub)
    assert record["selector"] == {"service": "shop"}


def test_under_xdist_an_unnamed_service_makes_the_verdict_say_why(
    shop: pytest.Pytester, hub: HubProcess
) -> None:
    # Workers collect, the controller does not: the check happens when placing, and the
    # verdict (not a usage error after the tests ran) carries the reason.
    hub.register("shop")
    hub.register("billing")
    result = shop.runpytest_subprocess(
        "-n", "1", "--runtime-probe", "--runtime-hub", hub.url, "--runtime-wait", "0"
    )
    result.stdout.fnmatch_lines(
        [
            "INCONCLUSIVE test_shop.py::test_discount*",
            "    runtime_probe shop.pricing:apply_discount@return: no service named, and the hub "
            "has 2 live services (billing, shop)*",
        ]
    )
    assert placed(hub) == []
