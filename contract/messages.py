"""Message models of the contract, version 1.

Every message carries ``v`` (contract version), ``id`` (UUIDv7, unique and sortable), ``gw`` (the
gateway id), ``seq`` (a per-gateway sequence number, monotonically increasing across restarts of the
sender) and ``ts`` (when the thing it reports was observed at the device, not when it was sent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from contract.base import StrictModel
from contract.ids import new_id

CONTRACT_VERSION: Literal[1] = 1

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Scalar = bool | int | float | str
Severity = Literal["critical", "major", "minor", "warning", "info"]
Quality = Literal["good", "uncertain", "bad"]


class Envelope(StrictModel):
    v: Literal[1] = 1
    id: UUID = Field(default_factory=new_id, description="UUIDv7 message id; the backend is idempotent on it")
    gw: Identifier = Field(description="gateway id")
    seq: int = Field(ge=0, description="per-gateway sequence number")
    ts: AwareDatetime = Field(description="observation time at the device (UTC recommended)")


class Location(StrictModel):
    site: Identifier
    building: Name
    floor: int | None = Field(default=None, description="floor number; negative for basements")
    unit: Name | None = None
    area: Name | None = Field(default=None, description="free text, e.g. 'corridor', 'lobby', 'car 1'")


class DeviceInfo(StrictModel):
    """A device the gateway serves, announced in its birth message."""

    device: Identifier
    profile: Identifier
    location: Location
    name: Name | None = None


class PointSample(StrictModel):
    device: Identifier
    point: Name
    ts: AwareDatetime
    value: Scalar
    quality: Quality = "good"


class TelemetryBatch(Envelope):
    kind: Literal["telemetry"] = "telemetry"
    points: list[PointSample] = Field(min_length=1, max_length=10_000)


class EvidenceRef(StrictModel):
    """A file (snapshot, clip) uploaded over HTTP; the message only refers to it."""

    ref: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
    content_type: Literal["image/jpeg", "image/png", "video/mp4"] = "image/jpeg"
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: int = Field(ge=0)


class Event(Envelope):
    """Something that happened at a device: an alarm raised or cleared, a state change, an action."""

    kind: Literal["event"] = "event"
    device: Identifier
    event: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")] = Field(
        description="event type, dotted, e.g. 'fire.alarm', 'elevator.entrapment', 'linkage.action'"
    )
    severity: Severity
    active: bool = Field(description="true when the condition was raised, false when it cleared")
    life_safety: bool = Field(default=False, description="goes in the gateway's top-priority lane")
    detail: dict[str, Scalar] = Field(default_factory=dict)
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=16)


class GatewayHealth(StrictModel):
    outbox_depth: dict[Literal["alarm", "event", "telemetry"], int]
    outbox_bytes: int = Field(ge=0)
    uplink_connected: bool
    devices_online: int = Field(ge=0)
    devices_offline: int = Field(ge=0)
    poll_latency_ms_p50: float | None = None
    dropped_telemetry_total: int = Field(default=0, ge=0)


class GatewayState(Envelope):
    """Retained on ``…/state``: a birth when the gateway connects, a death as its MQTT last will."""

    kind: Literal["state"] = "state"
    state: Literal["online", "offline"]
    reason: str | None = None
    software: str | None = None
    devices: list[DeviceInfo] = Field(default_factory=list)


class HealthReport(Envelope):
    kind: Literal["health"] = "health"
    health: GatewayHealth


class Command(Envelope):
    """Down on ``…/cmd``: run a profile command on one device. ``id`` is the command id."""

    kind: Literal["cmd"] = "cmd"
    device: Identifier
    command: Identifier
    args: dict[str, Scalar] = Field(default_factory=dict)
    expires_at: datetime | None = Field(default=None, description="do not execute after this time")
    origin: str | None = Field(default=None, description="who or what issued it, for the audit log")


CommandStatus = Literal["succeeded", "failed", "timed_out", "rejected", "expired"]


class CommandAck(Envelope):
    """Up on ``…/cmd/ack``: the outcome of one command."""

    kind: Literal["cmd_ack"] = "cmd_ack"
    command_id: UUID
    device: Identifier
    status: CommandStatus
    reason: str | None = None
    detail: dict[str, Scalar] = Field(default_factory=dict)


Message = TelemetryBatch | Event | GatewayState | HealthReport | Command | CommandAck

ALL_MESSAGES: tuple[type[Envelope], ...] = (TelemetryBatch, Event, GatewayState, HealthReport, Command, CommandAck)
