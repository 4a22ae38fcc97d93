"""Event commit → WebSocket push latency of the decision path, idle and with ingest-like load.

Starts the backend (API + decision engine) in-process on a throw-away database, connects a WebSocket
client as an admin, then commits events the way ingest does (INSERT + pg_notify in one transaction)
and times commit → the alarm change arriving on the socket. The loaded phase runs background writers
in other processes COPYing telemetry batches into the same database (ingest's write path).

    .venv/bin/python bench/alarm_latency.py [--quick] [--events N] [--writers N]

Prints figures, then ONE JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.alarms.testkit import insert_event, migrate_all, seed
from cloud.api.config import ApiConfig
from cloud.auth.roles import Role
from cloud.auth.store import add_user
from cloud.config import BackendConfig
from cloud.db import DatabaseConfig
from cloud.serve import Backend
from xiaoqu import processes

ADMIN_DSN = os.environ.get("XQ_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class NullPublisher:
    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def writer(dsn: str, stop: Any, counter: Any, batch: int) -> None:
    """Background load: COPY telemetry batches (about what one ingest worker writes) until told to stop."""
    processes.die_with_parent()
    with psycopg.connect(dsn) as conn:
        n = 0
        while not stop.is_set():
            now = datetime.now(UTC)
            with (
                conn.cursor() as cur,
                cur.copy("COPY telemetry (ts, device_id, point, value, quality) FROM STDIN") as cp,
            ):
                for i in range(batch):
                    cp.write_row((now, f"load{i % 200}", f"p{i % 10}", float(i), 0))
            conn.commit()
            n += batch
            with counter.get_lock():
                counter.value += batch


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def commit_event(conn: psycopg.Connection[Any], device: str, etype: str) -> tuple[str, float]:
    """Insert + notify like ingest; returns the event id and the moment its commit returned."""
    eid = insert_event(conn, device, etype, severity="warning")
    return eid, time.perf_counter()


async def measure(dsn: str, ws_url: str, events: int) -> list[float]:
    latencies: list[float] = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        await asyncio.sleep(0.2)
        conn: psycopg.Connection[Any] = await asyncio.to_thread(lambda: psycopg.connect(dsn, autocommit=True))
        try:
            for i in range(events):
                etype = f"bench.e{uuid.uuid4().hex[:8]}"
                eid, t0 = await asyncio.to_thread(commit_event, conn, "door1" if i % 2 else "door2", etype)
                while True:
                    change = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if change["kind"] == "alarm" and change["data"].get("detail", {}).get("event_id") == eid:
                        break
                latencies.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.01)
        finally:
            conn.close()
    return latencies


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    name = f"xq_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=name)
    try:
        migrate_all(dsn)
        seed(dsn)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SELECT xq_ensure_telemetry_partition(current_date)")
            c.execute("SELECT xq_ensure_telemetry_partition(current_date + 1)")
        port = free_port()
        config = BackendConfig(
            database=DatabaseConfig(dsn=dsn, pool_max=4),
            api=ApiConfig(port=port, jwt_secret="bench-secret-" + "x" * 32, evidence_dir=Path(tempfile.mkdtemp())),
        )
        backend = Backend(config, publisher=NullPublisher(), run_timers=False)
        await backend.start()
        try:
            assert backend.pool is not None
            async with backend.pool.connection() as conn:
                await add_user(conn, "bench", "bench-password", Role.ADMIN)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                r = await client.post("/api/auth/token", data={"username": "bench", "password": "bench-password"})
                token = r.json()["access_token"]
            ws_url = f"ws://127.0.0.1:{port}/api/ws?token={token}"

            idle = await measure(dsn, ws_url, args.events)
            ctx = mp.get_context("spawn")
            stop, counter = ctx.Event(), ctx.Value("q", 0)
            procs = [ctx.Process(target=writer, args=(dsn, stop, counter, args.batch), daemon=True)
                     for _ in range(args.writers)]
            for p in procs:
                p.start()
            await asyncio.sleep(1.0)  # let the load settle
            start_count, t_start = counter.value, time.perf_counter()
            loaded = await measure(dsn, ws_url, args.events)
            elapsed = time.perf_counter() - t_start
            points = counter.value - start_count
            stop.set()
            for p in procs:
                p.join(10)
        finally:
            await backend.stop()
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "events": args.events,
        "writers": args.writers,
        "p50_ms": round(statistics.median(loaded), 2),
        "p99_ms": round(percentile(loaded, 99), 2),
        "max_ms": round(max(loaded), 2),
        "background_points_per_s": round(points / elapsed),
        "idle_p50_ms": round(statistics.median(idle), 2),
        "idle_p99_ms": round(percentile(idle, 99), 2),
        "p50_ratio_to_idle": round(statistics.median(loaded) / statistics.median(idle), 2),
    }


def main() -> int:
    processes.exit_on_stop_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: writers and database are cleaned up
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (50 events per phase)")
    parser.add_argument("--events", type=int, default=None, help="events per phase (default 300, quick 50)")
    parser.add_argument("--writers", type=int, default=1, help="background telemetry writer processes")
    parser.add_argument("--batch", type=int, default=1000, help="points per background COPY batch")
    args = parser.parse_args()
    args.events = args.events or (50 if args.quick else 300)
    result = asyncio.run(main_async(args))
    print(f"events per phase           {result['events']}")
    print(f"idle    p50 / p99          {result['idle_p50_ms']} / {result['idle_p99_ms']} ms")
    print(f"loaded  p50 / p99 / max    {result['p50_ms']} / {result['p99_ms']} / {result['max_ms']} ms")
    print(f"background load            {result['background_points_per_s']} points/s ({result['writers']} writer(s))")
    print(f"loaded / idle p50          {result['p50_ratio_to_idle']}x   (fire-code budget: 10 000 ms)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
