"""The run report: what was injected and when (scenario and wall time), plus where every device listens.

Other tests compare what the system did against ``injected``: each record has the scheduled scenario
time (``at``), the scenario time it actually happened (``sim_time``), the wall time, the device, the
action, its parameters and the outcome.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from contract.base import StrictModel

Outcome = Literal["ok", "skipped", "error"]


class InjectedRecord(StrictModel):
    seq: int
    at: float = Field(description="scheduled scenario time, s")
    sim_time: float = Field(description="scenario time when it was done, s")
    wall_time: str = Field(description="ISO 8601 UTC")
    wall_unix: float
    device: str | None
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    outcome: Outcome = "ok"
    detail: str | None = None


class DeviceCounts(StrictModel):
    modbus: int
    modbus_ports: int
    mqtt: int
    mqtt_connected: int
    cameras: int


class Report(StrictModel):
    site: str
    layout: str
    scenario: str | None
    seed: int
    speed: float
    started_at: str
    ended_at: str
    scenario_seconds: float
    start_s: float = Field(description="wall seconds to bring every device up")
    devices: DeviceCounts
    camera_status: str
    ports: dict[str, Any]
    injected: list[InjectedRecord] = Field(default_factory=list)
    modbus_requests_served: int = 0

    def summary(self) -> str:
        lines = [
            f"site {self.site} — layout {self.layout}, scenario {self.scenario or '(none)'}, seed {self.seed}, "
            f"speed {self.speed}×",
            f"devices: {self.devices.modbus} Modbus on {self.devices.modbus_ports} ports, "
            f"{self.devices.mqtt_connected}/{self.devices.mqtt} MQTT connected, {self.devices.cameras} cameras "
            f"({self.camera_status}); up in {self.start_s:.1f} s",
            f"ran {self.scenario_seconds:.1f} scenario s from {self.started_at} to {self.ended_at}; "
            f"{self.modbus_requests_served} Modbus requests served",
        ]
        counts = {o: sum(1 for r in self.injected if r.outcome == o) for o in ("ok", "skipped", "error")}
        lines.append(f"injected: {counts['ok']} ok, {counts['skipped']} skipped, {counts['error']} failed")
        for r in self.injected:
            params = ", ".join(f"{k}={v}" for k, v in r.params.items())
            tail = f" — {r.outcome}: {r.detail}" if r.outcome != "ok" else ""
            dev = r.device or "-"
            lines.append(f"  t={r.at:8.1f}s (at {r.sim_time:8.1f}s)  {dev:<18} {r.action:<15} {params}{tail}")
        return "\n".join(lines)
