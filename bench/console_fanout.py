"""Event commit → alarm on every console, with one ``serve`` process and with two sharing one database.

Starts real ``xiaoqu cloud serve`` processes (a private Mosquitto, a throw-away database), connects one
WebSocket client per process as a property manager, commits events the way ingest does (INSERT + pg_notify)
and times commit → the alarm arriving. Phase 1: one process (the baseline). Phase 2: two processes; an
event is claimed by one engine (pushed to its own clients at once) and relayed to the other over
``NOTIFY xq_changes``: "local" is the faster of the two arrivals, "relayed" the slower, "all consoles" is
when both have it.

    .venv/bin/python bench/console_fanout.py [--quick] [--events N]

Prints figures, then ONE JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import emit, free_port, median, private_mosquitto, throwaway_database
from cloud.alarms.testkit import insert_event, migrate_all, seed
from xiaoqu import processes

XIAOQU = str(Path(sys.executable).with_name("xiaoqu"))
SECRET = "bench-secret-" + "x" * 32


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


def start_serve(dsn: str, mqtt_port: int, workdir: Path, n: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = workdir / f"serve{n}.json"
    cfg.write_text(
        json.dumps(
            {
                "database": {"dsn": dsn},
                "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
                "api": {"port": port, "jwt_secret": SECRET, "evidence_dir": str(workdir / "evidence")},
            }
        )
    )
    log = (workdir / f"serve{n}.log").open("wb")
    proc = processes.spawn([XIAOQU, "cloud", "serve", "-c", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


async def ready(base: str, proc: subprocess.Popen[bytes]) -> str:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                r = await client.post("/api/auth/token", data={"username": "bench", "password": "bench-password"})
                if r.status_code == 200:
                    return f"{base.replace('http', 'ws')}/api/ws?token={r.json()['access_token']}"
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{base} did not come up")


async def arrival(ws: Any, eid: str) -> float:
    while True:
        change = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if change["kind"] == "alarm" and change["data"].get("detail", {}).get("event_id") == eid:
            return time.perf_counter()


async def measure(dsn: str, urls: list[str], events: int, warm_up: int = 10) -> list[list[float]]:
    """Per event, the commit → arrival latency (ms) on each client, sorted (fastest first); the first
    ``warm_up`` events (connections, caches) are not counted."""
    out: list[list[float]] = []
    sockets = [await websockets.connect(u, max_size=None) for u in urls]
    try:
        await asyncio.sleep(0.3)
        conn: psycopg.Connection[Any] = await asyncio.to_thread(lambda: psycopg.connect(dsn, autocommit=True))
        try:
            for i in range(events + warm_up):
                device, etype = ("door1" if i % 2 else "door2"), f"bench.e{uuid.uuid4().hex[:8]}"

                def commit(device: str = device, etype: str = etype) -> tuple[str, float]:
                    return insert_event(conn, device, etype, severity="warning"), time.perf_counter()

                eid, t0 = await asyncio.to_thread(commit)
                arrived = await asyncio.gather(*(arrival(ws, eid) for ws in sockets))
                if i >= warm_up:
                    out.append(sorted((t - t0) * 1000 for t in arrived))
                await asyncio.sleep(0.01)
        finally:
            conn.close()
    finally:
        for ws in sockets:
            await ws.close()
    return out


async def main_async(events: int) -> dict[str, Any]:
    procs: list[subprocess.Popen[bytes]] = []
    with throwaway_database() as dsn, private_mosquitto() as mqtt_port, tempfile.TemporaryDirectory() as tmp:
        migrate_all(dsn)
        seed(dsn)
        from psycopg import AsyncConnection

        from cloud.auth.roles import Role
        from cloud.auth.store import add_user

        async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
            await add_user(conn, "bench", "bench-password", Role.PROPERTY_MANAGER)
        try:
            p0, base0 = start_serve(dsn, mqtt_port, Path(tmp), 0)
            procs.append(p0)
            url0 = await ready(base0, p0)
            single = [r[0] for r in await measure(dsn, [url0], events)]
            p1, base1 = start_serve(dsn, mqtt_port, Path(tmp), 1)
            procs.append(p1)
            url1 = await ready(base1, p1)
            pairs = await measure(dsn, [url0, url1], events)
        finally:
            for p in procs:
                p.send_signal(signal.SIGINT)
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
    local = [p[0] for p in pairs]
    relayed = [p[1] for p in pairs]
    return {
        "events": events,
        "one_process_p50_ms": round(median(single), 2),
        "one_process_p99_ms": round(percentile(single, 99), 2),
        "two_local_p50_ms": round(median(local), 2),
        "two_relayed_p50_ms": round(median(relayed), 2),
        "two_all_consoles_p99_ms": round(percentile(relayed, 99), 2),
        "all_consoles_p50_ratio_to_one_process": round(median(relayed) / median(single), 2),
    }


def main() -> int:
    processes.exit_on_stop_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: the serve processes are stopped
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (30 events per phase)")
    parser.add_argument("--events", type=int, default=None, help="events per phase (default 200, quick 30)")
    args = parser.parse_args()
    events = args.events or (30 if args.quick else 200)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    r = asyncio.run(main_async(events))
    print(f"events per phase                     {r['events']}")
    print(f"one process        p50 / p99         {r['one_process_p50_ms']} / {r['one_process_p99_ms']} ms")
    print(f"two processes      local p50         {r['two_local_p50_ms']} ms")
    print(f"two processes      relayed p50       {r['two_relayed_p50_ms']} ms")
    print(f"two processes      all consoles p99  {r['two_all_consoles_p99_ms']} ms")
    print(f"all consoles / one process (p50)     {r['all_consoles_p50_ratio_to_one_process']}x")
    emit(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
