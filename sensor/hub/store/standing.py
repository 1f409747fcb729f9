"""A standing probe's bounded sample, written once for both stores (SQLite and PostgreSQL).

Every hit a sensor sends is counted in its stratum (``strata.seen``); the reservoir of one
(probe, service version) keeps at most :data:`~sensor.hub.strata.RESERVOIR_CAP` of them. The
statements are written with ``?`` placeholders and run through the store's
:class:`~sensor.hub.store.common.Dialect`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from sensor.hub import strata as st
from sensor.hub.store.base import BatchOutcome, SourceRecord
from sensor.hub.store.common import Dialect, declined_because
from sensor.hub.store.rows import encode_hit

__all__ = ["forget_version", "sample", "store_standing"]

#: Which hit a full reservoir replaces: not a secret, only an even spread.
_RANDOM = random.Random()


def store_standing(
    db: Dialect,
    source: SourceRecord,
    probe_id: str,
    signature: str,
    state: str,
    batch: Sequence[dict[str, Any]],
    dropped: Mapping[str, int],
    now: float,
    outcome: BatchOutcome,
    *,
    retry: bool = False,
) -> int:
    """A standing probe's hits: counted per stratum, sampled into the bounded reservoir.

    A hit the sample does not keep is still accepted (the sensor must not resend it) and
    counted in ``strata.seen``; ``hit_count`` counts the hits accepted, as for any probe.
    Returns that number. ``retry``: the batch was committed before
    (:class:`~sensor.hub.store.rows.BatchLedger`), its hits counted then, kept or not.
    """
    # read once, before any of this batch is sampled: a hit stored before and evicted by an
    # earlier hit of this batch was counted when it came, and is not counted again
    stored_ids = db.stored_hit_ids(probe_id, source.id, batch) if batch else set()
    if state != "active":
        fresh = [hit for hit in batch if hit.get("hit_id") not in stored_ids]
        outcome.accepted += len(batch) - len(fresh)
        outcome.decline(probe_id, declined_because(state), len(fresh))
        return 0
    brief = source.brief()
    version = source.version or ""
    accepted = 0
    for hit in batch:
        hit_id = hit.get("hit_id") or None
        outcome.accepted += 1
        if hit_id is not None:
            if retry or hit_id in stored_ids:
                continue  # a retried batch: stored already, counted already
            # a second copy in this batch is the same hit, counted once whether or not the
            # sample kept the first (and a second row would break hits_unique)
            stored_ids.add(hit_id)
        accepted += 1
        hit["signature"] = signature
        hit["source"] = brief
        if sample(db, probe_id, version, source.id, hit, now):
            outcome.stored.append(hit)  # kept in the sample: exported like any stored hit
    extra_dropped = int(dropped.get(probe_id, 0))
    if accepted or extra_dropped:
        db.execute(
            "UPDATE probes SET hit_count = hit_count + ?, dropped = dropped + ? WHERE id = ?",
            (accepted, extra_dropped, probe_id),
        )
    return accepted


def sample(
    db: Dialect, probe_id: str, version: str, source_id: str, hit: dict[str, Any], now: float
) -> bool:
    """Count one hit in its stratum and decide whether the sample keeps it.

    While the reservoir of (probe, version) has room every hit is kept. Once it is full, a
    hit of a stratum smaller than the largest takes the place of a random hit of the
    largest (so every stratum seen has examples, and a rare one keeps all of its own);
    a hit of a largest stratum replaces one of its own with probability kept/seen
    (reservoir sampling within the stratum: its sample stays uniform over time). Between
    largest strata of one size, the first by name gives up the hit: the same on every store.
    """
    stratum = st.stratum_of(hit)
    key = (probe_id, version)
    row = db.execute(
        "SELECT seen, kept FROM strata WHERE probe_id = ? AND version = ? AND stratum = ?",
        (*key, stratum),
    ).fetchone()
    if row is None:
        # newest first; between versions last seen at the same moment, by name (every store)
        versions = [
            v
            for (v,) in db.execute(
                "SELECT version FROM strata WHERE probe_id = ? GROUP BY version "
                "ORDER BY MAX(last_seen) DESC, version",
                (probe_id,),
            )
        ]
        if version not in versions and len(versions) >= st.MAX_VERSIONS:
            for old in versions[st.MAX_VERSIONS - 1 :]:
                forget_version(db, probe_id, old)
        count = db.execute(
            "SELECT COUNT(*) FROM strata WHERE probe_id = ? AND version = ?", key
        ).fetchone()[0]
        if count >= st.MAX_STRATA:
            stratum = st.OVERFLOW_STRATUM
            row = db.execute(
                "SELECT seen, kept FROM strata WHERE probe_id = ? AND version = ? AND stratum = ?",
                (*key, stratum),
            ).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO strata (probe_id, version, stratum, seen, kept, first_seen, "
                "last_seen) VALUES (?, ?, ?, 0, 0, ?, ?)",
                (*key, stratum, now, now),
            )
            row = (0, 0)
    seen, kept = int(row[0]) + 1, int(row[1])
    db.execute(
        "UPDATE strata SET seen = ?, last_seen = ? WHERE probe_id = ? AND version = ? "
        "AND stratum = ?",
        (seen, now, *key, stratum),
    )
    total = db.execute(
        "SELECT COALESCE(SUM(kept), 0) FROM strata WHERE probe_id = ? AND version = ?", key
    ).fetchone()[0]
    victim: str | None = None  # the stratum that gives up one hit
    if total >= st.RESERVOIR_CAP:
        largest, most = db.execute(
            "SELECT stratum, kept FROM strata WHERE probe_id = ? AND version = ? "
            "ORDER BY kept DESC, stratum LIMIT 1",
            key,
        ).fetchone()
        if most > kept + 1:
            victim = largest
        elif kept > 0 and _RANDOM.randrange(seen) < kept:
            victim = stratum
        else:
            return False  # not sampled: counted in seen
    if victim is not None:
        kept_there = db.execute(
            "SELECT kept FROM strata WHERE probe_id = ? AND version = ? AND stratum = ?",
            (*key, victim),
        ).fetchone()[0]
        (seq,) = db.execute(
            "SELECT seq FROM reservoir WHERE probe_id = ? AND version = ? AND stratum = ? "
            "ORDER BY seq LIMIT 1 OFFSET ?",
            (*key, victim, _RANDOM.randrange(max(1, int(kept_there)))),
        ).fetchone()
        db.execute("DELETE FROM hits WHERE seq = ?", (seq,))
        db.execute("DELETE FROM reservoir WHERE seq = ?", (seq,))
        db.execute(
            "UPDATE strata SET kept = kept - 1 WHERE probe_id = ? AND version = ? AND stratum = ?",
            (*key, victim),
        )
    new_seq = db.insert_hit(
        (probe_id, hit["signature"], source_id, hit.get("hit_id") or None, hit["ts"], now,
         encode_hit(hit))
    )  # fmt: skip
    db.execute(
        "INSERT INTO reservoir (seq, probe_id, version, stratum) VALUES (?, ?, ?, ?)",
        (new_seq, *key, stratum),
    )
    db.execute(
        "UPDATE strata SET kept = kept + 1 WHERE probe_id = ? AND version = ? AND stratum = ?",
        (*key, stratum),
    )
    return True


def forget_version(db: Dialect, probe_id: str, version: str) -> None:
    """Drop the sample and counts of one service version of a standing probe."""
    key = (probe_id, version)
    db.execute(
        "DELETE FROM hits WHERE seq IN (SELECT seq FROM reservoir WHERE probe_id = ? "
        "AND version = ?)",
        key,
    )
    db.execute("DELETE FROM reservoir WHERE probe_id = ? AND version = ?", key)
    db.execute("DELETE FROM strata WHERE probe_id = ? AND version = ?", key)
