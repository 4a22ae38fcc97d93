"""Helpers for the gateway-agent tests: an in-memory outbox, a fake clock, a pymodbus test server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

from contract.messages import CommandAck, Event, Message, TelemetryBatch


class FakeOutbox:
    """In-memory stand-in for edge.uplink.Outbox (unit tests only)."""

    epoch = 1_764_000_000_000

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def put(self, message: Message) -> None:
        self.messages.append(message)

    def depth(self) -> dict[str, int]:
        out = {"alarm": 0, "event": 0, "telemetry": 0}
        for m in self.messages:
            if isinstance(m, Event):
                out["alarm" if m.life_safety else "event"] += 1
            elif isinstance(m, TelemetryBatch):
                out["telemetry"] += 1
            else:
                out["event"] += 1
        return out

    def bytes_used(self) -> int:
        return 0

    def dropped_telemetry_total(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def events(self, event: str | None = None) -> list[Event]:
        return [m for m in self.messages if isinstance(m, Event) and (event is None or m.event == event)]

    def acks(self) -> list[CommandAck]:
        return [m for m in self.messages if isinstance(m, CommandAck)]

    def samples(self) -> list[tuple[str, str, Any, str]]:
        return [(p.device, p.point, p.value, p.quality)
                for m in self.messages if isinstance(m, TelemetryBatch) for p in m.points]


class FakeClock:
    """Virtual time: ``sleep`` advances it (and yields to the loop for real IO)."""

    def __init__(self, real_yield_s: float = 0.002) -> None:
        self.t = 1000.0
        self.base = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
        self.real_yield_s = real_yield_s

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.base + timedelta(seconds=self.t - 1000.0)

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(self.real_yield_s)

    def advance(self, seconds: float) -> None:
        self.t += seconds


async def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait (real time) until ``cond()`` is truthy; fail with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class ModbusTestServer:
    """A pymodbus TCP server with plain register blocks per unit; ``port`` fixed so it can be restarted."""

    def __init__(self, port: int, units: dict[int, dict[str, list[int]]], size: int = 256) -> None:
        self.port = port
        self.contexts: dict[int, ModbusDeviceContext] = {}
        for unit, tables in units.items():
            def block(name: str, tables: dict[str, list[int]] = tables) -> ModbusSequentialDataBlock:
                vals = tables.get(name, [])
                # pymodbus' device context maps protocol address a to block index a + 1.
                return ModbusSequentialDataBlock(1, (list(vals) + [0] * size)[:size])

            self.contexts[unit] = ModbusDeviceContext(di=block("di"), co=block("co"), hr=block("hr"), ir=block("ir"))
        self.context = ModbusServerContext(devices=self.contexts, single=False)
        self.server: ModbusTcpServer | None = None
        self.task: asyncio.Task[None] | None = None
        self.core: Any = None  # the server's datastore, kept across restarts

    async def start(self) -> ModbusTestServer:
        self.server = ModbusTcpServer(self.context, address=("127.0.0.1", self.port))
        if self.core is None:
            self.core = self.server.context
        else:
            self.server.context = self.core
        self.task = asyncio.create_task(self.server.serve_forever())
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return self
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError("pymodbus server did not start")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.server = self.task = None

    async def set(self, unit: int, table: str, address: int, values: list[int]) -> None:
        fc = {"ir": 4, "hr": 3, "co": 1, "di": 2}[table]
        await self.core.async_setValues(unit, fc, address, values)

    async def get(self, unit: int, table: str, address: int, count: int = 1) -> list[int]:
        fc = {"ir": 4, "hr": 3, "co": 1, "di": 2}[table]
        return list(await self.core.async_getValues(unit, fc, address, count))

    async def __aenter__(self) -> ModbusTestServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
