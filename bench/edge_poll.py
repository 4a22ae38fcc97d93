"""Gateway polling benchmark: CPU of the poller for 100 Modbus devices x 10 points at 1 Hz, requests per cycle.

    .venv/bin/python bench/edge_poll.py [--quick] [--devices N] [--seconds S]

The device servers (pymodbus, one TCP port per device) run in a SEPARATE process so their CPU is not
counted. Measured in this process (time.process_time() / wall time, % of one core):

- gateway_cpu_pct_of_core: the real gateway path — BusPoller per device (coalesced reads), decode,
  DeviceRules (report by exception, event tracking), telemetry batching into an in-memory outbox.
- baseline_cpu_pct_of_core: bare pymodbus reads of the same blocks in a loop at the same rate, no decoding.
- requests_per_cycle vs contiguous_blocks: Modbus requests per full poll cycle of all devices vs the
  number of contiguous register runs (the lower bound); the goal is equal.

Prints the figures, then ONE JSON object as the last line. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._modbus_farm import BENCH_PROFILE, start_servers
from contract.messages import Message
from device_profiles import CompiledProfile, Profile
from device_profiles.read_plan import contiguous_runs, plan_reads
from edge.modbus import BusPoller, PolledDevice, PollStats, tcp_link
from edge.rules import DeviceRules, Emitter, SystemClock, TelemetryBatcher
from xiaoqu import processes

# ------------------------------------------------------------------ measurements

class CountingOutbox:
    epoch = 1

    def __init__(self) -> None:
        self.seq = 0
        self.messages = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def put(self, message: Message) -> None:
        self.messages += 1

    def depth(self) -> dict[str, int]:
        return {"alarm": 0, "event": 0, "telemetry": 0}

    def bytes_used(self) -> int:
        return 0

    def dropped_telemetry_total(self) -> int:
        return 0


async def run_gateway(ports: list[int], seconds: float) -> dict[str, float]:
    profile = CompiledProfile(Profile.model_validate(BENCH_PROFILE))
    blocks = plan_reads(profile.points, profile.profile.modbus)
    clock = SystemClock()
    outbox = CountingOutbox()
    emitter = Emitter(outbox, "bench")  # type: ignore[arg-type]
    batcher = TelemetryBatcher(emitter, clock)
    stats = PollStats()
    pollers = [
        BusPoller(tcp_link("127.0.0.1", port, 2.0),
                  [PolledDevice(f"m{i}", 1, blocks, 1.0, DeviceRules(f"m{i}", profile, emitter, batcher, clock))],
                  clock, stats=stats)
        for i, port in enumerate(ports)
    ]
    tasks = [asyncio.create_task(p.run()) for p in pollers] + [asyncio.create_task(batcher.run())]
    await asyncio.sleep(2.0)  # connect and warm up
    req0 = sum(p.link.requests_total for p in pollers)
    polls0 = stats.polls_total
    sent0 = stats.poll_requests_total
    window: list[float] = []
    stats.observers.append(window.append)
    w0, c0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    link_requests = sum(p.link.requests_total for p in pollers) - req0  # includes polls cut by the window
    polls = stats.polls_total - polls0
    requests = stats.poll_requests_total - sent0  # requests sent by the polls completed in the window
    lat = sorted(window)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cycles = polls / len(ports)
    return {
        "cpu_pct": 100.0 * cpu / wall,
        "requests_per_cycle": requests / cycles if cycles else float("nan"),
        "polls_per_s": polls / wall,
        "link_requests_per_s": link_requests / wall,
        "latency_p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "outbox_messages": outbox.messages,
        "blocks_per_device": len(blocks),
        "contiguous_per_device": contiguous_runs(profile.points),
    }


async def run_baseline(ports: list[int], seconds: float) -> dict[str, float]:
    from pymodbus.client import AsyncModbusTcpClient

    profile = CompiledProfile(Profile.model_validate(BENCH_PROFILE))
    blocks = plan_reads(profile.points, profile.profile.modbus)
    clients = [AsyncModbusTcpClient("127.0.0.1", port=p, timeout=2, retries=0, reconnect_delay=0) for p in ports]
    for c in clients:
        await c.connect()
    reads = 0

    async def one(c: Any) -> None:
        nonlocal reads
        for b in blocks:
            fn = c.read_input_registers if b.table == "input" else c.read_holding_registers
            await fn(b.start, count=b.count, device_id=1)
            reads += 1

    async def loop() -> None:
        task = asyncio.current_task()
        while task is None or not task.cancelling():  # see BusPoller.run: wait_for may swallow a cancel
            t = time.perf_counter()
            await asyncio.gather(*(one(c) for c in clients))
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))

    task = asyncio.create_task(loop())
    await asyncio.sleep(1.0)
    w0, c0, r0 = time.perf_counter(), time.process_time(), reads
    await asyncio.sleep(seconds)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for c in clients:
        c.close()
    return {"cpu_pct": 100.0 * cpu / wall, "reads_per_s": (reads - r0) / wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    processes.exit_on_stop_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: the servers' process is stopped
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    faulthandler.dump_traceback_later(2 * seconds + 120, exit=True)  # a hang prints every stack and exits
    proc, ports = start_servers(args.devices)
    try:
        gw = asyncio.run(run_gateway(ports, seconds))
        base = asyncio.run(run_baseline(ports, seconds))
    finally:
        proc.terminate()
        proc.wait(10)
    n = args.devices
    print(f"{n} devices x 10 points at 1 Hz for {seconds:g} s (servers in another process)")
    print(f"  gateway : {gw['cpu_pct']:.2f} % of one core, {gw['polls_per_s']:.1f} polls/s, "
          f"poll latency p50 {gw['latency_p50_ms']:.2f} ms, {gw['outbox_messages']} outbox messages")
    print(f"  baseline: {base['cpu_pct']:.2f} % of one core (bare pymodbus reads of the same blocks), "
          f"{base['reads_per_s']:.1f} reads/s")
    print(f"  requests per cycle {gw['requests_per_cycle']:.1f} vs contiguous blocks "
          f"{gw['contiguous_per_device'] * n} ({gw['blocks_per_device']} planned blocks per device)")
    ratio = gw["cpu_pct"] / base["cpu_pct"] if base["cpu_pct"] > 0 else float("nan")
    print(f"  gateway / baseline CPU: {ratio:.2f}x")
    print(json.dumps({
        "devices": n,
        "points_per_device": 10,
        "cpu_pct_of_core": round(gw["cpu_pct"], 2),
        "baseline_cpu_pct_of_core": round(base["cpu_pct"], 2),
        "cpu_ratio_to_baseline": round(ratio, 2),
        "requests_per_cycle": round(gw["requests_per_cycle"], 2),
        "contiguous_blocks": gw["contiguous_per_device"] * n,
        "polls_per_s": round(gw["polls_per_s"], 1),
        "poll_latency_p50_ms": round(gw["latency_p50_ms"], 2),
        "seconds": seconds,
    }))


if __name__ == "__main__":
    main()
