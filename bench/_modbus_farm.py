"""Benchmark helper: N pymodbus TCP devices (10 points each, ``BENCH_PROFILE``) served by a separate process.

``start_servers(n)`` runs ``python bench/_modbus_farm.py N`` (so the servers' CPU is not the bench's) and
returns the process and the ports; a tenth of the devices change a value every second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xiaoqu import processes

BENCH_PROFILE = {
    "id": "bench-meter", "vendor": "bench", "model": "10 points", "device_type": "meter", "protocol": "modbus_tcp",
    "modbus": {"poll_interval_s": 1.0, "timeout_s": 2.0},
    "points": [
        *[{"name": f"in{i}", "register": {"table": "input", "address": i, "type": "uint16"}} for i in range(6)],
        {"name": "flow", "deadband": 0.5, "register": {"table": "holding", "address": 10, "type": "float32"}},
        {"name": "temp", "deadband": 0.5, "register": {"table": "holding", "address": 12, "type": "float32"}},
        {"name": "mode", "register": {"table": "holding", "address": 14, "type": "uint16"}},
        {"name": "alarm", "register": {"table": "holding", "address": 15, "bit": 0}},
    ],
    "events": [{"type": "meter.alarm", "severity": "major", "when": {"point": "alarm", "eq": True}}],
}


# ------------------------------------------------------------------ device servers (separate process)

async def _serve(n: int) -> None:
    import random

    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.server import ModbusTcpServer

    logging.disable(logging.WARNING)
    servers: list[Any] = []
    ports: list[int] = []
    for _ in range(n):
        ctx = ModbusServerContext(devices={1: ModbusDeviceContext(
            ir=ModbusSequentialDataBlock(1, [random.randint(0, 100) for _ in range(32)]),  # type: ignore[no-untyped-call]
            hr=ModbusSequentialDataBlock(1, [random.randint(0, 100) for _ in range(32)]),  # type: ignore[no-untyped-call]
        )}, single=False)
        server = ModbusTcpServer(ctx, address=("127.0.0.1", 0))
        servers.append(server)
    tasks = [asyncio.create_task(s.serve_forever()) for s in servers]
    for _ in range(200):
        if all(s.transport is not None for s in servers):
            break
        await asyncio.sleep(0.05)
    for s in servers:
        ports.append(s.transport.sockets[0].getsockname()[1])
    print(json.dumps(ports), flush=True)
    # change a value now and then so report-by-exception has something to report
    while True:
        await asyncio.sleep(1.0)
        for s in servers[: max(1, n // 10)]:
            await s.context.async_setValues(1, 4, 0, [random.randint(0, 100)])
    await asyncio.gather(*tasks)


def start_servers(n: int) -> tuple[subprocess.Popen[str], list[int]]:
    proc = processes.spawn([sys.executable, __file__, str(n)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)  # dies with the bench, even by SIGKILL
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, json.loads(line)


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
