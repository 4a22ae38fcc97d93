"""Installer tools run on the gateway: probe a device with its profile before commissioning it."""

from edge.onboard.probe import PointResult, ProbeReport, probe_modbus, probe_mqtt

__all__ = ["PointResult", "ProbeReport", "probe_modbus", "probe_mqtt"]
