"""--runtime-probe against a real hub process: errors are usage errors, probes are cleaned up."""

from __future__ import annotations

import socket

import pytest
from plugin_support import CLIENT_TOKEN, HubProcess

from pytest_runtime.errors import HubAuthError, HubRequestError, HubUnreachableError
from pytest_runtime.hub import HubClient
from pytest_runtime.markers import parse_probe_args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_hub_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_plain(): print('RAN')")
    url = f"http://127.0.0.1:{free_port()}"
    result = pytester.runpytest("--runtime-probe", "--runtime-hub", url, "-s")
    result.stderr.fnmatch_lines(
        [f"ERROR: pytest-runtime: hub {url} cannot be reached (ConnectionError, after 5 attempts)*"]
    )
    assert "RAN" not in result.stdout.str()
    assert "Traceback" not in result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_wrong_token_is_a_usage_error_naming_the_variable(
    pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", "wrong")
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--runtime-probe", "--runtime-hub", hub.url)
    result.stderr.fnmatch_lines(
        [
            f"ERROR: pytest-runtime: hub {hub.url} refused GET /v1/sources with 401*"
            "set SENSOR_CLIENT_TOKEN to a token with the client scope"
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_sensor_token_lacks_the_client_scope(
    pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_RUNTIME_TOKEN", hub.sensor_token)
    monkeypatch.setenv("PYTEST_RUNTIME_HUB", hub.url)
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--runtime-probe")
    result.stderr.fnmatch_lines(["*refused GET /v1/sources with 403*"])


def test_hub_from_ini_with_a_good_token_runs_the_tests(
    pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", CLIENT_TOKEN)
    pytester.makeini(f"[pytest]\nruntime_hub = {hub.url}\n")
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--runtime-probe")
    result.stdout.fnmatch_lines([f"runtime: live evidence from hub {hub.url}*"])
    result.assert_outcomes(passed=1)


def test_the_old_token_variable_still_works_with_a_deprecation_note(
    pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENSOR_CLIENT_TOKEN", raising=False)
    monkeypatch.setenv("PYTEST_RUNTIME_TOKEN", CLIENT_TOKEN)
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--runtime-probe", "--runtime-hub", hub.url)
    result.stdout.fnmatch_lines(
        [
            "runtime: PYTEST_RUNTIME_TOKEN is deprecated: set SENSOR_CLIENT_TOKEN instead (the "
            "same client token; python -m sensor reads it too)"
        ]
    )
    result.assert_outcomes(passed=1)


def test_client_places_finds_counts_exports_and_removes(hub: HubProcess) -> None:
    client = HubClient(hub.url, CLIENT_TOKEN)
    request = parse_probe_args(("shop.pricing:apply_discount",), {"capture": ["price"]})
    record = client.place(request.probe.to_dict(), {"service": "shop"}, ttl=60)
    assert record["signature"] == request.signature
    assert [p["id"] for p in client.find_probes(request.signature)] == [record["id"]]
    source = hub.register("shop")
    hit = {
        "probe_id": record["id"],
        "signature": request.signature,
        "kind": "snapshot",
        "location": request.location,
        "ts": 2_000_000_000.0,
        "hit_id": "x-1",
        "captures": {"price": 3},
    }
    hub.post_hits(source, [hit])
    assert len(client.hits(record["id"], since=0, limit=10)) == 1
    evidence = client.evidence(request.signature, since=0)
    assert [h["hit_id"] for h in evidence.hits_for(request.signature)] == ["x-1"]
    client.remove(record["id"])
    assert client.find_probes(request.signature) == []
    client.remove(record["id"])  # removing twice is fine
    client.close()


def test_client_errors_are_typed(hub: HubProcess) -> None:
    anonymous = HubClient(hub.url, None)
    client = HubClient(hub.url, CLIENT_TOKEN)
    nowhere = HubClient(f"http://127.0.0.1:{free_port()}", CLIENT_TOKEN, timeout=2)
    try:
        with pytest.raises(HubAuthError):
            anonymous.sources()
        with pytest.raises(HubRequestError, match=r"POST .*/v1/probes failed with 4\d\d"):
            client.place({"kind": "nope"}, {}, ttl=1)
        with pytest.raises(HubUnreachableError):
            nowhere.health()
    finally:
        for each in (anonymous, client, nowhere):
            each.close()
