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

#: Rows per multi-row INSERT (4 to 7 parameters each: under every store's parameter limit).
_CHUNK = 200

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
    sample_of = _Sample(db, probe_id, version)
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
        if sample_of.take(source.id, hit, now):
            outcome.stored.append(hit)  # kept in the sample: exported like any stored hit
    sample_of.write(now)
    extra_dropped = int(dropped.get(probe_id, 0))
    if accepted or extra_dropped:
        db.execute(
            "UPDATE probes SET hit_count = hit_count + ?, dropped = dropped + ? WHERE id = ?",
            (accepted, extra_dropped, probe_id),
        )
    return accepted


class _Sample:
    """The sample of one (probe, version) while one batch is stored: read once, written once.

    :func:`sample` decided hit by hit with about five statements each (5.24 per standing hit
    on PostgreSQL). This makes the same decisions, in the same order and with the same random
    draws, on the counts and the reservoir read at the start of the batch, and writes what
    changed at the end: one upsert of the strata, one delete of the evicted hits and one of
    their reservoir rows, one insert per kept hit (its ``seq`` is needed) and one multi-row
    insert of their reservoir rows. The probe's row is locked (PostgreSQL) or the store has
    one writer (SQLite) for the whole batch, so nothing else changes these rows meanwhile.
    """

    def __init__(self, db: Dialect, probe_id: str, version: str) -> None:
        self.db = db
        self.key = (probe_id, version)
        # stratum -> [seen, kept, last_seen, first_seen]
        self.strata: dict[str, list[Any]] = {
            stratum: [int(seen), int(kept), last_seen, first_seen]
            for stratum, seen, kept, last_seen, first_seen in db.execute(
                "SELECT stratum, seen, kept, last_seen, first_seen FROM strata "
                "WHERE probe_id = ? AND version = ?",
                self.key,
            )
        }
        self.total = sum(row[1] for row in self.strata.values())
        self.changed: set[str] = set()
        self.members: dict[str, list[Any]] | None = None  # stratum -> seqs, then pending hits
        self.evicted: list[int] = []
        self.pending: list[tuple[str, dict[str, Any], str]] = []  # (source id, hit, stratum)

    def _members(self) -> dict[str, list[Any]]:
        if self.members is None:
            self.members = {}
            for seq, name in self.db.execute(
                "SELECT seq, stratum FROM reservoir WHERE probe_id = ? AND version = ? "
                "ORDER BY seq",
                self.key,
            ):
                self.members.setdefault(name, []).append(int(seq))
            # the hits kept earlier in this batch come after them (their seqs will be larger)
            for _, entry, name in self.pending:
                if not entry.get("evicted"):
                    self.members.setdefault(name, []).append(entry)
        return self.members

    def take(self, source_id: str, hit: dict[str, Any], now: float) -> bool:
        """What :func:`sample` decides for ``hit``, on the batch's view of the sample."""
        probe_id, version = self.key
        strata = self.strata
        stratum = st.stratum_of(hit)
        if stratum not in strata:
            if not strata:
                # a version with no stratum yet: as sample(), room is made among the newest
                # versions (the other versions' rows are not changed by this batch)
                versions = [
                    v
                    for (v,) in self.db.execute(
                        "SELECT version FROM strata WHERE probe_id = ? GROUP BY version "
                        "ORDER BY MAX(last_seen) DESC, version",
                        (probe_id,),
                    )
                ]
                if version not in versions and len(versions) >= st.MAX_VERSIONS:
                    for old in versions[st.MAX_VERSIONS - 1 :]:
                        forget_version(self.db, probe_id, old)
            if len(strata) >= st.MAX_STRATA:
                stratum = st.OVERFLOW_STRATUM
            if stratum not in strata:
                strata[stratum] = [0, 0, now, now]
        row = strata[stratum]
        seen, kept = row[0] + 1, row[1]
        row[0], row[2] = seen, now
        self.changed.add(stratum)
        victim: str | None = None  # the stratum that gives up one hit
        if self.total >= st.RESERVOIR_CAP:
            # the largest stratum, the first by name among those of one size
            largest = min(strata, key=lambda name: (-strata[name][1], name))
            if strata[largest][1] > kept + 1:
                victim = largest
            elif kept > 0 and _RANDOM.randrange(seen) < kept:
                victim = stratum
            else:
                return False  # not sampled: counted in seen
        members = self._members() if victim is not None or self.members is not None else None
        if victim is not None:
            assert members is not None
            kept_there = int(strata[victim][1])
            chosen = members[victim].pop(_RANDOM.randrange(max(1, kept_there)))
            if isinstance(chosen, int):
                self.evicted.append(chosen)
            else:
                chosen["evicted"] = True  # kept earlier in this batch: never written
            strata[victim][1] -= 1
            self.changed.add(victim)
            self.total -= 1
        entry: dict[str, Any] = {"hit": hit, "source_id": source_id, "stratum": stratum}
        self.pending.append((source_id, entry, stratum))
        if members is not None:
            members.setdefault(stratum, []).append(entry)
        strata[stratum][1] += 1
        self.total += 1
        return True

    def write(self, now: float) -> None:
        """Write the batch's changes: a few statements per batch, plus one per kept hit."""
        probe_id, version = self.key
        db = self.db
        if self.evicted:
            for start in range(0, len(self.evicted), _CHUNK):
                condition, seqs = db.any_of("seq", self.evicted[start : start + _CHUNK])
                db.execute(f"DELETE FROM hits WHERE {condition}", seqs)
                db.execute(f"DELETE FROM reservoir WHERE {condition}", seqs)
        rows: list[tuple[Any, ...]] = []
        for source_id, entry, stratum in self.pending:
            if entry.get("evicted"):
                continue
            hit = entry["hit"]
            seq = db.insert_hit(
                (probe_id, hit["signature"], source_id, hit.get("hit_id") or None, hit["ts"],
                 now, encode_hit(hit))
            )  # fmt: skip
            rows.append((seq, probe_id, version, stratum))
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            db.execute(
                "INSERT INTO reservoir (seq, probe_id, version, stratum) VALUES "
                + ", ".join(["(?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )
        changed = sorted(self.changed)
        for start in range(0, len(changed), _CHUNK):
            names = changed[start : start + _CHUNK]
            params: list[Any] = []
            for stratum in names:
                seen, kept, last_seen, first_seen = self.strata[stratum]
                params += [probe_id, version, stratum, seen, kept, first_seen, last_seen]
            db.execute(
                "INSERT INTO strata (probe_id, version, stratum, seen, kept, first_seen, "
                "last_seen) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(names))
                + " ON CONFLICT (probe_id, version, stratum) DO UPDATE SET "
                "seen = excluded.seen, kept = excluded.kept, last_seen = excluded.last_seen",
                params,
            )


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
