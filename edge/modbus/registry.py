"""The explicit registry of Modbus link adapters, by connection kind, and how connections group into buses."""

from __future__ import annotations

from collections.abc import Callable

from edge.config import ModbusRtuConnection, ModbusTcpConnection
from edge.modbus.links import ModbusLink, rtu_link, tcp_link

ModbusConnection = ModbusTcpConnection | ModbusRtuConnection


def _tcp(conn: ModbusConnection, timeout_s: float) -> ModbusLink:
    assert isinstance(conn, ModbusTcpConnection)
    return tcp_link(conn.host, conn.port, timeout_s)


def _rtu(conn: ModbusConnection, timeout_s: float) -> ModbusLink:
    assert isinstance(conn, ModbusRtuConnection)
    return rtu_link(conn.port, conn.baudrate, conn.parity, timeout_s)


LINKS: dict[str, Callable[[ModbusConnection, float], ModbusLink]] = {
    "modbus_tcp": _tcp,
    "modbus_rtu": _rtu,
}


def bus_key(conn: ModbusConnection) -> str:
    """Devices with the same key share one poller and one client: host:port for TCP, the port for serial."""
    if isinstance(conn, ModbusTcpConnection):
        return f"modbus_tcp://{conn.host}:{conn.port}"
    return f"modbus_rtu://{conn.port}"
