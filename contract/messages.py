"""Message models of the contract, version 2.

Every message carries ``v`` (contract version), ``id`` (UUIDv7, unique and sortable), ``gw`` (the
gateway id), ``epoch`` and ``seq`` (the sender's boot epoch and a sequence number within it: ordering is
by ``(epoch, seq)``) and ``ts`` (when the thing it reports was observed at the device, not when it was
sent).

Version 2 added, over version 1: ``Event.key`` (what identifies an alarm at the device, e.g. one zone of
a panel) and ``Event.location`` (the zone's place when it is not the device's), ``epoch`` on every
message, the downlink ``Receipt`` (the backend committed these messages) and ``GatewayConfigPush``
(a gateway's configuration from the backend), the applied config version on the gateway's state, and the
gateway's own probe command (:data:`PROBE_COMMAND`) whose per-point results ride on ``CommandAck.probe``.
Version 1 messages are still accepted and upgraded by :func:`contract.codec.upgrade_v1` (``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from contract.base import StrictModel
from contract.ids import new_id

CONTRACT_VERSION: Literal[2] = 2
ACCEPTED_VERSIONS: tuple[int, ...] = (1, 2)
"""Versions the decoder takes: the current one, and version 1 upgraded on the way in."""

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
EventKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:#@/-]{1,128}$")]
"""What identifies one alarm condition at one device: the profile row and its instance (``fire.alarm#12``)."""
Scalar = bool | int | float | str
AlarmSeverity = Literal["critical", "major", "minor", "warning"]
"""How bad an alarm is, worst first. An event of severity ``info`` is recorded but never opens an alarm."""
Severity = AlarmSeverity | Literal["info"]
ALARM_SEVERITIES: tuple[AlarmSeverity, ...] = ("critical", "major", "minor", "warning")
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate((*ALARM_SEVERITIES, "info"))}
"""Sort key, worst first (``critical`` is 0)."""
Quality = Literal["good", "uncertain", "bad"]


class Envelope(StrictModel):
    v: Literal[2] = 2
    id: UUID = Field(default_factory=new_id, description="UUIDv7 message id; the backend is idempotent on it")
    gw: Identifier = Field(description="gateway id")
    epoch: int = Field(
        default=0, ge=0,
        description="the sender's boot epoch: a gateway's changes when its outbox is created anew (re-imaged box, "
        "new SD card); ordering is by (epoch, seq). 0 = unknown (version 1 senders, the backend's downlink)",
    )
    seq: int = Field(ge=0, description="sequence number within the sender's epoch")
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
    key: EventKey = Field(
        description="what identifies this condition at the device: the profile row and instance, e.g. "
        "'fire.alarm#12' for zone 12 of a panel. The backend keeps one active alarm per (device, key); "
        "a clear closes only its own key"
    )
    location: Location | None = Field(
        default=None, description="where the condition is, when the gateway knows better than the device's "
        "place (a panel zone's building and floor); absent = the device's location"
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
    config_version: int | None = Field(default=None, ge=0, description="the backend-pushed config in force")
    awaiting_receipt: int = Field(
        default=0, ge=0, description="outbox rows the broker acknowledged that wait for the backend's Receipt"
    )


class GatewayState(Envelope):
    """Retained on ``…/state``: a birth when the gateway connects, a death as its MQTT last will."""

    kind: Literal["state"] = "state"
    state: Literal["online", "offline"]
    reason: str | None = None
    software: str | None = None
    devices: list[DeviceInfo] = Field(default_factory=list)
    config_version: int | None = Field(
        default=None, ge=0, description="version of the backend-pushed config in force; absent = local file only"
    )
    config_error: str | None = Field(
        default=None, max_length=2000, description="why the last pushed config was refused (the old one runs on)"
    )


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


PROBE_COMMAND = "gateway.probe"
"""``Command.command`` of the gateway's own probe: read every point of the device once and answer with the
results in :attr:`CommandAck.probe`. Handled by the gateway itself, never sent to the device; a profile
command cannot have this name (profile command names have no dot). No arguments."""


CommandStatus = Literal["succeeded", "failed", "timed_out", "rejected", "expired", "refused"]
"""``rejected``: the gateway refused it (unknown device/command, bad arguments); ``refused``: the device
answered that it will not do it (e.g. a valve that stays shut while its gas alarm is active)."""


class ProbePoint(StrictModel):
    """One point of a probed device: what was read and decoded, and why not when it failed."""

    name: Name = Field(description="the profile's point name")
    label: str | None = Field(default=None, max_length=128, description="the profile's label (e.g. 火警)")
    source: str = Field(max_length=512, description="where it was read: 'holding 40 float32 CDAB', 'topic $.path'")
    value: Scalar | None = Field(default=None, description="the decoded value; null when it could not be read")
    shown: str = Field(default="", max_length=128, description="the value at the point's display precision")
    unit: str | None = Field(default=None, max_length=32)
    ok: bool
    reason: str | None = Field(default=None, max_length=512, description="why it failed (absent when ok)")


class CommandAck(Envelope):
    """Up on ``…/cmd/ack``: the outcome of one command."""

    kind: Literal["cmd_ack"] = "cmd_ack"
    command_id: UUID
    device: Identifier
    status: CommandStatus
    reason: str | None = None
    detail: dict[str, Scalar] = Field(default_factory=dict)
    probe: list[ProbePoint] | None = Field(
        default=None, max_length=2000,
        description=f"the answer to a {PROBE_COMMAND!r} command: one entry per point of the device's profile; "
        "absent for every other command",
    )


class Receipt(Envelope):
    """Down on ``…/receipt``: the backend has *committed* these uplink messages to its database.

    A broker PUBACK only says the broker has a message; the gateway keeps a life-safety message in its
    outbox (and re-sends it, same id) until a receipt names it. Sent after every commit that stored a
    message of a receipted kind (``contract.topics.RECEIPTED_KINDS``: events and command acks, so every message
    of the gateway's alarm lane), and again for a duplicate (already stored) so a re-send is settled.
    """

    kind: Literal["receipt"] = "receipt"
    ids: list[UUID] = Field(min_length=1, max_length=1000, description="message ids committed (or already stored)")


class GatewayConfigPush(Envelope):
    """Down on ``…/config`` (retained): the gateway's configuration kept by the backend, versioned.

    ``document`` is the YAML text of a gateway config file; the gateway validates it like a local file
    (errors name ``config v<version>:line: field``), applies it without a restart, keeps it as its last
    good config, and reports ``config_version`` or ``config_error`` on its state.
    """

    kind: Literal["config"] = "config"
    version: int = Field(ge=1)
    document: str = Field(min_length=1, max_length=1_000_000)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


Message = TelemetryBatch | Event | GatewayState | HealthReport | Command | CommandAck | Receipt | GatewayConfigPush

ALL_MESSAGES: tuple[type[Envelope], ...] = (
    TelemetryBatch, Event, GatewayState, HealthReport, Command, CommandAck, Receipt, GatewayConfigPush,
)
