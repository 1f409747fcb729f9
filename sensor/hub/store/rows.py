"""Reading stored rows back into records, the same way for every store.

A row that cannot be served (written by hand, by another program, or by an older hub) raises
:class:`~sensor.hub.store.base.CorruptRecordError`; listings leave it out and report it as
quarantined instead of failing whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sensor.hub.body import check_values
from sensor.hub.store.base import (
    CorruptRecordError,
    ProbeRecord,
    SourceRecord,
    TokenRecord,
    VersionSummary,
    selector_matches,
)

__all__ = [
    "PROBE_COLUMNS",
    "PROBE_SELECT",
    "SOURCE_COLUMNS",
    "STATUS_COUNTERS",
    "TOKEN_COLUMNS",
    "BatchLedger",
    "attach_statuses",
    "bad_hit_body",
    "check_record",
    "encode_hit",
    "picks",
    "probe_from_row",
    "probe_values",
    "readable",
    "source_from_row",
    "source_values",
    "status_from_body",
    "token_from_row",
    "token_values",
    "usable_tokens",
    "version_summaries",
]

_log = logging.getLogger("sensor.hub")
R = TypeVar("R")
_LEDGER_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True)
_HIT_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _not_json(value: Any) -> Any:
    raise TypeError(f"a hit holds a {type(value).__name__}: not JSON")


# One C encoder made once: JSONEncoder.encode builds a new one per call, about a quarter of
# the cost of encoding a small hit, and the hub encodes every hit it stores. No cycle check:
# a hit is parsed JSON plus the hub's own source brief, and JSON text cannot hold a cycle.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_HIT_ENCODER = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
)


def encode_hit(hit: Mapping[str, Any]) -> str:
    """A hit's stored body: compact JSON, exactly what ``JSONEncoder(separators=(",", ":"))``
    writes."""
    if _C_HIT_ENCODER is None:
        return _HIT_ENCODER.encode(hit)
    return "".join(_C_HIT_ENCODER(hit, 0))


#: The counters of a sensor's ProbeStatus summed per version for a standing probe.
STATUS_COUNTERS = (
    "hits",
    "drops",
    "skipped_rate",
    "skipped_condition",
    "skipped_budget",
    "errors",
    "evaluations",
    "violations",
    "exceptions",
    "expect_errors",
    "skipped_closed",
    "novel_classes",
    "novel_admitted",
    "novel_refused",
    "novel_full",
)


#: The columns the stores read records from, in the order the ``*_from_row`` readers take.
TOKEN_COLUMNS = "id, name, scope, token_hash, created_at, services"
SOURCE_COLUMNS = (
    "id, service, version, host, pid, python, labels, runtime_id, sensor_version, backend, "
    "token_id, first_seen, last_seen, dropped, deregistered"
)
PROBE_COLUMNS = (
    "id, signature, probe, selector, state, created_at, expires_at, hit_count, dropped, ended_at"
)
PROBE_SELECT = PROBE_COLUMNS + ", ended_reason, standing"


def token_values(token: TokenRecord) -> tuple[Any, ...]:
    """The values of :data:`TOKEN_COLUMNS` for ``token``."""
    services = None if token.services is None else json.dumps(list(token.services))
    return (token.id, token.name, token.scope, token.token_hash, token.created_at, services)


def source_values(source: SourceRecord) -> tuple[Any, ...]:
    """The values of :data:`SOURCE_COLUMNS` for ``source`` but ``deregistered`` (the store's
    own false)."""
    return (
        source.id, source.service, source.version, source.host, source.pid, source.python,
        json.dumps(source.labels, sort_keys=True), source.runtime_id, source.sensor_version,
        source.backend, source.token_id, source.first_seen, source.last_seen, source.dropped,
    )  # fmt: skip


def probe_values(record: ProbeRecord) -> tuple[Any, ...]:
    """The values of :data:`PROBE_COLUMNS` then ``max_hits, standing`` for ``record``."""
    return (
        record.id, record.signature, json.dumps(record.probe, sort_keys=True),
        json.dumps(record.selector, sort_keys=True), record.state, record.created_at,
        record.expires_at, record.hit_count, record.dropped, record.ended_at, record.max_hits,
        bool(record.standing),
    )  # fmt: skip


def usable_tokens(rows: Sequence[Sequence[Any]]) -> list[TokenRecord]:
    """The tokens of ``rows`` that can be read (one that cannot cannot be used either)."""
    records = []
    for row in rows:
        try:
            records.append(token_from_row(row))
        except CorruptRecordError:
            continue
    return records


def attach_statuses(records: Sequence[ProbeRecord], rows: Sequence[Sequence[Any]]) -> None:
    """Give ``records`` their statuses from (probe_id, source_id, body) rows."""
    by_id = {record.id: record for record in records}
    for probe_id, source_id, body in rows:
        status = status_from_body(source_id, body)
        if status is not None:  # one that cannot be served is left out: the next
            by_id[probe_id].statuses[source_id] = status  # heartbeat replaces it


def token_from_row(row: Sequence[Any]) -> TokenRecord:
    """id, name, scope, token_hash, created_at, services (JSON or NULL)."""
    token_id, name, scope, token_hash, created_at, services = row
    if services is not None:
        try:
            services = json.loads(services)
        except ValueError:
            services = None
        if not isinstance(services, list) or not all(isinstance(x, str) for x in services):
            # a token whose limits cannot be read must not become a token without limits
            raise CorruptRecordError(token_id, "its services list is not a list of names")
    return TokenRecord(token_id, name, scope, token_hash, created_at, services)


def source_from_row(row: Sequence[Any]) -> SourceRecord:
    """The columns of :class:`SourceRecord` in order, labels as JSON text."""
    values = list(row)
    try:
        labels = json.loads(values[6])
    except (TypeError, ValueError) as exc:
        raise CorruptRecordError(str(values[0]), f"its labels are not JSON ({exc})") from None
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise CorruptRecordError(str(values[0]), "its labels are not an object of strings")
    values[6] = labels
    values[14] = bool(values[14])
    check_record(str(values[0]), values)
    if not isinstance(values[1], str) or not values[1]:
        raise CorruptRecordError(str(values[0]), f"its service is {values[1]!r}")
    return SourceRecord(*values)


def probe_from_row(row: Sequence[Any]) -> ProbeRecord:
    """id, signature, probe, selector (JSON), state, created_at, expires_at, hit_count, dropped,
    ended_at, ended_reason, standing (0/1 or a boolean)."""
    values = list(row)
    record_id = str(values[0])
    for index, name in ((2, "probe"), (3, "selector")):
        try:
            values[index] = json.loads(values[index])
        except (TypeError, ValueError) as exc:
            raise CorruptRecordError(record_id, f"its {name} is not JSON ({exc})") from None
        if not isinstance(values[index], dict):
            raise CorruptRecordError(record_id, f"its {name} is not a JSON object")
    check_record(record_id, values)
    standing = bool(values.pop())
    reason = values.pop()
    record = ProbeRecord(*values)
    record.ended_reason = reason
    record.standing = standing
    return record


def status_from_body(source_id: str, body: Any) -> dict[str, Any] | None:
    """A stored status, or None when it cannot be served (the next heartbeat replaces it)."""
    try:
        status = json.loads(body)
        check_values([source_id, status])
    except (TypeError, ValueError):  # BodyError is a ValueError too
        return None
    return status if isinstance(status, dict) else None


def check_record(record_id: str, values: Sequence[Any]) -> None:
    """Raise :class:`CorruptRecordError` if a value read back could not be served as JSON."""
    try:
        check_values(list(values))
    except ValueError as exc:
        raise CorruptRecordError(record_id, str(exc)) from None


def readable(
    rows: Sequence[Sequence[Any]],
    read: Callable[[Sequence[Any]], R],
    quarantined: list[tuple[str, str]] | None,
) -> list[R]:
    """The records of ``rows`` that ``read`` accepts; the others go to ``quarantined``."""
    records = []
    for row in rows:
        try:
            records.append(read(row))
        except CorruptRecordError as exc:
            _log.warning("hub database: %s (left out of answers)", exc)
            if quarantined is not None:
                quarantined.append((exc.record_id, exc.reason))
    return records


def picks(selector_text: str, source: SourceRecord) -> bool:
    """True when a stored selector picks ``source`` (an unreadable selector picks nothing)."""
    try:
        selector = json.loads(selector_text)
    except (TypeError, ValueError):
        return False
    return isinstance(selector, dict) and selector_matches(selector, source)


def bad_hit_body(body: object) -> str | None:
    """Why a stored hit body cannot be spliced into an answer (None: it can)."""
    # the hub writes them ASCII-only JSON objects; anything else was not written by the hub
    if not isinstance(body, str) or not body.isascii():
        return "its body is not the ASCII JSON the hub writes"
    try:
        data = json.loads(body)
    except ValueError as exc:
        return f"its body is not JSON ({exc})"
    if not isinstance(data, dict):
        return "its body is not a JSON object"
    return None


def version_summaries(
    strata: Sequence[Sequence[Any]], statuses: Sequence[tuple[str, Any]]
) -> list[VersionSummary]:
    """A standing probe's summaries from its strata totals and its statuses.

    ``strata``: (version, seen, kept, strata, first_seen, last_seen) per version, newest first;
    ``statuses``: (the source's version or '', status body) per source of the probe.
    """
    counters: dict[str, dict[str, int]] = {}
    sources: dict[str, int] = {}
    for version, body in statuses:
        try:
            status = json.loads(body)
        except (TypeError, ValueError):
            continue  # an unreadable status is left out, as everywhere
        if not isinstance(status, dict):
            continue
        sources[version] = sources.get(version, 0) + 1
        total = counters.setdefault(version, {})
        for name in STATUS_COUNTERS:
            value = status.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                total[name] = total.get(name, 0) + value
    return [
        VersionSummary(
            version=version or None,
            seen=int(seen),
            kept=int(kept),
            strata=int(count),
            first_seen=float(first),
            last_seen=float(last),
            counters={n: counters.get(version, {}).get(n, 0) for n in STATUS_COUNTERS},
            sources=sources.get(version, 0),
        )
        for version, seen, kept, count, first, last in strata
    ]


class BatchLedger:
    """Whether a posted batch is the source's last committed batch again, and what it adds.

    A sensor sends one batch at a time and sends it again until it reads the hub's answer;
    when the hub committed the batch and the answer was lost, the same batch comes back. Its
    hits that are still stored are not stored twice (``hits_unique``), but a standing probe's
    sample may have dropped some of them since, which were counted all the same, and the
    batch's drop counts are deltas. So each source row keeps a short digest of its last
    batch's key and the drop counts that batch carried (``sources.last_batch``): a batch
    with the same key is a retry, whose hits count nothing again and whose drops count only
    what grew since. The key is the sensor's number for the batch when it sends one (the
    same number on every retry, a new one for the next batch: a batch of drop counts only is
    known as a retry too), else a digest of its hit ids (a batch without hits is then never
    taken for a retry). One row per source, a few hundred bytes: bounded.
    """

    __slots__ = ("dropped", "retry", "text")

    def __init__(
        self,
        previous: str | None,
        hits: Sequence[Mapping[str, Any]],
        dropped: Mapping[str, int],
        number: int | None = None,
    ) -> None:
        key: str | None
        if number is not None:
            key = f"#{number}"  # never a digest: 32 hex digits
        else:
            # in the batch's order: a sensor sends the very same list again; hit ids are
            # unique per sensor process, whatever the probe
            ids = "\n".join([hit.get("hit_id") or "" for hit in hits])
            key = (
                hashlib.sha256(ids.encode("utf-8", "surrogatepass")).hexdigest()[:32]
                if ids.strip("\n")
                else None
            )
        counts = {probe_id: int(count) for probe_id, count in dropped.items()}
        #: the drop counts to add: all of them, or on a retry only what grew since
        self.dropped: dict[str, int] = counts
        #: True when this batch is the source's last committed batch sent again
        self.retry = False
        if key is not None and previous:
            try:
                last = json.loads(previous)
            except ValueError:
                last = None  # written by something else: no retry is assumed
            if isinstance(last, dict) and last.get("hits") == key:
                self.retry = True
                before = last.get("dropped")
                before = before if isinstance(before, dict) else {}
                self.dropped = {
                    probe_id: count - _int(before.get(probe_id))
                    for probe_id, count in counts.items()
                    if count > _int(before.get(probe_id))
                }
        #: what ``sources.last_batch`` holds once this batch is committed
        self.text: str = _LEDGER_ENCODER.encode({"hits": key, "dropped": counts})


def _int(value: Any) -> int:
    return value if type(value) is int else 0
