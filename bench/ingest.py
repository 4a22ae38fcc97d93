"""Ingest throughput end to end: load generator → Mosquitto → ingest workers → PostgreSQL (QoS 1).

Baseline: raw binary COPY of the same rows into the same table, measured in the same run.
Events phase: a backlog of single-event messages queued in the broker for a worker's (pre-created) session,
drained by one worker with receipts on (a Receipt per gateway after each commit) and off, alternately in the
same run: the ratio is what receipts cost ingest.
Usage: .venv/bin/python bench/ingest.py [--quick] [--workers 1,2] [--points-per-message 500] [--events N]
Prints figures, then ONE JSON object as the last line.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench._common import emit, median, private_mosquitto, throwaway_database
from cloud.db import DatabaseConfig
from cloud.db.migrate import migrate
from cloud.ingest.maintenance import ensure_partitions_ahead
from xiaoqu import processes

SITE = "bench"
GATEWAYS = 20
DEVICES_PER_GW = 50
POINTS = ("temp", "humidity", "smoke", "battery", "rssi")


def make_messages(n_messages: int, points_per_message: int, run: str) -> list[tuple[str, bytes]]:
    """Valid contract payloads, built as text (the pydantic encode is not what we measure)."""
    out = []
    base = datetime.now(UTC) - timedelta(hours=1)
    for i in range(n_messages):
        gw = f"gw{i % GATEWAYS}"
        ts0 = base + timedelta(milliseconds=i)
        pts = []
        for j in range(points_per_message):
            dev = f"{gw}-d{j % DEVICES_PER_GW}"
            ts = (ts0 + timedelta(microseconds=j)).isoformat().replace("+00:00", "Z")
            pts.append(f'{{"device":"{dev}","point":"{POINTS[j % 5]}","ts":"{ts}","value":{(i + j) % 1000 / 10}}}')
        mid = uuid.UUID(int=(uuid.uuid4().int & ~(0xF << 76)) | (0x7 << 76))
        payload = (
            f'{{"v":1,"id":"{mid}","gw":"{gw}","seq":{i},"ts":"{ts0.isoformat().replace("+00:00", "Z")}",'
            f'"kind":"telemetry","points":[{",".join(pts)}]}}'
        )
        out.append((f"xq/v1/{SITE}-{run}/{gw}/telemetry", payload.encode()))
    return out


def births(run: str, prefix: str = "") -> list[tuple[str, bytes]]:
    from contract.codec import encode
    from contract.messages import DeviceInfo, GatewayState, Location

    out = []
    for g in range(GATEWAYS):
        gw = f"gw{g}"
        state = GatewayState(
            gw=gw,
            seq=int(time.time() * 1000),
            ts=datetime.now(UTC),
            state="online",
            devices=[
                DeviceInfo(device=f"{prefix}{gw}-d{d}", profile="bench",
                           location=Location(site=f"{SITE}-{run}", building="B1"))
                for d in range(DEVICES_PER_GW)
            ],
        )
        out.append((f"xq/v1/{SITE}-{run}/{gw}/state", encode(state)))
    return out


def publish(port: int, messages: list[tuple[str, bytes]], started: Any, retain: bool = False) -> None:
    processes.die_with_parent()
    from paho.mqtt.client import Client
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    c = Client(
        CallbackAPIVersion.VERSION2, client_id=f"loadgen-{uuid.uuid4().hex[:6]}", protocol=MQTTProtocolVersion.MQTTv5
    )
    c.max_inflight_messages_set(50)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    started.set()
    infos = [c.publish(t, p, qos=1, retain=retain) for t, p in messages]
    for info in infos:
        info.wait_for_publish(120)
    c.disconnect()
    c.loop_stop()


def bench_config(port: int, run: str, receipts: bool = True) -> Any:
    from cloud.ingest.config import IngestConfig
    from contract.mqtt import MqttSettings

    return IngestConfig(
        mqtt=MqttSettings(port=port), client_id=f"bench-{run}", site=f"{SITE}-{run}", group=f"g{run}",
        session_expiry_s=60, receipts=receipts,
    )


def worker_proc(dsn: str, port: int, run: str, index: int, receipts: bool = True) -> None:
    processes.die_with_parent()
    import logging

    logging.basicConfig(level=logging.WARNING)
    import signal

    from cloud.ingest.worker import IngestWorker

    w = IngestWorker(DatabaseConfig(dsn=dsn), bench_config(port, run, receipts), index=index)
    signal.signal(signal.SIGTERM, lambda *_: w._stop.set())
    w.run()


def raw_copy(dsn: str, messages: list[tuple[str, bytes]]) -> float:
    import json

    rows = []
    for _, payload in messages:
        for p in json.loads(payload)["points"]:
            rows.append((datetime.fromisoformat(p["ts"]), p["device"], p["point"], float(p["value"]), None, 0))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry")
        t0 = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(
                "COPY telemetry (ts, device_id, point, value, value_text, quality) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["timestamptz", "text", "text", "float8", "text", "int2"])
            for r in rows:
                copy.write_row(r)
        dt = time.perf_counter() - t0
        conn.execute("TRUNCATE telemetry")
    return len(rows) / dt


def run_ingest(dsn: str, port: int, workers: int, messages_n: int, ppm: int) -> float:
    run = uuid.uuid4().hex[:6]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker_proc, args=(dsn, port, run, i)) for i in range(workers)]
    for p in procs:
        p.start()
    started = ctx.Event()
    try:
        return _measure(dsn, port, run, ctx, started, messages_n, ppm)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(20)


def _measure(dsn: str, port: int, run: str, ctx: Any, started: Any, messages_n: int, ppm: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE telemetry, ingested_messages, telemetry_dirty")
        # births (retained) register the devices and tell us the workers are subscribed
        birth_started = ctx.Event()
        pub = ctx.Process(target=publish, args=(port, births(run), birth_started, True), daemon=True)
        pub.start()
        pub.join()
        deadline = time.monotonic() + 60
        while conn.execute("SELECT count(*) FROM devices WHERE site_id = %s", (f"{SITE}-{run}",)).fetchone() != (
            GATEWAYS * DEVICES_PER_GW,
        ):
            if time.monotonic() > deadline:
                n = conn.execute("SELECT count(*), count(DISTINCT site_id) FROM devices").fetchone()
                raise RuntimeError(f"workers did not register the devices: {n}")
            time.sleep(0.1)
        time.sleep(1.0)  # all workers subscribed
        messages = make_messages(messages_n, ppm, run)
        pub = ctx.Process(target=publish, args=(port, messages, started), daemon=True)
        pub.start()
        started.wait(30)
        t0 = time.perf_counter()
        deadline = time.monotonic() + 600
        while True:
            n = conn.execute("SELECT count(*) FROM ingested_messages").fetchone()
            if n is not None and n[0] >= messages_n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {n} of {messages_n} messages committed")
            time.sleep(0.02)
        dt = time.perf_counter() - t0
        pub.join()
        stored = conn.execute("SELECT count(*) FROM telemetry").fetchone()
        assert stored == (messages_n * ppm,), stored
    return messages_n * ppm / dt


def make_events(n: int, run: str) -> list[tuple[str, bytes]]:
    """Single-event messages (a door opening, say) spread over the gateways' devices, built as text."""
    out = []
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for i in range(n):
        gw = f"gw{i % GATEWAYS}"
        mid = uuid.UUID(int=(uuid.uuid4().int & ~(0xF << 76)) | (0x7 << 76))
        payload = (
            f'{{"v":2,"id":"{mid}","gw":"{gw}","seq":{i},"ts":"{ts}","kind":"event",'
            f'"device":"{run}-{gw}-d{i % DEVICES_PER_GW}","event":"door.opened","key":"door.opened",'
            f'"severity":"info","active":true}}'
        )
        out.append((f"xq/v1/{SITE}-{run}/{gw}/event", payload.encode()))
    return out


def run_events(dsn: str, port: int, n: int, receipts: bool) -> float:
    """Events/s one worker commits draining a backlog of ``n`` event messages queued for its session."""
    from cloud.ingest.session import ensure_sessions

    run = uuid.uuid4().hex[:6]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE events")  # so counting this run's events stays cheap while it drains
    ensure_sessions(bench_config(port, run), 1)  # the broker queues for the worker before it runs
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()  # kept referenced until the child has it
    pub = ctx.Process(target=publish, args=(port, births(run, f"{run}-") + make_events(n, run), started))
    pub.start()
    pub.join()
    if pub.exitcode != 0:
        raise RuntimeError(f"the publisher failed (exit {pub.exitcode})")
    proc = ctx.Process(target=worker_proc, args=(dsn, port, run, 0, receipts))
    proc.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            query = "SELECT count(*) FROM events"
            first_at = first_n = 0.0
            deadline = time.monotonic() + 300
            while True:
                row = conn.execute(query).fetchone()
                done = int(row[0]) if row else 0
                now = time.perf_counter()
                if done and not first_at:
                    first_at, first_n = now, done
                if done >= n:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {done} of {n} events committed")
                time.sleep(0.02)
        return (n - first_n) / max(now - first_at, 1e-6)
    finally:
        proc.terminate()
        proc.join(20)


def main() -> None:
    processes.exit_on_stop_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: workers and publisher are stopped
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small run (about 1.5 min with the events phase)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--points-per-message", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--events", type=int, default=None, help="events in the receipts phase (0 = skip it)")
    args = ap.parse_args()
    n_events = args.events if args.events is not None else (10_000 if args.quick else 50_000)
    ppm = args.points_per_message
    total_points = 200_000 if args.quick else 1_000_000
    repeat = args.repeat or (1 if args.quick else 3)
    messages_n = total_points // ppm
    worker_counts = [int(w) for w in args.workers.split(",")]
    with throwaway_database() as dsn, private_mosquitto() as port:
        migrate(DatabaseConfig(dsn=dsn, flavour="native"))
        with psycopg.connect(dsn, autocommit=True) as conn:
            ensure_partitions_ahead(conn, 1, today=(datetime.now(UTC) - timedelta(days=1)).date())
        copy_rates = [raw_copy(dsn, make_messages(messages_n, ppm, "copy")) for _ in range(repeat)]
        raw = median(copy_rates)
        print(f"raw binary COPY: {raw:,.0f} rows/s (median of {repeat})")
        rates: dict[int, float] = {}
        for w in worker_counts:
            runs = [run_ingest(dsn, port, w, messages_n, ppm) for _ in range(repeat)]
            rates[w] = median(runs)
            print(
                f"ingest, {w} worker(s): {rates[w]:,.0f} points/s committed (median of {repeat}: "
                f"{', '.join(f'{r:,.0f}' for r in runs)}); ratio to raw COPY {rates[w] / raw:.2f}"
            )
        events: dict[str, float] = {}
        if n_events:
            pairs = max(3, repeat)
            with_r: list[float] = []
            without: list[float] = []
            for _ in range(pairs):  # alternate, so load on the shared machine hits both alike
                with_r.append(run_events(dsn, port, n_events, receipts=True))
                without.append(run_events(dsn, port, n_events, receipts=False))
            events = {"on": median(with_r), "off": median(without)}
            print(
                f"events, 1 worker, backlog of {n_events:,}: {events['on']:,.0f} events/s with receipts, "
                f"{events['off']:,.0f} without (medians of {pairs}); ratio {events['on'] / events['off']:.2f}"
            )
    best = max(rates, key=lambda k: rates[k])
    emit(
        {
            "bench": "ingest",
            "points_per_s": round(rates[best]),
            "workers": best,
            "points_per_s_by_workers": {str(k): round(v) for k, v in rates.items()},
            "raw_copy_rows_per_s": round(raw),
            "ratio_to_copy": round(rates[best] / raw, 3),
            "points_per_message": ppm,
            "points_total": messages_n * ppm,
            "qos": 1,
            "quick": args.quick,
            **(
                {
                    "events_per_s_with_receipts": round(events["on"]),
                    "events_per_s_without_receipts": round(events["off"]),
                    "receipts_ratio": round(events["on"] / events["off"], 3),
                }
                if events
                else {}
            ),
        }
    )


if __name__ == "__main__":
    main()
