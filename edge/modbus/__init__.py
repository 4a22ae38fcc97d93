"""Modbus polling: client adapters (registry by connection kind) and one poller per connection or bus."""

from edge.modbus.links import LinkError, ModbusLink, PymodbusLink, ReadOk, ReadRefused, rtu_link, tcp_link
from edge.modbus.poller import BusPoller, PolledDevice, PollStats, WriteFailed

__all__ = [
    "BusPoller",
    "LinkError",
    "ModbusLink",
    "PollStats",
    "PolledDevice",
    "PymodbusLink",
    "ReadOk",
    "ReadRefused",
    "WriteFailed",
    "rtu_link",
    "tcp_link",
]
