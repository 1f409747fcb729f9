"""The MCP server (SDK 2.x ``MCPServer``): the investigation tools, their descriptions, the session.

Each tool is a thin function: it finds the session's
:class:`~pytest_runtime.mcp.investigation.Investigation` in the lifespan context, calls one
method, and renders the answer as JSON within the size budget. An
:class:`~pytest_runtime.mcp.errors.InvestigationError` becomes a tool error (``isError``) whose
text is the error's message; nothing else of a failure reaches the agent.

One session is one lifespan: over stdio (what editors and agents start) the lifespan is the
client's connection, so the probes a session placed are removed when the client disconnects.
Over streamable HTTP the lifespan is the server process: probes are removed when it stops (and
each one ends by its TTL regardless).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any, cast

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from pytest_runtime.mcp.bounds import render
from pytest_runtime.mcp.errors import InvestigationError
from pytest_runtime.mcp.hubport import HubPort
from pytest_runtime.mcp.investigation import Investigation
from pytest_runtime.mcp.settings import ServerSettings

__all__ = ["INSTRUCTIONS", "TOOL_NAMES", "build_server", "close_open_sessions"]

log = logging.getLogger("pytest_runtime.mcp")

INSTRUCTIONS = resources.files("pytest_runtime.mcp").joinpath("instructions.md").read_text("utf-8")

#: Sessions not closed yet: ``python -m pytest_runtime.mcp`` closes them on its way out, even
#: when a signal cut the lifespan short.
_OPEN: weakref.WeakSet[Investigation] = weakref.WeakSet()


def close_open_sessions() -> list[str]:
    """Close every session still open (remove its probes, stop its runs); what was done."""
    notes: list[str] = []
    for investigation in list(_OPEN):
        notes.extend(investigation.close())
        _OPEN.discard(investigation)
    return notes


def _answer(ctx: Context, method: str, **arguments: Any) -> str:
    # A bare ``Context`` annotation: the SDK finds the context parameter by its class, and the
    # lifespan context is the session's Investigation (see build_server).
    investigation = cast(Investigation, ctx.request_context.lifespan_context)
    try:
        payload = getattr(investigation, method)(**arguments)
    except InvestigationError as exc:
        raise ToolError(str(exc)) from exc
    return render(payload, investigation.settings.budget_chars)


# --------------------------------------------------------------------------- argument types

ProbeId = Annotated[
    str, Field(description="the probe id returned by place_probe or check_hypothesis")
]
Location = Annotated[
    str,
    Field(
        description="where in the code: 'package.module:function' (at return), "
        "'package.module:Class.method@entry', '...@return', '...@exception', "
        "'package.module:function@42' (a line inside it) or 'path/to/file.py:42'"
    ),
]
Hypothesis = Annotated[
    str,
    Field(description="the hypothesis this probe tests, in one sentence (kept with the probe)"),
]
Service = Annotated[
    str | None,
    Field(description="service name of the sources to probe (see list_sources); default: all"),
]
Labels = Annotated[
    dict[str, str] | None,
    Field(description='source labels that must all match, such as {"env": "prod"}'),
]
SourceId = Annotated[str | None, Field(description="one source only (its source_id)")]
Capture = Annotated[
    list[str] | None,
    Field(
        description="names or expressions to capture, such as ['price', 'order[\"items\"]', "
        "'result']; empty: the frame's locals (bounded)"
    ),
]
Condition = Annotated[
    str | None,
    Field(description="only fire when this expression is true, such as \"currency == 'JPY'\""),
]
Ttl = Annotated[
    float | None,
    Field(
        description="seconds the probe lives (default 600, at most 3600); it is also removed "
        "when this session ends"
    ),
]
MaxHits = Annotated[
    int | None,
    Field(description="hit cap: the probe ends after this many captured hits (default 100)"),
]
Wait = Annotated[
    float,
    Field(
        description="wait up to this many seconds (at most 20) for news before answering; "
        "0 answers at once"
    ),
]


# --------------------------------------------------------------------------- the tools


def list_sources(
    ctx: Context,
    service: Service = None,
    labels: Labels = None,
    state: Annotated[str, Field(description="'live' (default), 'stale', 'gone' or 'all'")] = "live",
) -> str:
    """Preflight: list the live services that run the sensor (service, version, host, pid, Python,
    labels, injection backend, health). Call this first; probes only reach these sources."""
    return _answer(ctx, "list_sources", service=service, labels=labels, state=state)


def place_probe(
    ctx: Context,
    location: Location,
    hypothesis: Hypothesis,
    kind: Annotated[
        str,
        Field(
            description="'snapshot' (capture values), 'log' (format a template), 'counter' "
            "(count firings), 'timer' (measure duration), 'expect' (evaluate 'expect', capture "
            "only when it is false)"
        ),
    ] = "snapshot",
    capture: Capture = None,
    condition: Condition = None,
    expect: Annotated[
        str | None,
        Field(description="an expression that should be true at each firing (snapshot/expect)"),
    ] = None,
    template: Annotated[
        str | None, Field(description="log kind only: a message such as 'total={total}'")
    ] = None,
    service: Service = None,
    labels: Labels = None,
    source_id: SourceId = None,
    ttl_seconds: Ttl = None,
    max_hits: MaxHits = None,
    rate: Annotated[
        float | None,
        Field(description="captured hits per second per source (default: 1 for snapshot)"),
    ] = None,
) -> str:
    """Place a probe on live code without stopping it. Answers at once with the probe id, its
    state on every source and why it is pending or refused; then poll get_probe_status. The probe
    has a TTL and a hit cap and is removed when this session ends."""
    return _answer(
        ctx,
        "place_probe",
        location=location,
        hypothesis=hypothesis,
        kind=kind,
        capture=capture,
        condition=condition,
        expect=expect,
        template=template,
        service=service,
        labels=labels,
        source_id=source_id,
        ttl_seconds=ttl_seconds,
        max_hits=max_hits,
        rate=rate,
    )


def check_hypothesis(
    ctx: Context,
    location: Location,
    expression: Annotated[
        str,
        Field(
            description="a Python expression evaluated at the location on live traffic, such "
            "as 'result < 0' or \"coupon == 'WELCOME5' and price < 20\" (read-only: no calls "
            "with side effects, no imports)"
        ),
    ],
    hypothesis: Hypothesis,
    condition: Condition = None,
    capture: Capture = None,
    service: Service = None,
    labels: Labels = None,
    source_id: SourceId = None,
    ttl_seconds: Ttl = None,
    max_hits: MaxHits = None,
) -> str:
    """Test a hypothesis by running an expression on live traffic at a location (instead of
    reasoning over captured values). Answers at once with a probe id; poll get_hypothesis_result
    for how often it was true, false or failed, with a confidence bound and example states."""
    return _answer(
        ctx,
        "check_hypothesis",
        location=location,
        expression=expression,
        hypothesis=hypothesis,
        condition=condition,
        capture=capture,
        service=service,
        labels=labels,
        source_id=source_id,
        ttl_seconds=ttl_seconds,
        max_hits=max_hits,
    )


def get_hypothesis_result(ctx: Context, probe_id: ProbeId, wait_seconds: Wait = 0) -> str:
    """Counts of a check_hypothesis probe from the sensors' own counters: evaluated, true, false,
    errors; the rate of true with its 95% bound; up to 3 redacted example states per outcome."""
    return _answer(ctx, "hypothesis_result", probe_id=probe_id, wait_seconds=wait_seconds)


def get_probe_status(ctx: Context, probe_id: ProbeId, wait_seconds: Wait = 0) -> str:
    """A probe's state (active, completed, expired, removed), hit count, state per source
    (installed, pending, error, disabled) with the reason, and what to do next."""
    return _answer(ctx, "probe_status", probe_id=probe_id, wait_seconds=wait_seconds)


def get_evidence_summary(ctx: Context, probe_id: ProbeId) -> str:
    """Summary of a probe's hits before any detail: counts per source, expectation outcomes,
    exceptions, state shapes (with an example hit id each) and value classes per captured path."""
    return _answer(ctx, "evidence_summary", probe_id=probe_id)


def list_hits(
    ctx: Context,
    probe_id: ProbeId,
    cursor: Annotated[
        str | None, Field(description="next_cursor of the previous page; omit for the first")
    ] = None,
    limit: Annotated[int, Field(description="hits per page, 1 to 25")] = 10,
) -> str:
    """One page of a probe's hits, oldest first, one compact row each (id, time, source, line,
    outcome, captured values in short); pass next_cursor for the next page."""
    return _answer(ctx, "list_hits", probe_id=probe_id, cursor=cursor, limit=limit)


def get_hit(
    ctx: Context,
    probe_id: ProbeId,
    hit_id: Annotated[str, Field(description="a hit id from list_hits or a summary")],
) -> str:
    """One whole hit: every captured value with its type (typed JSON, redacted), the line, the
    expectation's outcome, the exception; shortened with markers if it is very large."""
    return _answer(ctx, "get_hit", probe_id=probe_id, hit_id=hit_id)


def write_regression_test(
    ctx: Context,
    probe_id: ProbeId,
    hit_id: Annotated[str, Field(description="a hit id from list_hits or a summary")],
) -> str:
    """Write a pytest test reproducing one production hit: the call's arguments as literals,
    the probe's expectation as the assertion, the hit id in a comment. Needs a hit with
    arguments (a replay=True probe, or @entry). Answers with the source and a file name."""
    return _answer(ctx, "write_regression_test", probe_id=probe_id, hit_id=hit_id)


def compare_test(
    ctx: Context,
    nodeid: Annotated[
        str | None,
        Field(description="a pytest node id, such as 'tests/test_pricing.py::test_discount'"),
    ] = None,
    marker: Annotated[
        dict[str, Any] | None,
        Field(
            description="runtime_probe marker arguments to add to the test (or, without a "
            'nodeid, to hold production evidence alone), such as {"location": '
            '"shop.pricing:apply_discount", "capture": ["price"], "expect": "result >= 0"}'
        ),
    ] = None,
    service: Service = None,
    wait_seconds: Annotated[
        float, Field(description="longest wait for production hits in the run (default 60)")
    ] = 60,
    min_hits: Annotated[
        int | None, Field(description="production hits wanted (fewer: inconclusive)")
    ] = None,
) -> str:
    """Compare a test with production evidence: runs `pytest --runtime-probe` on it in the
    background and answers with a job id at once; poll get_comparison_result for the plugin's
    verdict (ok, diverged, violated, inconclusive) and divergences, as pytest prints them."""
    return _answer(
        ctx,
        "compare_test",
        nodeid=nodeid,
        marker=marker,
        service=service,
        wait_seconds=wait_seconds,
        min_hits=min_hits,
    )


def get_comparison_result(
    ctx: Context,
    job_id: Annotated[str, Field(description="the job id returned by compare_test")],
    wait_seconds: Wait = 0,
) -> str:
    """The state of a compare_test run; once finished: the verdicts, divergences with production
    states and hit ids, and the runtime probes section pytest printed."""
    return _answer(ctx, "comparison_result", job_id=job_id, wait_seconds=wait_seconds)


def remove_probe(
    ctx: Context,
    probe_id: Annotated[
        str, Field(description="a probe id of this session, or 'all' for every one")
    ],
) -> str:
    """Remove a probe this session placed (or 'all' of them) once it has answered its
    hypothesis; its evidence stays readable."""
    return _answer(ctx, "remove_probe", probe_id=probe_id)


def list_session_probes(ctx: Context) -> str:
    """The probes and comparison runs this session started, with their hypotheses, states, hit
    counts and time left: the cleanup checklist."""
    return _answer(ctx, "session_probes")


_READ = ToolAnnotations(read_only_hint=True, open_world_hint=True)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
_TOOLS: tuple[tuple[Callable[..., str], str, ToolAnnotations], ...] = (
    (list_sources, "List live sources", _READ),
    (check_hypothesis, "Check a hypothesis on live traffic", _WRITE),
    (get_hypothesis_result, "Read a hypothesis check", _READ),
    (place_probe, "Place a probe", _WRITE),
    (get_probe_status, "Read a probe's status", _READ),
    (get_evidence_summary, "Summarize a probe's evidence", _READ),
    (list_hits, "Page through a probe's hits", _READ),
    (get_hit, "Read one hit", _READ),
    (write_regression_test, "Write a regression test from a hit", _READ),
    (compare_test, "Compare a test with production", _WRITE),
    (get_comparison_result, "Read a comparison", _READ),
    (remove_probe, "Remove a probe", ToolAnnotations(destructive_hint=True, idempotent_hint=True)),
    (list_session_probes, "List this session's probes", _READ),
)
TOOL_NAMES = tuple(sorted(function.__name__ for function, _, _ in _TOOLS))


def build_server(
    settings: ServerSettings, *, hub_factory: Callable[[], HubPort] | None = None
) -> MCPServer[Investigation]:
    """The MCP server; each session (lifespan) gets its own :class:`Investigation`."""
    from sensor._version import __version__

    @asynccontextmanager
    async def lifespan(_: MCPServer[Investigation]) -> AsyncIterator[Investigation]:
        investigation = Investigation(settings, hub_factory)
        _OPEN.add(investigation)
        try:
            yield investigation
        finally:
            # Shielded: a cancelled session (client gone, Ctrl-C) must still remove its probes.
            with anyio.CancelScope(shield=True):
                notes = await anyio.to_thread.run_sync(investigation.close)
            _OPEN.discard(investigation)
            for note in notes:
                log.info("session %s ended: %s", investigation.session, note)

    server: MCPServer[Investigation] = MCPServer(
        "pytest-runtime",
        title="pytest-runtime: live evidence and assertions",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
    )
    for function, title, hints in _TOOLS:
        server.add_tool(function, title=title, annotations=hints, structured_output=False)
    return server
