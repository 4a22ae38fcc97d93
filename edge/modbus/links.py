"""Modbus client adapters behind one small interface, chosen through an explicit registry.

A link wraps one pymodbus async client (one TCP connection, or one serial port shared by every unit on
the bus). It turns pymodbus' outcomes into three cases the poller handles differently:

- words/bits returned → :class:`ReadOk`;
- a Modbus exception response (the device answered "no") → :class:`ReadRefused` — the device is alive;
- no answer, connection refused/reset, garbled frame → :class:`LinkError` is raised — the link is suspect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

logger = logging.getLogger(__name__)

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure",
    5: "acknowledge", 6: "device busy", 10: "gateway path unavailable", 11: "gateway target failed to respond",
}


class LinkError(Exception):
    """No usable answer: connection refused or lost, timeout, garbled frame."""


@dataclass(frozen=True, slots=True)
class ReadOk:
    words: list[int] | list[bool]


@dataclass(frozen=True, slots=True)
class ReadRefused:
    code: int

    @property
    def reason(self) -> str:
        return f"Modbus exception {self.code}: {EXCEPTION_NAMES.get(self.code, 'unknown')}"


ReadResult = ReadOk | ReadRefused


class ModbusLink(Protocol):
    name: str
    requests_total: int

    async def connect(self) -> None: ...

    async def read(self, table: str, start: int, count: int, unit: int) -> ReadResult: ...

    async def write(self, table: str, address: int, values: Sequence[int], unit: int) -> ReadRefused | None: ...

    def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...


class PymodbusLink:
    """Common code for the pymodbus async clients (a fresh client per connection attempt)."""

    def __init__(self, name: str, make_client: Callable[[], Any]) -> None:
        self.name = name
        self._make_client = make_client
        self._client: Any = None
        self.requests_total = 0

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def connect(self) -> None:
        if self.connected:
            return
        self.close()
        client = self._make_client()
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            client.close()
            raise LinkError(f"{self.name}: cannot connect: {exc}") from None
        if not ok:
            client.close()
            raise LinkError(f"{self.name}: cannot connect (refused or no answer)")
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _call(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        if not self.connected:
            await self.connect()
        self.requests_total += 1
        fn = getattr(self._client, fn_name)
        try:
            resp = await fn(*args, **kwargs)
        except (ModbusException, OSError) as exc:
            self.close()
            raise LinkError(f"{self.name}: {exc}") from None
        if resp is None:
            self.close()
            raise LinkError(f"{self.name}: no response")
        return resp

    async def read(self, table: str, start: int, count: int, unit: int) -> ReadResult:
        fn_name = {
            "coil": "read_coils", "discrete_input": "read_discrete_inputs",
            "holding": "read_holding_registers", "input": "read_input_registers",
        }[table]
        resp = await self._call(fn_name, start, count=count, device_id=unit)
        if resp.isError():
            return ReadRefused(int(getattr(resp, "exception_code", 0)))
        if table in ("coil", "discrete_input"):
            return ReadOk([bool(b) for b in resp.bits[:count]])
        return ReadOk(list(resp.registers))

    async def write(self, table: str, address: int, values: Sequence[int], unit: int) -> ReadRefused | None:
        if table == "coil":
            bits = [bool(v) for v in values]
            if len(bits) == 1:
                resp = await self._call("write_coil", address, bits[0], device_id=unit)
            else:
                resp = await self._call("write_coils", address, bits, device_id=unit)
        elif len(values) == 1:
            resp = await self._call("write_register", address, int(values[0]), device_id=unit)
        else:
            resp = await self._call("write_registers", address, [int(v) for v in values], device_id=unit)
        if resp.isError():
            return ReadRefused(int(getattr(resp, "exception_code", 0)))
        return None


def tcp_link(host: str, port: int, timeout_s: float) -> PymodbusLink:
    def make() -> AsyncModbusTcpClient:
        # retries=0 and reconnect_delay=0: the poller owns retry and backoff, pymodbus must not add its own.
        return AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0)

    return PymodbusLink(f"modbus-tcp://{host}:{port}", make)


def rtu_link(port: str, baudrate: int, parity: str, timeout_s: float) -> PymodbusLink:
    def make() -> AsyncModbusSerialClient:
        return AsyncModbusSerialClient(port, baudrate=baudrate, parity=parity, timeout=timeout_s, retries=0,
                                       reconnect_delay=0)

    return PymodbusLink(f"modbus-rtu://{port}", make)
