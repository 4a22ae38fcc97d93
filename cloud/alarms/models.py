"""The alarms domain as typed records: alarms, their timeline and comments, incidents, maintenance windows,
and the rows the decision engine decides on.

Every record is a :class:`cloud.records.Record`: built from a database row in one place and read with an
explicit column list, so a column the model does not know is never selected and a missing one fails at the
query, not later in policy code. Records are immutable;
``detail`` / ``evidence`` stay JSON (``JsonValue``) as the ``jsonb`` columns hold them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import JsonValue

from cloud.records import Record
from contract.messages import AlarmSeverity, Severity

IncidentState = Literal["open", "closed"]
LinkOutcome = Literal["pending", "raised", "occurrence", "cleared", "suppressed", "folded", "damped", "ignored"]


class Alarm(Record):
    """One alarm: active/cleared × unacknowledged/acknowledged, unique while active per (device, key)."""

    id: int
    site_id: str | None
    gateway_id: str | None
    device_id: str
    key: str
    type: str
    severity: AlarmSeverity
    life_safety: bool
    building: str | None
    floor: int | None
    unit: str | None
    area: str | None
    active: bool
    acknowledged: bool
    acked_by: str | None
    acked_at: datetime | None
    cleared_by: str | None
    cleared_at: datetime | None
    first_ts: datetime
    last_ts: datetime
    created_at: datetime
    occurrence_count: int
    folded_count: int
    assignee: str | None
    evidence: list[JsonValue]
    detail: dict[str, JsonValue]
    incident_id: int | None
    escalation_level: int
    next_escalation_at: datetime | None
    flapping: bool
    clear_pending_at: datetime | None


class AlarmTimelineEntry(Record):
    """Something that happened to an alarm (raised, occurrence, acknowledged, escalated, shown, …)."""

    ts: datetime
    kind: str
    actor: str
    detail: dict[str, JsonValue]


class AlarmComment(Record):
    id: int
    alarm_id: int
    ts: datetime
    author: str
    text: str


class AlarmDetail(Alarm):
    """An alarm with its timeline and comments (oldest first)."""

    timeline: list[AlarmTimelineEntry]
    comments: list[AlarmComment]


class RaiseResult(Record):
    """What :func:`cloud.alarms.repository.raise_alarm` did: opened ``alarm`` (created) or counted one more."""

    alarm: Alarm
    created: bool


class Incident(Record):
    """A confirmed situation (fire, entrapment) in a building, grouping the alarms that confirmed it."""

    id: int
    site_id: str
    building: str
    floor: int | None
    kind: str
    rule: str
    state: IncidentState
    alarm_ids: list[int]
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    detail: dict[str, JsonValue]


class IncidentDetail(Incident):
    """An incident with its alarms, its linkage commands and its work orders.

    Commands and work orders are the dispatch domain's rows as JSON objects."""

    alarms: list[Alarm]
    commands: list[dict[str, JsonValue]]
    work_orders: list[dict[str, JsonValue]]


class SuppressionWindow(Record):
    """A maintenance / 屏蔽 window: matching devices' events raise no alarm while it lasts."""

    id: int
    site_id: str
    building: str | None
    floor: int | None
    device_id: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime


# ---------------------------------------------------------------------- rows the engine decides on


class AlarmEvent(Record):
    """A stored event with what the engine needs to decide on it: its alarm key and its place (the event's
    location when the gateway gave one, else the device's)."""

    id: UUID
    device_id: str
    type: str
    severity: Severity | str
    active: bool
    life_safety: bool
    ts: datetime
    detail: dict[str, JsonValue]
    evidence: list[JsonValue]
    alarm_key: str
    site_id: str | None
    building: str | None
    floor: int | None
    unit: str | None
    area: str | None
    profile_id: str | None
    gateway_state: str | None
    gw: str | None


class ActiveSignal(Record):
    """An active alarm as a correlation signal: (device, key) raised at ``first_ts``."""

    id: int
    device_id: str
    key: str
    first_ts: datetime


class FoldedChild(Record):
    """An active offline alarm of a device behind a gateway."""

    id: int
    device_id: str


class SilentDevice(Record):
    """A device not heard from since ``last_seen``, with its gateway's offline alarm (if any) and whether it has
    an offline alarm of its own."""

    id: str
    site_id: str | None
    gateway_id: str | None
    building: str | None
    floor: int | None
    profile_id: str | None
    last_seen: datetime
    gw_alarm: int | None
    has_alarm: bool


class GatewayRef(Record):
    id: str
    site_id: str


class GatewayStatus(Record):
    site_id: str
    state: str


class DeviceRoute(Record):
    """Where a device's commands go."""

    site_id: str | None
    gateway_id: str | None
    profile_id: str | None


class LinkageTarget(Record):
    device_id: str
    gateway_id: str


class WelfareUnit(Record):
    """A unit flagged for welfare checks without an open check, and its last door activity."""

    site_id: str
    building: str
    unit: str
    last_activity: datetime | None
