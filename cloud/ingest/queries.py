"""Read queries over telemetry that serve both storage flavours unchanged.

The rollup relations ``telemetry_1m`` / ``telemetry_5m`` / ``telemetry_1h`` are tables maintained by
the backend (native flavour) or continuous aggregates (TimescaleDB); both have the columns
``bucket, device_id, point, avg, min, max, count, last``. Bucket origins agree: ``date_bin`` from
2000-01-01 UTC and TimescaleDB's ``time_bucket`` give the same boundaries for these widths.

Queries use psycopg's named placeholders; :func:`numbered` turns them into ``$1, $2, …`` for drivers
that need that (the TimescaleDB test harness). The API's telemetry routes read with the queries at the end.
"""

from __future__ import annotations

import re
from typing import Literal

Resolution = Literal["1m", "5m", "1h"]
ROLLUP_RELATIONS: dict[Resolution, str] = {"1m": "telemetry_1m", "5m": "telemetry_5m", "1h": "telemetry_1h"}
BUCKET_WIDTHS: dict[Resolution, str] = {"1m": "1 minute", "5m": "5 minutes", "1h": "1 hour"}
ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"


def rollup_sql(resolution: Resolution) -> str:
    """One device's point in ``resolution`` buckets over [start, end): the dashboard's chart query."""
    return (
        "SELECT bucket, avg, min, max, count, last "
        f"FROM {ROLLUP_RELATIONS[resolution]} "
        "WHERE device_id = %(device)s AND point = %(point)s AND bucket >= %(start)s AND bucket < %(end)s "
        "ORDER BY bucket"
    )


def raw_buckets_sql(resolution: Resolution) -> str:
    """The same figures computed from raw rows with ``date_bin`` (the baseline, and for recent data)."""
    return (
        f"SELECT date_bin(INTERVAL '{BUCKET_WIDTHS[resolution]}', ts, {ORIGIN}) AS bucket, "
        "avg(value) AS avg, min(value) AS min, max(value) AS max, count(value) AS count, "
        "(array_agg(value ORDER BY ts DESC))[1] AS last "
        "FROM telemetry "
        "WHERE device_id = %(device)s AND point = %(point)s AND ts >= %(start)s AND ts < %(end)s "
        "AND value IS NOT NULL "
        "GROUP BY 1 ORDER BY 1"
    )


LATEST_SQL = (
    "SELECT DISTINCT ON (point) point, ts, value, value_text, quality FROM telemetry "
    "WHERE device_id = %(device)s AND ts >= %(since)s ORDER BY point, ts DESC"
)
"""The newest sample of each point of one device since a time (device detail page)."""

_NAMED = re.compile(r"%\((\w+)\)s")


def numbered(sql: str) -> tuple[str, list[str]]:
    """``%(name)s`` placeholders → ``$1, $2, …``; returns the SQL and the parameter names in order."""
    names: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(repl, sql), names


# -- the API's telemetry routes ---------------------------------------------------------------------

QUALITY_NAME = "CASE quality WHEN 0 THEN 'good' WHEN 1 THEN 'uncertain' ELSE 'bad' END"
"""The stored ``quality`` code as its contract name."""


def recent_buckets_sql(resolution: Resolution) -> str:
    """One device's rolled-up buckets (optionally of one ``point``), newest first, at most ``limit``."""
    return (
        f"SELECT bucket, point, avg, min, max, count, last FROM {ROLLUP_RELATIONS[resolution]} "
        "WHERE device_id = %(device)s AND (%(point)s::text IS NULL OR point = %(point)s) "
        "ORDER BY bucket DESC LIMIT %(limit)s"
    )


SAMPLES_SQL = (
    f"SELECT ts, point, value, value_text, {QUALITY_NAME} AS quality FROM telemetry WHERE device_id = %(device)s "
    "AND (%(point)s::text IS NULL OR point = %(point)s) ORDER BY ts DESC LIMIT %(limit)s"
)
"""One device's raw samples (optionally of one ``point``), newest first, at most ``limit``."""

LATEST_SAMPLES_SQL = (
    f"SELECT DISTINCT ON (point) point, ts, value, value_text, {QUALITY_NAME} AS quality FROM telemetry "
    "WHERE device_id = %(device)s ORDER BY point, ts DESC"
)
"""The newest sample of every point of one device, with its quality name."""
