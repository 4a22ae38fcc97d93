"""Dashboard chart query: 1 device × 1 day in 5-min buckets, from the rollup vs from raw rows (date_bin).

Native flavour (the rollups maintained by the backend). Baseline: the same figures computed from raw
rows with date_bin. Usage: .venv/bin/python bench/rollup_query.py [--quick]
Prints figures, then ONE JSON object as the last line.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench._common import emit, median, throwaway_database
from cloud.db import DatabaseConfig
from cloud.db.migrate import migrate
from cloud.ingest.maintenance import refresh_rollups
from cloud.ingest.queries import raw_buckets_sql, rollup_sql


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    runs = 15 if args.quick else 60
    other_devices = 20 if args.quick else 100
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    with throwaway_database() as dsn:
        migrate(DatabaseConfig(dsn=dsn, flavour="native"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT xq_ensure_telemetry_partition(%s::date)", (day.date(),))
            # the charted device: 3 points at 1 Hz for a day; other devices: 1 point every 10 s
            conn.execute(
                "INSERT INTO telemetry (ts, device_id, point, value) "
                "SELECT t, 'd0', p, random() * 100 FROM generate_series(%s::timestamptz, %s::timestamptz "
                "- interval '1 second', interval '1 second') t, unnest(ARRAY['temp', 'humidity', 'battery']) p",
                (day, day + timedelta(days=1)),
            )
            conn.execute(
                "INSERT INTO telemetry (ts, device_id, point, value) "
                "SELECT t, 'd' || d, 'temp', random() * 100 FROM generate_series(%s::timestamptz, %s::timestamptz "
                "- interval '1 second', interval '10 seconds') t, generate_series(1, %s) d",
                (day, day + timedelta(days=1), other_devices),
            )
            conn.execute("INSERT INTO telemetry_dirty (lo, hi) VALUES (%s, %s)", (day, day + timedelta(days=1)))
            t0 = time.perf_counter()
            refresh_rollups(conn)
            refresh_s = time.perf_counter() - t0
            conn.execute("VACUUM ANALYZE")
            rows = conn.execute("SELECT count(*) FROM telemetry").fetchone()
            params = {"device": "d0", "point": "temp", "start": day, "end": day + timedelta(days=1)}

            def timed(sql: str) -> tuple[float, int]:
                times = []
                n = 0
                for _ in range(runs):
                    t = time.perf_counter()
                    n = len(conn.execute(sql, params).fetchall())
                    times.append((time.perf_counter() - t) * 1000)
                return median(times), n

            timed(rollup_sql("5m"))  # warm
            rollup_ms, n1 = timed(rollup_sql("5m"))
            raw_ms, n2 = timed(raw_buckets_sql("5m"))
    assert n1 == n2 == 288, (n1, n2)
    total = rows[0] if rows else 0
    print(f"table: {total:,} raw rows; rollup refresh of the whole day took {refresh_s:.1f} s")
    print(f"rollup (telemetry_5m): {rollup_ms:.2f} ms median of {runs}; 288 buckets")
    print(f"raw date_bin over 86,400 rows: {raw_ms:.2f} ms median of {runs}; ratio rollup/raw {rollup_ms / raw_ms:.3f}")
    emit(
        {
            "bench": "rollup_query",
            "rollup_median_ms": round(rollup_ms, 3),
            "raw_median_ms": round(raw_ms, 3),
            "ratio_to_raw": round(rollup_ms / raw_ms, 4),
            "buckets": 288,
            "raw_rows_in_range": 86400,
            "table_rows": total,
            "refresh_day_s": round(refresh_s, 2),
            "runs": runs,
            "quick": args.quick,
        }
    )


if __name__ == "__main__":
    main()
