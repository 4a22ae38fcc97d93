"""Storage upkeep: rollups (native flavour), partitions ahead, retention, idempotency-window pruning.

Runs in every ingest process on a timer; the work is guarded by a PostgreSQL advisory lock so only one
process does it at a time. With TimescaleDB, rollups, compression and retention are the extension's
background jobs; here we only (re)set the retention policies from the configuration.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg.rows import TupleRow

from cloud.db import DatabaseConfig, Flavour
from cloud.ingest.queries import ORIGIN

log = logging.getLogger(__name__)

Conn = psycopg.Connection[TupleRow]
LOCK_KEY = 0x78715F72  # "xq_r"
_PART = re.compile(r"^telemetry_p(\d{8})$")

# Recompute 1-minute buckets from raw rows, then 5-min from 1-min, then 1-h from 5-min.
_REFRESH_1M = f"""
DELETE FROM telemetry_1m WHERE bucket >= %(lo)s AND bucket < %(hi)s;
INSERT INTO telemetry_1m (bucket, device_id, point, avg, min, max, count, last)
SELECT date_bin(INTERVAL '1 minute', ts, {ORIGIN}), device_id, point,
       avg(value), min(value), max(value), count(value), (array_agg(value ORDER BY ts DESC))[1]
FROM telemetry WHERE ts >= %(lo)s AND ts < %(hi)s AND value IS NOT NULL
GROUP BY 1, 2, 3
"""


def _refresh_from(target: str, source: str, width: str) -> str:
    return f"""
DELETE FROM {target} WHERE bucket >= %(lo)s AND bucket < %(hi)s;
INSERT INTO {target} (bucket, device_id, point, avg, min, max, count, last)
SELECT date_bin(INTERVAL '{width}', bucket, {ORIGIN}), device_id, point,
       sum(avg * count) / NULLIF(sum(count), 0), min(min), max(max), sum(count),
       (array_agg(last ORDER BY bucket DESC))[1]
FROM {source} WHERE bucket >= %(lo)s AND bucket < %(hi)s
GROUP BY 1, 2, 3
"""


_REFRESH_5M = _refresh_from("telemetry_5m", "telemetry_1m", "5 minutes")
_REFRESH_1H = _refresh_from("telemetry_1h", "telemetry_5m", "1 hour")


def _floor(ts: datetime, width: timedelta) -> datetime:
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    return origin + ((ts - origin) // width) * width


def _ceil(ts: datetime, width: timedelta) -> datetime:
    f = _floor(ts, width)
    return f if f == ts else f + width


def _merge(ranges: list[tuple[datetime, datetime]], gap: timedelta) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _run(conn: Conn, sql: str, lo: datetime, hi: datetime) -> None:
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement, {"lo": lo, "hi": hi})


def refresh_rollups(conn: Conn) -> int:
    """Recompute the rollup buckets touched since the last refresh (native flavour); returns ranges done.

    Ingest records touched minute ranges in ``telemetry_dirty`` in its own transaction, so a range
    refreshed while points for it are still uncommitted is refreshed again on the next round.
    """
    with conn.transaction():
        rows = conn.execute("DELETE FROM telemetry_dirty RETURNING lo, hi").fetchall()
        ranges = _merge([(r[0], r[1]) for r in rows], timedelta(minutes=1))
        for lo, hi in ranges:
            _run(conn, _REFRESH_1M, lo, hi)
        five = _merge(
            [(_floor(lo, timedelta(minutes=5)), _ceil(hi, timedelta(minutes=5))) for lo, hi in ranges], timedelta(0)
        )
        for lo, hi in five:
            _run(conn, _REFRESH_5M, lo, hi)
        hour = _merge(
            [(_floor(lo, timedelta(hours=1)), _ceil(hi, timedelta(hours=1))) for lo, hi in five], timedelta(0)
        )
        for lo, hi in hour:
            _run(conn, _REFRESH_1H, lo, hi)
    return len(ranges)


def ensure_partitions_ahead(conn: Conn, days_ahead: int, today: date | None = None) -> list[str]:
    """Create the daily telemetry partitions from today to ``days_ahead`` days ahead (native flavour)."""
    start = today or datetime.now(UTC).date()
    days = [start + timedelta(days=i) for i in range(days_ahead + 1)]
    with conn.transaction():
        rows = conn.execute(
            "SELECT xq_ensure_telemetry_partition(d::date) FROM unnest(%s::date[]) AS d", (days,)
        ).fetchall()
    return [str(r[0]) for r in rows]


def telemetry_partitions(conn: Conn) -> list[tuple[str, date]]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'telemetry'::regclass ORDER BY 1"
    ).fetchall()
    out = []
    for (name,) in rows:
        m = _PART.match(str(name))
        if m:
            out.append((str(name), datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC).date()))
    return out


def drop_old_partitions(conn: Conn, retention_days: int, now: datetime | None = None) -> list[str]:
    """Drop daily partitions whose whole day is older than the retention window (native flavour)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    dropped = []
    for name, day in telemetry_partitions(conn):
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if end <= cutoff:
            with conn.transaction():
                conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            dropped.append(name)
    if dropped:
        log.info("retention: dropped telemetry partitions %s", ", ".join(dropped))
    return dropped


def retention_statements(flavour: Flavour, config: DatabaseConfig) -> list[tuple[str, tuple[object, ...]]]:
    """The SQL that sets retention (TimescaleDB policies; native deletes), run in one transaction."""
    rollups = ("telemetry_1m", "telemetry_5m", "telemetry_1h")
    out: list[tuple[str, tuple[object, ...]]] = []
    if flavour == "timescale":
        out.append(("SELECT remove_retention_policy('telemetry', if_exists => true)", ()))
        out.append(("SELECT add_retention_policy('telemetry', make_interval(days => %s))", (config.retention_days,)))
        for rel in rollups:
            out.append(("SELECT remove_retention_policy(%s, if_exists => true)", (rel,)))
            out.append(
                ("SELECT add_retention_policy(%s, make_interval(days => %s))", (rel, config.rollup_retention_days))
            )
    else:
        for rel in rollups:
            out.append(
                (f"DELETE FROM {rel} WHERE bucket < now() - make_interval(days => %s)", (config.rollup_retention_days,))
            )
    out.append(
        ("DELETE FROM ingested_messages WHERE received_at < now() - make_interval(days => %s)", (config.dedup_days,))
    )
    return out


def apply_retention(conn: Conn, flavour: Flavour, config: DatabaseConfig) -> None:
    """Raw telemetry, rollups and the idempotency window kept as configured."""
    with conn.transaction():
        for sql, params in retention_statements(flavour, config):
            conn.execute(sql, params)
    if flavour == "native":
        drop_old_partitions(conn, config.retention_days)


@dataclass
class Maintenance:
    """One round of upkeep, done by whichever ingest process gets the advisory lock."""

    db: DatabaseConfig
    flavour: Flavour
    partitions_ahead_days: int = 3
    retention_every: int = 360
    _rounds: int = 0

    def run_once(self, conn: Conn) -> bool:
        """True if this process held the lock and did the work."""
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        conn.commit()
        if not got or not got[0]:
            return False
        try:
            if self.flavour == "native":
                refresh_rollups(conn)
                if self._rounds % 60 == 0:
                    ensure_partitions_ahead(conn, self.partitions_ahead_days)
            if self._rounds % self.retention_every == 0:
                apply_retention(conn, self.flavour, self.db)
            self._rounds += 1
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            conn.commit()
        return True
