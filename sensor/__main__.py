"""The ``python -m sensor`` command line: run the hub, talk to it, or run a program with a sensor.

Client verbs read the hub URL and token from ``--hub``/``--token`` or ``PYTEST_RUNTIME_HUB``/
``SENSOR_CLIENT_TOKEN`` (the pytest plugin reads the same variables; ``SENSOR_HUB_URL`` and
``SENSOR_TOKEN``, the services' sensor settings, are still read with a deprecation note);
``--json`` prints machine-readable output, otherwise tables. Everything printed from hub data is
escaped: a control character in a service's data never reaches the terminal raw. An error prints
one line on stderr and exits 1 (2 for a usage error).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from sensor.errors import ConfigError, HubError, HubResponseError, ProbeSpecError, SensorError
from sensor.redaction import redact_error

__all__ = ["main"]

PROG = "python -m sensor"


# -- output --------------------------------------------------------------------------------


def _esc(value: object) -> str:
    from sensor.render import escape_text

    return escape_text(str(value))


def _table(rows: list[list[str]], headers: list[str], out: TextIO) -> None:
    if not rows:
        out.write("(none)\n")
        return
    rows = [[_esc(cell) for cell in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    for line in [headers, *rows]:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
        out.write("\n")


def _age(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    delta = now - ts
    future = delta < 0
    delta = abs(delta)
    if delta < 90:
        text = f"{delta:.0f}s"
    elif delta < 5400:
        text = f"{delta / 60:.0f}m"
    elif delta < 36 * 3600:
        text = f"{delta / 3600:.0f}h"
    else:
        text = f"{delta / 86400:.0f}d"
    return f"in {text}" if future else f"{text} ago"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_json(data: Any, out: TextIO) -> None:
    json.dump(data, out, indent=2, sort_keys=True)
    out.write("\n")


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {redact_error(repr(item))}: expected KEY=VALUE")
        result[key] = value
    return result


# -- commands ------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    from sensor.client import (
        DEFAULT_HUB_URL,
        ENV_HUB,
        ENV_HUB_OLD,
        ENV_TOKEN,
        ENV_TOKEN_OLD,
        HubClient,
        hub_url_from_env,
        token_from_env,
    )
    from sensor.config import check_hub_url

    hub_option = f"--hub or {ENV_HUB}"
    if args.hub is not None:
        url = check_hub_url("--hub", args.hub)
    else:
        found, variable = hub_url_from_env()
        if variable == ENV_HUB_OLD:
            hub_option = f"--hub or {ENV_HUB_OLD}"
            print(
                f"warning: {ENV_HUB_OLD} is deprecated as the CLI's hub: set {ENV_HUB} (the hub "
                f"pytest --runtime-probe and the MCP server read too); {ENV_HUB_OLD} stays the "
                "hub of services' sensors",
                file=sys.stderr,
            )
        url = found or DEFAULT_HUB_URL
    token = args.token
    if token is None:
        token, variable = token_from_env()
        if variable == ENV_TOKEN_OLD:
            print(
                f"warning: {ENV_TOKEN_OLD} is deprecated as the CLI's token: set {ENV_TOKEN} "
                f"(the client token, which pytest --runtime-probe reads too); {ENV_TOKEN_OLD} "
                "stays the sensor token of services",
                file=sys.stderr,
            )
    return HubClient(url, token, timeout=args.timeout, cafile=args.cafile, hub_option=hub_option)


def _when(text: str) -> float:
    """argparse type of ``--since``/``--until``: the plugin's ``--runtime-since`` words."""
    from sensor.timespec import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _hub_env(name: str, expected: str) -> str | None:
    """A hub network variable; set to nothing is an error (a blank SENSOR_HUB_HOST would bind
    every interface, a blank SENSOR_HUB_SSL_CERTFILE would serve plain HTTP)."""
    text = os.environ.get(name)
    if text is not None and not text.strip():
        raise ConfigError(
            f"{name}: got {text!r}, expected {expected} (unset the variable for the default)"
        )
    return text


def cmd_hub(args: argparse.Namespace) -> int:
    from sensor.hub.server import serve
    from sensor.hub.settings import HubSettings

    settings = HubSettings.from_env(
        db=args.db,
        admin_token=args.admin_token,
        sensor_token=args.sensor_token,
        client_token=args.client_token,
        max_body=args.max_body,
        retention=args.retention,
        max_hits_per_probe=args.max_hits_per_probe,
        default_ttl=args.default_ttl,
        poll_wait=args.poll_wait,
        heartbeat_interval=args.heartbeat_interval,
        stale_after=args.stale_after,
        gone_after=args.gone_after,
        sqlite_synchronous=args.sqlite_synchronous,
        otel_endpoint=args.otel_endpoint,
    )
    port = args.port
    if port is None:
        text = os.environ.get("SENSOR_HUB_PORT", "8765")
        if not text.isdigit() or int(text) > 65535:
            raise ConfigError(
                f"SENSOR_HUB_PORT: got {redact_error(repr(text))}, expected a port number (0-65535)"
            )
        port = int(text)
    return serve(
        settings,
        host=args.host or _hub_env("SENSOR_HUB_HOST", "an address to bind") or "127.0.0.1",
        port=port,
        ssl_certfile=args.ssl_certfile
        or _hub_env("SENSOR_HUB_SSL_CERTFILE", "the path of a PEM certificate"),
        ssl_keyfile=args.ssl_keyfile
        or _hub_env("SENSOR_HUB_SSL_KEYFILE", "the path of a PEM private key"),
        access_log=args.access_log,
        log_level=args.log_level,
    )


def cmd_sources(args: argparse.Namespace) -> int:
    sources = _client(args).sources(
        service=args.service, labels=_pairs(args.label, "--label"), state=args.state
    )
    if args.json:
        _print_json({"sources": sources}, sys.stdout)
        return 0
    now = time.time()
    rows = [
        [
            s["id"][:12],
            s["service"],
            s.get("version") or "-",
            s.get("host") or "-",
            str(s.get("pid") or "-"),
            s.get("python") or "-",
            s["state"],
            _age(s.get("last_seen"), now),
            ",".join(f"{k}={v}" for k, v in sorted((s.get("labels") or {}).items())) or "-",
        ]
        for s in sources
    ]
    _table(
        rows,
        ["ID", "SERVICE", "VERSION", "HOST", "PID", "PYTHON", "STATE", "LAST SEEN", "LABELS"],
        sys.stdout,
    )
    return 0


def _probe_spec(args: argparse.Namespace) -> dict[str, Any]:
    from sensor.probes import Probe

    if args.spec:
        if args.spec == "-":
            text = sys.stdin.read()
        else:
            with open(args.spec, encoding="utf-8") as handle:
                text = handle.read()
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--spec {args.spec}: not valid JSON ({exc})") from None
        return Probe.from_dict(loaded).to_dict()
    if not args.location:
        raise ConfigError("probe add: expected a LOCATION (or --spec FILE)")
    data: dict[str, Any] = {"kind": args.kind, "location": args.location}
    if args.capture:
        data["capture"] = args.capture
    for name in ("condition", "expect", "template", "id"):
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    limits = {
        name: getattr(args, name)
        for name in ("rate", "max_hits")
        if getattr(args, name) is not None
    }
    if limits:
        data["limits"] = limits
    if args.tag:
        data["tags"] = _pairs(args.tag, "--tag")
    # validate here so a bad spec fails fast with the sensor's own message
    return Probe.from_dict(data).to_dict()


def cmd_probe_add(args: argparse.Namespace) -> int:
    probe = _probe_spec(args)
    selector: dict[str, Any] = {}
    if args.service:
        selector["service"] = args.service
    if args.label:
        selector["labels"] = _pairs(args.label, "--label")
    if args.source_id:
        selector["source_id"] = args.source_id
    client = _client(args)
    record = client.place_probe(probe, selector=selector, ttl=args.ttl)
    if not args.json:
        print(
            f"placed probe {record['id']} ({_esc(record['probe']['kind'])} at "
            f"{_esc(record['probe']['location'])}, signature {record['signature']}), "
            f"expires {_age(record.get('expires_at'), time.time())}"
        )
    record, sources, answered = _await_statuses(client, record, selector, args.wait)
    refused = _refused_by_all(record, sources)
    if refused is not None:
        client.remove_probe(record["id"])
    if args.json:
        _print_json({"probe": record}, sys.stdout)
    else:
        for line in _status_lines(record, sources, answered, args.wait):
            print(line)
    if refused is not None:
        print(
            f"error: probe {record['id']} was refused by every matching source that imported "
            f"its module: {_esc(refused)}; it was removed",
            file=sys.stderr,
        )
        return 1
    return 0


def _await_statuses(
    client: Any, record: dict[str, Any], selector: dict[str, Any], wait: float
) -> tuple[dict[str, Any], list[str], bool]:
    """Poll the probe until every matching live source reported a status, or ``wait`` ends.

    Returns the last record, the ids of the matching live sources, and whether all answered.
    """
    live = client.sources(
        service=selector.get("service"), labels=selector.get("labels"), state="live"
    )
    sources = [str(s["id"]) for s in live]
    if selector.get("source_id"):
        sources = [sid for sid in sources if sid == selector["source_id"]]
    if not sources or wait <= 0:
        return record, sources, False
    deadline = time.monotonic() + wait
    while True:
        record = client.probe(record["id"])
        statuses = record.get("statuses") or {}
        if all(sid in statuses for sid in sources):
            return record, sources, True
        if time.monotonic() >= deadline:
            return record, sources, False
        time.sleep(0.25)


def _refused_by_all(record: dict[str, Any], sources: list[str]) -> str | None:
    """The first reason, when every matching source that could place the probe refused it.

    Sources still waiting for the module to be imported do not count, so long as another
    source refused: a pre-fork server's master never imports the application, and its
    workers' answer is the one that matters. When every source waits, nothing is refused.
    """
    statuses = record.get("statuses") or {}
    if not sources or not all(sid in statuses for sid in sources):
        return None
    states = [statuses[sid] for sid in sources]
    errors = [st for st in states if st.get("state") == "error"]
    waiting = [
        st
        for st in states
        if st.get("state") == "pending" and str(st.get("reason") or "").startswith("waiting for")
    ]
    if errors and len(errors) + len(waiting) == len(states):
        return str(errors[0].get("reason") or "no reason given")
    return None


def _status_lines(
    record: dict[str, Any], sources: list[str], answered: bool, wait: float
) -> list[str]:
    """What the matching sources said about a new probe, grouped by state and reason."""
    if not sources:
        return [
            "pending: no live source matches the selector yet; the probe waits for one until it "
            "expires"
        ]
    statuses = record.get("statuses") or {}
    groups: dict[tuple[str, str], int] = {}
    for sid in sources:
        status = statuses.get(sid)
        if status is None:
            continue
        key = (str(status.get("state", "?")), str(status.get("reason") or ""))
        groups[key] = groups.get(key, 0) + 1
    lines = []
    for (state, reason), count in sorted(groups.items()):
        why = f": {_esc(reason)}" if reason else ""
        lines.append(f"{_esc(state)} on {count} of {len(sources)} source(s){why}")
    silent = len(sources) - sum(groups.values())
    if silent:
        waited = f" (waited {wait:g}s)" if wait > 0 else ""
        lines.append(
            f"pending: {silent} of {len(sources)} matching source(s) have not reported the "
            f"probe yet{waited}; see `probe show {record['id']}`"
        )
    return lines


def _probe_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    now = time.time()
    rows = []
    for record in records:
        statuses = record.get("statuses") or {}
        states: dict[str, int] = {}
        for status in statuses.values():
            states[status.get("state", "?")] = states.get(status.get("state", "?"), 0) + 1
        rows.append(
            [
                record["id"],
                record["state"],
                record["probe"]["kind"],
                _clip(record["probe"]["location"], 48),
                str(record.get("hit_count", 0)),
                ",".join(f"{k}:{v}" for k, v in sorted(states.items())) or "-",
                _age(record.get("expires_at"), now) if record["state"] == "active" else "-",
            ]
        )
    return rows


_PROBE_HEADERS = ["ID", "STATE", "KIND", "LOCATION", "HITS", "SOURCES", "EXPIRES"]


def cmd_probe_list(args: argparse.Namespace) -> int:
    records = _client(args).probes(signature=args.signature, state=args.state)
    if args.json:
        _print_json({"probes": records}, sys.stdout)
    else:
        _table(_probe_rows(records), _PROBE_HEADERS, sys.stdout)
    return 0


def cmd_probe_show(args: argparse.Namespace) -> int:
    _print_json({"probe": _client(args).probe(args.probe_id)}, sys.stdout)
    return 0


def cmd_probe_rm(args: argparse.Namespace) -> int:
    record = _client(args).remove_probe(args.probe_id)
    if args.json:
        _print_json({"probe": record}, sys.stdout)
    else:
        print(
            f"removed probe {_esc(record['id'])} (state {_esc(record['state'])}, "
            f"{record['hit_count']} hits)"
        )
    return 0


def _hit_summary(hit: dict[str, Any]) -> str:
    """The state of one hit for a table: decoded values, the exception type, the outcome."""
    from sensor.render import escape_text, render_captures, render_value

    parts: list[str] = []
    exception = hit.get("exception")
    if isinstance(exception, dict):
        message = exception.get("message")
        text = f"raised {exception.get('type', '?')}"
        if message is not None:
            text += f": {render_value(message, 60)}"
        parts.append(text)
    expect = hit.get("expect")
    if isinstance(expect, dict) and expect.get("ok") is not True:
        error = expect.get("error")
        parts.append("expect false" if expect.get("ok") is False else f"expect error: {error}")
    if hit.get("message") is not None:
        parts.append(str(hit["message"]))
    elif isinstance(hit.get("captures"), dict):
        parts.append(render_captures(hit["captures"], 100))
    elif hit.get("aggregate") is not None:
        aggregate = hit["aggregate"]
        parts.append(
            ", ".join(f"{k}={v}" for k, v in sorted(aggregate.items()))
            if isinstance(aggregate, dict)
            else str(aggregate)
        )
    if hit.get("errors"):
        parts.append(f"errors: {'; '.join(str(e) for e in hit['errors'])}")
    return _clip(escape_text("; ".join(parts) or "-"), 120)


_HIT_ID = re.compile(r"^[0-9a-f]{8}-\d+$")
_HIT_SCAN_PROBES = 200  # most recent probes asked for a hit id (one small request each)


def _tests_tag(record: dict[str, Any]) -> list[str]:
    tags = (record.get("probe") or {}).get("tags") or {}
    try:
        tests = json.loads(tags.get("tests") or "[]")
    except ValueError:
        return []
    return [str(t) for t in tests] if isinstance(tests, list) else []


def _same_location(target: str, location: str) -> bool:
    if target == location:
        return True
    try:
        from sensor.probes import Location

        return str(Location.parse(target)) == location
    except (SensorError, ValueError):
        return False


def _resolve_hits_target(client: Any, target: str) -> tuple[list[dict[str, Any]], str]:
    """The probes ``target`` names, and how: a probe id, a signature, a location or a test.

    A hit id is looked for last, among the hits of the most recent probes (bounded).
    """
    try:
        return [client.probe(target)], "probe id"
    except HubResponseError as exc:
        if exc.status not in (400, 404):
            raise
    records = client.probes()
    found = [r for r in records if r.get("signature") == target]
    if found:
        return found, "signature"
    found = [r for r in records if _same_location(target, str(r["probe"]["location"]))]
    if found:
        return found, "location"
    function = target.split("[", 1)[0]
    found = [r for r in records if function in _tests_tag(r) or target in _tests_tag(r)]
    if found:
        return found, "test"
    return [], ""


def _find_hit(
    client: Any, hit_id: str, probe_id: str | None, source_id: str | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(probe record, hit) of a hit id: one read of that probe's hit when ``probe_id`` is
    given (its 404 says what is missing), else one read per probe, the newest first (bounded)."""
    if probe_id is not None:
        return client.probe(probe_id), _read_hit(client, probe_id, hit_id, source_id)
    records = sorted(client.probes(), key=lambda r: r.get("created_at") or 0, reverse=True)
    for record in records[:_HIT_SCAN_PROBES]:
        try:
            return record, _read_hit(client, record["id"], hit_id, source_id)
        except HubResponseError as exc:
            if exc.status != 404:
                raise
    return None


def _read_hit(client: Any, probe_id: str, hit_id: str, source_id: str | None) -> dict[str, Any]:
    try:
        hit: dict[str, Any] = client.hit(probe_id, hit_id, source_id=source_id)
    except HubResponseError as exc:
        if exc.status == 409 and getattr(exc, "code", None) == "ambiguous_hit":
            raise ConfigError(f"hits: {exc} (here: --source-id ID)") from None
        raise
    return hit


def _hit_rows(hits: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for hit in hits:
        source = hit.get("source") or {}
        rows.append(
            [
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(hit["ts"])),
                "{}@{}:{}".format(
                    source.get("service", "?"), source.get("host") or "?", source.get("pid") or "?"
                ),
                hit.get("hit_id") or "-",
                _hit_summary(hit),
            ]
        )
    return rows


def _print_hit(record: dict[str, Any], hit: dict[str, Any]) -> None:
    """One hit in full: where it came from and each captured value, decoded and escaped."""
    from sensor.render import render_value

    source = hit.get("source") or {}
    print(f"hit {_esc(hit.get('hit_id'))} of probe {record['id']}")
    print(f"  location  {_esc(hit.get('location') or record['probe']['location'])}")
    print(f"  time      {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(hit['ts']))}")
    print(
        f"  source    {_esc(source.get('service', '?'))}@{_esc(source.get('host') or '?')}:"
        f"{_esc(source.get('pid') or '?')}"
    )
    if hit.get("line"):
        print(f"  line      {hit['line']}")
    exception = hit.get("exception")
    if isinstance(exception, dict):
        message = exception.get("message")
        shown = f": {render_value(message, 200)}" if message is not None else ""
        print(f"  raised    {_esc(exception.get('type', '?'))}{shown}")
    expect = hit.get("expect")
    if isinstance(expect, dict):
        ok = expect.get("ok")
        outcome = "true" if ok is True else "false" if ok is False else "error"
        error = f" ({_esc(expect.get('error'))})" if expect.get("error") else ""
        print(f"  expect    {outcome}{error}")
    if hit.get("message") is not None:
        print(f"  message   {_esc(hit['message'])}")
    captures = hit.get("captures")
    if isinstance(captures, dict):
        for name, value in captures.items():
            print(f"  {_esc(name)} = {render_value(value, 400)}")
    for error in hit.get("errors") or ():
        print(f"  error     {_esc(error)}")


def cmd_hits(args: argparse.Namespace) -> int:
    client = _client(args)
    filters = {"since": args.since, "until": args.until, "source_id": args.source_id}
    records, how = ([], "") if args.probe else _resolve_hits_target(client, args.target)
    if not records:
        if args.probe or _HIT_ID.match(args.target):
            found = _find_hit(client, args.target, args.probe, args.source_id)
            if found is not None:
                record, hit = found
                if args.json:
                    _print_json({"probe": record, "hit": hit}, sys.stdout)
                else:
                    _print_hit(record, hit)
                return 0
        raise ConfigError(
            f"hits: no probe id, signature, location or test matches '{_esc(args.target)}'"
            + (
                f", and no hit with that id on the {_HIT_SCAN_PROBES} newest probes (name its "
                "probe with --probe ID)"
                if _HIT_ID.match(args.target)
                else ""
            )
        )
    if len(records) > 1 and args.after:
        raise ConfigError(
            f"hits: --after pages one probe; '{_esc(args.target)}' names {len(records)} probes "
            f"({', '.join(r['id'] for r in records)}): give one of their ids"
        )
    hits: list[dict[str, Any]] = []
    next_cursor = None
    for record in records:
        if args.all:
            hits.extend(client.iter_hits(record["id"], limit=1000, **filters))
        else:
            page = client.hits_page(record["id"], limit=args.limit, after=args.after, **filters)
            hits.extend(page["hits"])
            next_cursor = page.get("next") if len(records) == 1 else None
    hits.sort(key=lambda h: (h.get("ts") or 0, str(h.get("hit_id"))))
    if not args.all and len(records) > 1:
        hits = hits[: args.limit]
    if args.json:
        _print_json({"hits": hits, "next": next_cursor}, sys.stdout)
        return 0
    if how != "probe id":
        ids = ", ".join(r["id"] for r in records)
        print(f"{how} {_esc(args.target)}: probe(s) {ids}")
    _table(_hit_rows(hits), ["TIME", "SOURCE", "HIT", "STATE"], sys.stdout)
    if next_cursor:
        print(f"more: --after {next_cursor}")
    return 0


def cmd_evidence_export(args: argparse.Namespace) -> int:
    client = _client(args)
    lines = client.evidence_lines(
        probe_id=args.probe, signature=args.signature, since=args.since, until=args.until
    )
    count = 0
    if args.output in (None, "-"):
        for line in lines:
            sys.stdout.write(line)
            count += 1
        return 0
    temporary = args.output + ".part"
    with open(temporary, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line)
            count += 1
    os.replace(temporary, args.output)  # never leave half a file under the final name
    print(f"wrote {count} lines to {args.output}", file=sys.stderr)
    return 0


def cmd_token_add(args: argparse.Namespace) -> int:
    created = _client(args).add_token(args.name, args.scope, args.service or None)
    if args.json:
        _print_json(created, sys.stdout)
    else:
        limited = created.get("services")
        only = f", services {_esc(', '.join(limited))} only" if limited else ""
        print(
            f"created {_esc(created['scope'])} token {_esc(created['id'])} "
            f"({_esc(created['name'])}{only}); shown once:"
        )
        print(created["token"])
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    tokens = _client(args).tokens()
    if args.json:
        _print_json({"tokens": tokens}, sys.stdout)
    else:
        now = time.time()
        rows = [[t["id"], t["scope"], t["name"], _age(t["created_at"], now)] for t in tokens]
        _table(rows, ["ID", "SCOPE", "NAME", "CREATED"], sys.stdout)
    return 0


def cmd_token_rm(args: argparse.Namespace) -> int:
    removed = _client(args).remove_token(args.token_id)
    if args.json:
        _print_json({"token": removed}, sys.stdout)
    else:
        print(
            f"removed token {_esc(removed['id'])} ({_esc(removed['name'])}, "
            f"scope {_esc(removed['scope'])})"
        )
    return 0


def _print_redaction(rules: dict[str, Any]) -> None:
    for key, title in (("names", "names"), ("patterns", "patterns"), ("allow", "allow")):
        values = rules.get(key) or []
        print(f"{title}: " + (", ".join(repr(v) for v in values) if values else "(none)"))
    if rules.get("updated_at") is None:
        print("never set on this hub: sensors use their own SENSOR_REDACT_* settings")
    else:
        print(
            f"set {_age(rules['updated_at'], time.time())} by "
            f"{_esc(rules.get('updated_by') or '?')}; "
            "added to each sensor's built-in defaults"
        )


def cmd_redaction_show(args: argparse.Namespace) -> int:
    rules = _client(args).redaction()
    if args.json:
        _print_json({"redaction": rules}, sys.stdout)
    else:
        _print_redaction(rules)
    return 0


def cmd_redaction_set(args: argparse.Namespace) -> int:
    if not (args.name or args.pattern or args.allow or args.clear):
        raise ConfigError(
            "redaction set: expected --name, --pattern or --allow (or --clear to remove every "
            "rule); the rules given replace all of the hub's rules"
        )
    if args.clear and (args.name or args.pattern or args.allow):
        raise ConfigError("redaction set: --clear takes no --name, --pattern or --allow")
    rules = _client(args).set_redaction(names=args.name, patterns=args.pattern, allow=args.allow)
    if args.json:
        _print_json({"redaction": rules}, sys.stdout)
    else:
        _print_redaction(rules)
    return 0


# -- parser --------------------------------------------------------------------------------


def _client_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("hub connection")
    group.add_argument(
        "--hub",
        metavar="URL",
        help="hub URL (default: PYTEST_RUNTIME_HUB or http://127.0.0.1:8765)",
    )
    group.add_argument(
        "--token", help="bearer token (default: SENSOR_CLIENT_TOKEN, then SENSOR_TOKEN, deprecated)"
    )
    group.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per request (default 30)"
    )
    group.add_argument(
        "--cafile",
        help="CA bundle (PEM) to verify an https hub with (default: SENSOR_CA_FILE, else the "
        "certifi bundle of requests)",
    )
    group.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="pytest-runtime sensor: run the hub, manage probes, read hits and evidence, "
        "or run a program with the sensor attached.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _client_options()

    hub = commands.add_parser("hub", help="run the hub server", description="Run the hub server.")
    hub.add_argument("--host", help="address to bind (default 127.0.0.1: loopback only)")
    hub.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    hub.add_argument(
        "--db",
        help="SQLite file, or postgresql://user@host/database to share with other replicas "
        "(default sensor-hub.db, or SENSOR_HUB_DB / SENSOR_HUB_DB_FILE)",
    )
    hub.add_argument(
        "--admin-token",
        help="create this admin token at start (SENSOR_HUB_ADMIN_TOKEN, or a file: "
        "SENSOR_HUB_ADMIN_TOKEN_FILE)",
    )
    hub.add_argument(
        "--sensor-token",
        help="create this sensor token at start (SENSOR_HUB_SENSOR_TOKEN, or a file: "
        "SENSOR_HUB_SENSOR_TOKEN_FILE)",
    )
    hub.add_argument(
        "--client-token",
        help="create this client token at start (SENSOR_HUB_CLIENT_TOKEN, or a file: "
        "SENSOR_HUB_CLIENT_TOKEN_FILE)",
    )
    hub.add_argument("--ssl-certfile", help="TLS certificate (PEM); serve https")
    hub.add_argument("--ssl-keyfile", help="TLS private key (PEM)")
    hub.add_argument("--max-body", type=int, help="largest request body in bytes (default 8 MiB)")
    hub.add_argument("--retention", type=float, help="seconds to keep hits (default 7 days)")
    hub.add_argument("--max-hits-per-probe", type=int, help="hits kept per probe (default 100000)")
    hub.add_argument(
        "--default-ttl", type=float, help="probe lifetime when none is given (default 3600 s)"
    )
    hub.add_argument(
        "--poll-wait", type=float, help="long-poll wait suggested to sensors (default 25 s)"
    )
    hub.add_argument("--heartbeat-interval", type=float, help="suggested to sensors (default 10 s)")
    hub.add_argument(
        "--stale-after", type=float, help="a silent source is stale after (default 30 s)"
    )
    hub.add_argument(
        "--gone-after", type=float, help="a silent source is gone after (default 300 s)"
    )
    hub.add_argument(
        "--sqlite-synchronous",
        choices=["OFF", "NORMAL", "FULL", "EXTRA"],
        help="SQLite durability (default FULL)",
    )
    hub.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default warning)",
    )
    hub.add_argument(
        "--otel-endpoint",
        help="export stored hits, counters and timers over OTLP/HTTP to this base URL, e.g. "
        "http://collector:4318 (the otel extra; SENSOR_HUB_OTEL_ENDPOINT)",
    )
    hub.add_argument("--access-log", action="store_true", help="log every request")
    hub.set_defaults(func=cmd_hub)

    sources = commands.add_parser("sources", parents=[common], help="list sources")
    sources.add_argument("--service", help="only this service")
    sources.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only sources with this label (repeatable)",
    )
    sources.add_argument(
        "--state", choices=["live", "stale", "gone"], help="only sources in this state"
    )
    sources.set_defaults(func=cmd_sources)

    probe = commands.add_parser("probe", help="place, list, show and remove probes")
    probe_commands = probe.add_subparsers(dest="probe_command", metavar="ACTION", required=True)
    add = probe_commands.add_parser("add", parents=[common], help="place a probe")
    add.add_argument("location", nargs="?", help="e.g. shop.pricing:apply_discount@return")
    add.add_argument(
        "--kind",
        default="snapshot",
        choices=["snapshot", "log", "counter", "timer", "expect"],
        help="(default snapshot)",
    )
    add.add_argument(
        "--capture",
        action="append",
        default=[],
        metavar="EXPR",
        help="a name or expression to capture (repeatable)",
    )
    add.add_argument("--condition", help="fire only when this expression is true")
    add.add_argument("--expect", help="an expression that must hold on every hit")
    add.add_argument("--template", help="message template of a log probe")
    add.add_argument("--rate", type=float, help="hits per second per source")
    add.add_argument("--max-hits", type=int, help="complete the probe after this many hits")
    add.add_argument("--id", help="probe id (default: random)")
    add.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (repeatable)"
    )
    add.add_argument(
        "--spec", metavar="FILE", help="a probe as JSON ('-' for stdin) instead of the options"
    )
    add.add_argument("--service", help="selector: only sources of this service")
    add.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="selector: sources with this label (repeatable)",
    )
    add.add_argument("--source-id", help="selector: one source")
    add.add_argument("--ttl", type=float, help="seconds until the probe expires (hub default 3600)")
    add.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="S",
        help="wait up to S seconds for the matching sources to report the probe (default 10; "
        "0: do not wait); exit 1 if every one refuses it",
    )
    add.set_defaults(func=cmd_probe_add)
    plist = probe_commands.add_parser("list", parents=[common], help="list probes")
    plist.add_argument("--signature", help="only probes of this signature")
    plist.add_argument(
        "--state",
        choices=["active", "expired", "completed", "removed"],
        help="only probes in this state",
    )
    plist.set_defaults(func=cmd_probe_list)
    show = probe_commands.add_parser("show", parents=[common], help="show one probe record (JSON)")
    show.add_argument("probe_id")
    show.set_defaults(func=cmd_probe_show)
    rm = probe_commands.add_parser("rm", parents=[common], help="remove a probe from every source")
    rm.add_argument("probe_id")
    rm.set_defaults(func=cmd_probe_rm)

    hits = commands.add_parser(
        "hits",
        parents=[common],
        help="read the hits of a probe",
        description="Read hits. TARGET is a probe id, a probe signature, a location "
        "(shop.pricing:apply_discount), a test node id (the tests pytest --runtime-probe placed "
        "the probe for), or a hit id (shown in full; asked of the newest probes, or of the "
        "probe --probe names).",
    )
    hits.add_argument(
        "target", metavar="TARGET", help="probe id, signature, location, test or hit id"
    )
    hits.add_argument(
        "--since",
        type=_when,
        metavar="WHEN",
        help="oldest hit: 30m, 2h, 1d, an ISO time or epoch seconds",
    )
    hits.add_argument("--until", type=_when, metavar="WHEN", help="newest hit (same forms)")
    hits.add_argument(
        "--source-id", help="only hits of this source (a hit id: the source that sent it)"
    )
    hits.add_argument(
        "--probe", metavar="ID", help="TARGET is a hit id of this probe: read that one hit"
    )
    hits.add_argument("--limit", type=int, default=100, help="hits per page (default 100)")
    hits.add_argument("--after", help="cursor from the previous page")
    hits.add_argument("--all", action="store_true", help="follow every page")
    hits.set_defaults(func=cmd_hits)

    evidence = commands.add_parser("evidence", help="export evidence (JSON Lines)")
    evidence_commands = evidence.add_subparsers(
        dest="evidence_command", metavar="ACTION", required=True
    )
    export = evidence_commands.add_parser(
        "export", parents=[common], help="write evidence as JSON Lines"
    )
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--probe", metavar="ID", help="the hits of one probe")
    which.add_argument(
        "--signature", metavar="SIG", help="the hits of every probe of this signature"
    )
    export.add_argument(
        "--since",
        type=_when,
        metavar="WHEN",
        help="oldest hit: 30m, 2h, 1d, an ISO time or epoch seconds",
    )
    export.add_argument("--until", type=_when, metavar="WHEN", help="newest hit (same forms)")
    export.add_argument("-o", "--output", metavar="FILE", help="file to write (default stdout)")
    export.set_defaults(func=cmd_evidence_export)

    token = commands.add_parser("token", help="manage tokens (admin)")
    token_commands = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    tadd = token_commands.add_parser("add", parents=[common], help="create a token (shown once)")
    tadd.add_argument("name")
    tadd.add_argument("--scope", required=True, choices=["sensor", "client", "admin"])
    tadd.add_argument(
        "--service",
        action="append",
        metavar="NAME",
        help="sensor tokens: a service it may register as; repeat for several (default: any)",
    )
    tadd.set_defaults(func=cmd_token_add)
    tlist = token_commands.add_parser("list", parents=[common], help="list tokens")
    tlist.set_defaults(func=cmd_token_list)
    trm = token_commands.add_parser("rm", parents=[common], help="remove a token")
    trm.add_argument("token_id")
    trm.set_defaults(func=cmd_token_rm)

    redaction = commands.add_parser(
        "redaction", help="show or replace the redaction rules every sensor applies"
    )
    redaction_commands = redaction.add_subparsers(
        dest="redaction_command", metavar="ACTION", required=True
    )
    rshow = redaction_commands.add_parser(
        "show", parents=[common], help="show the hub's redaction rules (client token)"
    )
    rshow.set_defaults(func=cmd_redaction_show)
    rset = redaction_commands.add_parser(
        "set",
        parents=[common],
        help="replace the hub's redaction rules (admin token)",
        description="Replace all of the hub's redaction rules; live sensors apply them within "
        "a second, without a restart. Names and patterns are added to each sensor's built-in "
        "defaults; --allow un-redacts a name.",
    )
    rset.add_argument(
        "--name", action="append", default=[], metavar="N", help="redact this name (repeatable)"
    )
    rset.add_argument(
        "--pattern",
        action="append",
        default=[],
        metavar="REGEX",
        help="redact string values this regular expression finds (repeatable)",
    )
    rset.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="N",
        help="never redact this name, even a default one (repeatable)",
    )
    rset.add_argument("--clear", action="store_true", help="remove every rule")
    rset.set_defaults(func=cmd_redaction_set)

    commands.add_parser(
        "run",
        help="run a command with the sensor attached: run [options] -- COMMAND ...",
        add_help=False,
    )
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        # the agent owns the options of `run`; import it only when it is used
        from sensor.agent import run_main

        return run_main(argv[1:])
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # here, so that a closed pipe is seen below and not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command-line tools do,
        # with the status a process killed by SIGPIPE has. Python would try to flush again at
        # exit and print a second error: send what is left to /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ProbeSpecError as exc:
        print(f"error: invalid probe: {_esc(exc)}", file=sys.stderr)
    except (HubError, SensorError, OSError) as exc:
        print(f"error: {_esc(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
