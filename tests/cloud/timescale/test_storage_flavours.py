"""Both storage flavours run the same migrations' SQL files and answer the same queries identically.

native: the real PostgreSQL 15 (partitions, backend-maintained rollups).
timescale: PGlite + TimescaleDB (test-only npm package, see README.md), driven through run.mjs with the
SAME SQL files the migration registry names and the SAME query strings as cloud.ingest.queries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloud.db import DatabaseConfig
from cloud.db.migrate import migrate, plan
from cloud.ingest import maintenance
from cloud.ingest.queries import numbered, raw_buckets_sql, rollup_sql

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
STEP = 10  # seconds between samples
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
OLD = DAY - timedelta(days=7)
RETENTION = DatabaseConfig(retention_days=5, rollup_retention_days=400, dedup_days=7)

# One day of d1/temp every 10 s (values from the epoch, so Python can compute the expected figures),
# some noise from d2, one sample of d1 ten days back (dropped by retention), one text sample.
DATA_SQL = f"""
INSERT INTO telemetry (ts, device_id, point, value, value_text, quality)
SELECT t, 'd1', 'temp', (extract(epoch FROM t)::bigint % 97)::float8, NULL, 0
FROM generate_series(TIMESTAMPTZ '{DAY.isoformat()}', TIMESTAMPTZ '{(DAY + timedelta(days=1)).isoformat()}'
                     - INTERVAL '1 second', INTERVAL '{STEP} seconds') AS t;
INSERT INTO telemetry (ts, device_id, point, value, value_text, quality)
SELECT t, 'd2', 'temp', 1000, NULL, 0
FROM generate_series(TIMESTAMPTZ '{DAY.isoformat()}', TIMESTAMPTZ '{(DAY + timedelta(days=1)).isoformat()}'
                     - INTERVAL '1 second', INTERVAL '60 seconds') AS t;
INSERT INTO telemetry (ts, device_id, point, value, value_text, quality)
VALUES (TIMESTAMPTZ '{OLD.isoformat()}', 'd1', 'temp', 5, NULL, 0),
       (TIMESTAMPTZ '{(DAY + timedelta(hours=1)).isoformat()}', 'd1', 'mode', NULL, 'auto', 0);
"""

QUERIES: list[tuple[str, str]] = [
    ("rollup_5m", rollup_sql("5m")),
    ("rollup_1h", rollup_sql("1h")),
    ("rollup_1m", rollup_sql("1m")),
    ("raw_5m", raw_buckets_sql("5m")),
    ("raw_count", "SELECT count(*) AS n FROM telemetry WHERE device_id = %(device)s"),
]
PARAMS = {"device": "d1", "point": "temp", "start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}


def expected(width_s: int) -> list[tuple[float, float, float, float, int, float]]:
    out = []
    start = int(DAY.timestamp())
    for b in range(start, start + 86400, width_s):
        values = [float(t % 97) for t in range(b, b + width_s, STEP)]
        out.append((float(b), sum(values) / len(values), min(values), max(values), len(values), values[-1]))
    return out


def normalise(rows: list[dict[str, Any]]) -> list[tuple[float, float, float, float, int, float]]:
    out = []
    for r in rows:
        b = r["bucket"]
        ts = b.timestamp() if isinstance(b, datetime) else datetime.fromisoformat(b.replace("Z", "+00:00")).timestamp()
        out.append((ts, round(float(r["avg"]), 6), float(r["min"]), float(r["max"]), int(r["count"]), float(r["last"])))
    return out


def check(results: dict[str, list[dict[str, Any]]]) -> None:
    for name, width in (("rollup_5m", 300), ("rollup_1h", 3600), ("rollup_1m", 60), ("raw_5m", 300)):
        want = [(b, round(a, 6), lo, hi, n, last) for b, a, lo, hi, n, last in expected(width)]
        assert normalise(results[name]) == want, name
    # retention dropped the 10-day-old sample; the text sample counts as a row
    assert int(results["raw_count"][0]["n"]) == 86400 // STEP + 1


def test_native_flavour(pg_dsn: str) -> None:
    db = DatabaseConfig(dsn=pg_dsn, flavour="native")
    assert migrate(db).flavour == "native"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT xq_ensure_telemetry_partition(d::date) FROM unnest(%s::date[]) AS d", ([OLD.date(), DAY.date()],)
        )
        conn.execute(DATA_SQL.encode())
        # ingest records touched ranges in the same transaction as the COPY; the refresher consumes them
        conn.execute(
            "INSERT INTO telemetry_dirty (lo, hi) VALUES (%s, %s), (%s, %s)",
            (OLD, OLD + timedelta(minutes=1), DAY, DAY + timedelta(days=1)),
        )
        assert maintenance.refresh_rollups(conn) == 2
        assert conn.execute("SELECT count(*) FROM telemetry_dirty").fetchone() == (0,)
        maintenance.apply_retention(conn, "native", RETENTION.model_copy(update={"dsn": pg_dsn}))
        parts = [name for name, _ in maintenance.telemetry_partitions(conn)]
        assert f"telemetry_p{OLD:%Y%m%d}" not in parts and f"telemetry_p{DAY:%Y%m%d}" in parts
        results: dict[str, list[dict[str, Any]]] = {}
        for name, sql in QUERIES:
            cur = conn.execute(sql, PARAMS)
            cols = [c.name for c in cur.description or []]
            results[name] = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    check(results)


def _node_harness() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the TimescaleDB flavour test (Node 20)")
    if not (HERE / "node_modules" / "@unni-craftsman" / "pglite").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)


def run_node(steps: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    out = subprocess.run(
        ["node", str(HERE / "run.mjs")],
        input=json.dumps({"dir": None, "steps": steps}),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"], f"step {result.get('step')}: {result.get('error')}"
    rows: list[list[dict[str, Any]]] = result["results"]
    return rows


def query_step(sql: str, params: dict[str, Any] | tuple[Any, ...]) -> dict[str, Any]:
    if isinstance(params, dict):
        text, names = numbered(sql)
        return {"query": text, "params": [params[n] for n in names]}
    text = sql
    for i in range(len(params)):
        text = text.replace("%s", f"${i + 1}", 1)
    return {"query": text, "params": list(params)}


def test_timescale_flavour() -> None:
    _node_harness()
    steps: list[dict[str, Any]] = [{"exec": sql} for _, sql in plan("timescale")]  # the migrations' own files
    steps.append({"exec": DATA_SQL})
    for rel in ("telemetry_1m", "telemetry_5m", "telemetry_1h"):
        steps.append({"exec": f"CALL refresh_continuous_aggregate('{rel}', NULL, NULL)"})
    steps.extend(query_step(sql, params) for sql, params in maintenance.retention_statements("timescale", RETENTION))
    # policies never run by themselves in PGlite: run the compression and retention jobs now
    steps.append(
        {
            "query": "SELECT job_id, proc_name FROM timescaledb_information.jobs "
            "WHERE hypertable_name = 'telemetry' ORDER BY job_id"
        }
    )
    base = len(steps)
    results = run_node(steps)
    jobs = {r["proc_name"]: r["job_id"] for r in results[base - 1]}
    assert {"policy_compression", "policy_retention"} <= set(jobs)
    # second run (job ids now known; CALL run_job needs a literal): retention, then compression
    steps2 = steps[:base]
    steps2.append({"exec": f"CALL run_job({jobs['policy_retention']})"})
    steps2.append({"exec": f"CALL run_job({jobs['policy_compression']})"})
    steps2.append(
        {
            "query": "SELECT count(*) AS n FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'telemetry' AND is_compressed"
        }
    )
    first_query = len(steps2)
    steps2.extend(query_step(sql, PARAMS) for _, sql in QUERIES)
    results = run_node(steps2)
    assert int(results[first_query - 1][0]["n"]) >= 1  # the day's chunk was compressed by the policy job
    check({name: results[first_query + i] for i, (name, _) in enumerate(QUERIES)})
