"""Request and response models of the console routes (``cloud/api/routers/console.py``: the compound
layout, device and gateway health, readings around an alarm, the workers to dispatch to) and of the
installer's (``cloud/api/routers/installer.py``: a device's events, points, probe and commissioning).

Outputs read from the database (``…Row``) ignore columns they do not name; inputs refuse unknown keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from contract.base import StrictModel
from contract.messages import AlarmSeverity, ProbePoint, Severity

DEFAULT_TZ = "Asia/Shanghai"

PointStatus = Literal["good", "uncertain", "bad", "missing"]


class Out(BaseModel):
    """A response body: built from rows and values (unnamed columns ignored), immutable."""

    model_config = ConfigDict(frozen=True)


# ---------------------------------------------------------------------------------------------- layout


class BuildingIn(StrictModel):
    """A building as declared for the map: its floors above and below ground and units per floor."""

    id: str = Field(min_length=1, max_length=64)
    name: str = ""
    floors: int = Field(ge=1, le=200)
    basement_floors: int = Field(default=0, ge=0, le=10)
    units_per_floor: int = Field(default=0, ge=0, le=64)


class LayoutIn(StrictModel):
    timezone: str = DEFAULT_TZ
    buildings: list[BuildingIn] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (IANA name expected, e.g. Asia/Shanghai)") from None
        return v


class LayoutSaved(Out):
    """The layout as stored by ``PUT /api/sites/{site_id}/layout``."""

    site_id: str
    timezone: str
    buildings: list[BuildingIn]


class SiteInfo(Out):
    id: str
    name: str
    timezone: str


class AlarmedFloor(Out):
    floor: int
    severity: AlarmSeverity = Field(description="the worst active alarm's severity on that floor")


class BuildingSummary(Out):
    """One building of the map: its floors (top first) and what its devices and active alarms say."""

    id: str
    name: str
    floors: list[int] = Field(description="floor numbers, top first; basements negative, no floor 0")
    units_per_floor: int
    devices: int
    online: int
    offline: int
    active_alarms: int
    worst_severity: AlarmSeverity | None
    alarmed_floors: list[AlarmedFloor]


class LayoutDevice(Out):
    """A device marker: where it is, its presence and its worst active alarm (``alarm_*``, null without)."""

    id: str
    profile_id: str
    gateway_id: str | None
    building: str | None
    floor: int | None
    unit: str | None
    area: str | None
    name: str | None
    state: str = Field(description="online | offline | unknown")
    last_seen: datetime | None
    alarm_id: int | None
    alarm_type: str | None
    alarm_severity: AlarmSeverity | None
    alarm_acked: bool | None


class MapAlarm(Out):
    """An active alarm located in a building (a panel zone's floor may differ from its device's)."""

    id: int
    device_id: str
    building: str | None
    floor: int | None
    unit: str | None
    key: str
    type: str
    severity: AlarmSeverity
    acknowledged: bool
    detail: dict[str, JsonValue]


class SiteLayout(Out):
    """``GET /api/sites/{site_id}/layout``: the compound map, grid-scoped."""

    site: SiteInfo
    buildings: list[BuildingSummary]
    devices: list[LayoutDevice]
    remote_alarms: list[MapAlarm] = Field(
        description="active alarms located on another floor than their device (a panel zone's): pins on the map"
    )


# ---------------------------------------------------------------------------------------------- health


class GatewayHealth(Out):
    id: str
    site_id: str
    state: str = Field(description="online | offline | unknown (from birth / last will)")
    state_reason: str | None
    last_seen: datetime | None
    software: str | None
    health: dict[str, JsonValue] | None = Field(description="the gateway's latest health report (outbox depth …)")
    health_at: datetime | None
    config_version: int | None
    config_error: str | None
    devices: int
    online: int
    offline: int


class DeviceHealth(Out):
    id: str
    profile_id: str
    gateway_id: str | None
    site_id: str
    building: str | None
    floor: int | None
    unit: str | None
    name: str | None
    state: str = Field(description="online | offline | unknown")
    last_seen: datetime | None


class ConsoleHealth(Out):
    gateways: list[GatewayHealth]
    devices: list[DeviceHealth]


# ---------------------------------------------------------------------------------------------- readings


class Series(Out):
    """One point's rollups: ``ts`` and the three value lists are parallel."""

    point: str
    ts: list[datetime]
    avg: list[float | None]
    min: list[float | None]
    max: list[float | None]


class AlarmReadings(Out):
    """``GET /api/alarms/{alarm_id}/readings``: up to eight series, the varying analogue points first."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    alarm_id: int
    device_id: str
    profile_id: str | None
    resolution: Literal["1m", "5m"]
    from_: datetime = Field(alias="from")
    to: datetime
    event_ts: datetime
    series: list[Series]


# ---------------------------------------------------------------------------------------------- people


class WorkerOut(Out):
    username: str
    full_name: str | None
    grid_id: str | None
    on_duty: bool = Field(description="a roster shift covers now")


# ---------------------------------------------------------------------------------------------- installer


class DeviceEvent(Out):
    id: UUID
    type: str
    severity: Severity
    active: bool
    ts: datetime = Field(description="observed at the device")
    received_at: datetime
    detail: dict[str, JsonValue]


class PointCounts(Out):
    good: int
    uncertain: int
    bad: int
    missing: int


class PointReading(Out):
    name: str
    label: str | None
    unit: str | None
    value: float | str | None
    ts: datetime | None
    status: PointStatus = Field(description="good, uncertain, bad (the read failed) or missing (nothing since)")


class DevicePoints(Out):
    """``GET /api/devices/{device_id}/points``: each profile point's latest value and its quality."""

    device_id: str
    profile_id: str
    since: datetime
    counts: PointCounts
    points: list[PointReading]


class CheckIn(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    passed: bool
    detail: str | None = Field(default=None, max_length=2000)


class CommissioningIn(StrictModel):
    checks: list[CheckIn] = Field(min_length=1)
    note: str | None = Field(default=None, max_length=4000)


class Location(Out):
    building: str | None
    floor: int | None
    unit: str | None


class CommissioningRecord(Out):
    """What ``device.commission`` puts into the audit log."""

    passed: bool = Field(description="every check passed")
    checks: list[CheckIn]
    note: str | None
    location: Location
    profile_id: str


class CommissioningOut(CommissioningRecord):
    device_id: str


# ---------------------------------------------------------------------------------------------- probe


class ProbeOut(StrictModel):
    """A probe through the gateway: its command's state and, once answered, one result per point."""

    command_id: UUID
    device_id: str
    profile_id: str | None
    gateway_id: str
    state: str = Field(description="the command's state: queued, sent, then succeeded (every point passed), "
                       "failed (some did; reason says which), rejected (the gateway cannot probe it), timed_out …")
    done: bool = Field(description="false while the gateway has not answered: ask GET …/probe/{command_id}")
    ok: bool | None = Field(description="every point passed; null until done")
    reason: str | None
    passed: int
    failed: int
    points: list[ProbePoint]
    requested_at: datetime
    answered_at: datetime | None
