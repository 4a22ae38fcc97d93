"""Benchmark of the gateway outbox and uplink: write rate, drain rate, alarm overtaking.

    .venv/bin/python bench/outbox.py [--quick] [--url mqtt://127.0.0.1:1883] [--backlog N]

- write_msgs_per_s: ``Outbox.put()`` of one telemetry message per call (encode + commit, WAL NORMAL),
  compared with a bare SQLite insert + commit of the same pre-encoded payloads into the same schema
  with the same pragmas, measured in the same run (``write_to_baseline_ratio``).
- write_batch_msgs_per_s: ``put_many()`` in batches of 500; alarm_write_msgs_per_s: ``put()`` of
  life-safety alarms (synchronous=FULL: one fsync each).
- drain_msgs_per_s: a backlog (1M, ``--quick`` 100k) drained to the real Mosquitto with QoS 1, rows
  deleted on PUBACK.
- alarm_overtake_ms: alarms put while that backlog drains, from ``put()`` returning to their PUBACK
  (median; ``alarm_overtake_ms_max`` the worst of them).

The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from contract.codec import encode
from contract.messages import Event, GatewayState, PointSample, TelemetryBatch
from edge.uplink import Outbox, OutboxConfig, OutboxRow, Uplink, UplinkConfig

GW = "bench-gw"


def telemetry(seq: int) -> TelemetryBatch:
    now = datetime.now(UTC)
    return TelemetryBatch(
        gw=GW,
        seq=seq,
        ts=now,
        points=[
            PointSample(device="em1", point="load_kg", ts=now, value=float(seq % 1000)),
            PointSample(device="em1", point="floor", ts=now, value=seq % 30),
        ],
    )


def alarm(seq: int) -> Event:
    return Event(
        gw=GW,
        seq=seq,
        ts=datetime.now(UTC),
        device="fp1",
        event="fire.alarm", key="fire.alarm",
        severity="critical",
        active=True,
        life_safety=True,
        detail={"zone": "B2-F3"},
    )


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_baseline(path: Path, payloads: list[bytes]) -> float:
    """Bare SQLite: insert + commit per row, same schema and pragmas as the outbox, no encoding."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, lane INTEGER NOT NULL, kind TEXT NOT NULL, "
        "size INTEGER NOT NULL, payload BLOB NOT NULL)"
    )
    db.execute("CREATE INDEX outbox_lane_id ON outbox (lane, id)")
    start = time.perf_counter()
    for payload in payloads:
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO outbox (lane, kind, size, payload) VALUES (2, 'telemetry', ?, ?)", (len(payload), payload)
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return rate(len(payloads), elapsed)


def bench_writes(workdir: Path, n: int, n_alarms: int) -> dict[str, float]:
    messages = [telemetry(i) for i in range(n)]
    baseline = bench_baseline(workdir / "baseline.db", [encode(m) for m in messages])

    box = Outbox(OutboxConfig(path=workdir / "single.db", budget_bytes=2**40), GW)
    start = time.perf_counter()
    for m in messages:
        box.put(m)
    single = rate(n, time.perf_counter() - start)
    box.close()

    box = Outbox(OutboxConfig(path=workdir / "batch.db", budget_bytes=2**40), GW)
    start = time.perf_counter()
    for i in range(0, n, 500):
        box.put_many(messages[i : i + 500])
    batch = rate(n, time.perf_counter() - start)
    alarms = [alarm(i) for i in range(n_alarms)]
    start = time.perf_counter()
    for a in alarms:
        box.put(a)
    alarm_rate = rate(n_alarms, time.perf_counter() - start)
    box.close()
    return {
        "baseline_insert_msgs_per_s": baseline,
        "write_msgs_per_s": single,
        "write_to_baseline_ratio": single / baseline,
        "write_batch_msgs_per_s": batch,
        "alarm_write_msgs_per_s": alarm_rate,
    }


async def bench_drain(workdir: Path, url: str, backlog: int, n_alarms: int) -> dict[str, float]:
    box = Outbox(OutboxConfig(path=workdir / "drain.db", budget_bytes=2**40), GW)
    start = time.perf_counter()
    for i in range(0, backlog, 10_000):
        box.put_many([telemetry(box.next_seq()) for _ in range(min(10_000, backlog - i))])
    fill_s = time.perf_counter() - start
    print(f"backlog of {backlog} messages written in {fill_s:.1f} s ({box.bytes_used() / 2**20:.0f} MiB)")

    site = f"bench-{uuid.uuid4().hex[:8]}"
    uplink = Uplink(
        UplinkConfig(url=url, client_id=f"xq-bench-{site}"),
        site=site,
        gateway_id=GW,
        outbox=box,
        birth=lambda: GatewayState(gw=GW, seq=box.next_seq(), ts=datetime.now(UTC), state="online"),
    )
    acked_at: dict[int, float] = {}
    done = threading.Event()

    def on_ack(row: OutboxRow) -> None:
        if row.lane == "alarm":
            acked_at[row.id] = time.perf_counter()
            done.set()

    uplink.on_ack = on_ack
    task = asyncio.create_task(uplink.run())
    while not uplink.connected:
        await asyncio.sleep(0.01)
    start = time.perf_counter()
    overtakes: list[float] = []
    # Alarms raised at evenly spaced points of the drain (10 %, 20 %, ...), one at a time.
    for k in range(1, n_alarms + 1):
        while uplink.acked_total()["telemetry"] < backlog * k / (n_alarms + 2):
            await asyncio.sleep(0.005)
        done.clear()
        box.put(alarm(box.next_seq()))
        put_at = time.perf_counter()
        row_id = box.max_id("alarm")
        uplink.wake()
        while row_id not in acked_at:
            await asyncio.sleep(0.001)
        overtakes.append((acked_at[row_id] - put_at) * 1000)
    # Done when only the alarms are left: they wait for a backend Receipt, and there is no backend here.
    while sum(box.depth().values()) - sum(box.awaiting_receipt().values()) > 0:
        await asyncio.sleep(0.01)
    drain_s = time.perf_counter() - start
    await uplink.stop()
    await task
    box.close()
    return {
        "backlog_msgs": backlog,
        "backlog_fill_msgs_per_s": rate(backlog, fill_s),
        "drain_msgs_per_s": rate(backlog + n_alarms, drain_s),
        "alarm_overtake_ms": statistics.median(overtakes),
        "alarm_overtake_ms_max": max(overtakes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs (100k backlog)")
    parser.add_argument("--url", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--backlog", type=int, default=None)
    args = parser.parse_args()
    backlog = args.backlog or (100_000 if args.quick else 1_000_000)
    n_writes = 10_000 if args.quick else 50_000
    with tempfile.TemporaryDirectory(prefix="xq-bench-outbox-") as tmp:
        workdir = Path(tmp)
        figures: dict[str, float] = {}
        figures.update(bench_writes(workdir, n_writes, 200 if args.quick else 500))
        print(
            f"write: put() {figures['write_msgs_per_s']:.0f} msg/s vs bare SQLite insert "
            f"{figures['baseline_insert_msgs_per_s']:.0f} msg/s (ratio {figures['write_to_baseline_ratio']:.2f}); "
            f"put_many {figures['write_batch_msgs_per_s']:.0f} msg/s; alarms (fsync) "
            f"{figures['alarm_write_msgs_per_s']:.0f} msg/s"
        )
        figures.update(asyncio.run(bench_drain(workdir, args.url, backlog, 8)))
        print(
            f"drain: {figures['drain_msgs_per_s']:.0f} msg/s to {args.url} (QoS 1, delete on PUBACK); "
            f"alarm during the drain: PUBACK after {figures['alarm_overtake_ms']:.1f} ms median, "
            f"{figures['alarm_overtake_ms_max']:.1f} ms worst"
        )
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
