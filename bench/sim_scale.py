"""1,000 simulated Modbus devices in one process: start time, memory and reads/s served.

Two layouts of the same devices are measured (alternating fire panels gst-fp200 and elevators acme-em200):

- ``ports``: every device on its own TCP port (one pymodbus server each);
- ``bus``: devices behind Modbus TCP gateways, up to 200 unit ids per port.

Load: a separate process (so server and load each get a core) runs ``--workers`` asyncio workers, each
with its own connections, sending "read input registers 0..2" round-robin over every device and
waiting for each answer (raw Modbus TCP frames, so the client costs little). Baseline, same run, same
load generator: a stock pymodbus server (``SimDevice``) with a single device.

    .venv/bin/python bench/sim_scale.py            # 1,000 devices, 5 s per measurement
    .venv/bin/python bench/sim_scale.py --quick    # 200 devices, 2 s

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

from device_profiles.loader import load_catalog
from simulators.modbus import ModbusBus, ModbusDevice, ModbusPortServer
from xiaoqu import processes

UNITS_PER_BUS = 200


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ---------------------------------------------------------------------- load generator (child process)


async def _worker(targets: list[tuple[int, int]], deadline_at: float, counts: list[int], errors: list[int]) -> None:
    conns: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    for port, _ in targets:
        if port not in conns:
            conns[port] = await asyncio.open_connection("127.0.0.1", port)
    tid = 0
    i = 0
    while time.monotonic() < deadline_at:
        port, unit = targets[i % len(targets)]
        i += 1
        tid = (tid + 1) & 0xFFFF
        reader, writer = conns[port]
        writer.write(struct.pack(">HHHBBHH", tid, 0, 6, unit, 4, 0, 3))
        header = await reader.readexactly(7)
        _tid, _proto, length, _unit = struct.unpack(">HHHB", header)
        body = await reader.readexactly(length - 1)
        if body[0] & 0x80 or _tid != tid:
            errors[0] += 1
        else:
            counts[0] += 1
    for _, writer in conns.values():
        writer.close()


async def _generate(targets: list[tuple[int, int]], workers: int, seconds: float) -> dict[str, float]:
    counts, errors = [0], [0]
    workers = min(workers, len(targets))
    shares = [targets[i::workers] for i in range(workers)]
    start = time.monotonic()
    deadline_at = start + seconds
    await asyncio.gather(*(_worker(s, deadline_at, counts, errors) for s in shares))
    elapsed = time.monotonic() - start
    return {"reads": counts[0], "errors": errors[0], "seconds": elapsed}


def generator_main(parent: int) -> None:
    processes.die_with_parent(parent=parent)
    spec = json.loads(sys.stdin.read())
    result = asyncio.run(_generate([tuple(t) for t in spec["targets"]], spec["workers"], spec["seconds"]))
    print(json.dumps(result))


async def load(targets: list[tuple[int, int]], workers: int, seconds: float) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--generator", str(os.getpid()), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = await proc.communicate(json.dumps({"targets": targets, "workers": workers,
                                                "seconds": seconds}).encode())
    result: dict[str, float] = json.loads(out)
    result["reads_per_s"] = result["reads"] / result["seconds"]
    return result


# ---------------------------------------------------------------------- measurements


async def baseline(workers: int, seconds: float) -> dict[str, float]:
    """A stock pymodbus server with one device, the same load generator."""
    device = SimDevice(1, simdata=[SimData(0, count=16, values=0, datatype=DataType.REGISTERS)])
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    listener: Any = server.transport
    port = int(listener.sockets[0].getsockname()[1])
    try:
        return await load([(port, 1)] * workers, workers, seconds)
    finally:
        await cast(Any, server).shutdown()


async def simulated(n: int, mode: str, workers: int, seconds: float) -> dict[str, float]:
    catalog = load_catalog()
    profiles = [catalog.get("gst-fp200"), catalog.get("acme-em200")]
    rss0 = rss_mb()
    t0 = time.monotonic()
    devices = []
    servers: list[ModbusPortServer] = []
    bus: ModbusBus | None = None
    for i in range(n):
        if mode == "ports" or bus is None or len(bus.devices) >= UNITS_PER_BUS:
            bus = ModbusBus()
            servers.append(ModbusPortServer(bus))
        unit = 1 if mode == "ports" else len(bus.devices) + 1
        dev = ModbusDevice(f"d{i}", profiles[i % 2], unit=unit)
        bus.add(dev)
        devices.append(dev)
    for s in servers:
        await s.start()
    start_s = time.monotonic() - t0
    rss = rss_mb()
    targets = [(s.port, unit) for s in servers for unit in s.bus.devices]
    try:
        result = await load(targets, workers, seconds)
    finally:
        for s in servers:
            await s.stop()
    served = sum(d.requests_served for d in devices)
    untouched = sum(1 for d in devices if d.requests_served == 0)
    return {"devices": n, "ports": len(servers), "start_s": start_s, "rss_mb": rss, "rss_delta_mb": rss - rss0,
            "reads_per_s": result["reads_per_s"], "errors": result["errors"], "served": served,
            "devices_not_read": untouched}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    base = await baseline(args.workers, args.seconds)
    print(f"baseline: one pymodbus device, {args.workers} workers: {base['reads_per_s']:.0f} reads/s")
    out: dict[str, Any] = {"baseline_reads_per_s": round(base["reads_per_s"], 1)}
    for mode in ("ports", "bus"):
        r = await simulated(args.devices, mode, args.workers, args.seconds)
        ratio = r["reads_per_s"] / base["reads_per_s"]
        print(f"{mode:>5}: {r['devices']} devices on {r['ports']} ports up in {r['start_s']:.2f} s, "
              f"RSS {r['rss_mb']:.0f} MB (+{r['rss_delta_mb']:.0f} MB), {r['reads_per_s']:.0f} reads/s "
              f"({ratio:.2f}x baseline), {r['errors']} errors, {r['devices_not_read']} devices never read")
        out[f"{mode}_start_s"] = round(r["start_s"], 3)
        out[f"{mode}_rss_mb"] = round(r["rss_mb"], 1)
        out[f"{mode}_reads_per_s"] = round(r["reads_per_s"], 1)
        out[f"{mode}_ratio_to_baseline"] = round(ratio, 3)
        out[f"{mode}_errors"] = r["errors"]
    out["devices"] = args.devices
    out["workers"] = args.workers
    # headline figures: the one-port-per-device layout (the harder case)
    out["start_s"] = out["ports_start_s"]
    out["rss_mb"] = out["ports_rss_mb"]
    out["reads_per_s"] = out["ports_reads_per_s"]
    out["ratio_to_baseline"] = out["ports_ratio_to_baseline"]
    return out


if __name__ == "__main__":
    if "--generator" in sys.argv:
        generator_main(int(sys.argv[sys.argv.index("--generator") + 1]))
        sys.exit(0)
    processes.exit_on_stop_signals()  # SIGTERM/SIGHUP unwind like Ctrl-C: the generator child is stopped
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 devices, 2 s per measurement")
    ap.add_argument("--devices", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--workers", type=int, default=32)
    a = ap.parse_args()
    a.devices = a.devices or (200 if a.quick else 1000)
    a.seconds = a.seconds or (2.0 if a.quick else 5.0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(asyncio.run(main(a))))
