"""The device registry as typed models: sites, grids, gateways and devices as the API shows them, the input
bodies that create them, and the rows the ingest path writes (a gateway's state, a device announced in a
birth, a gateway's statement that a device went offline or came back).

Output models describe rows read from the database (no ``extra="forbid"``: they are never parsed from a
request); input models refuse unknown keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from contract.base import StrictModel
from contract.messages import AlarmSeverity

DeviceState = Literal["online", "offline", "unknown"]
"""Where a device (or gateway) stands: ``online``/``offline`` from traffic and the gateway's statements,
``unknown`` until it is first heard of."""

ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- inputs -----------------------------------------------------------------------------------------


class SiteIn(StrictModel):
    id: str = Field(pattern=ID)
    name: str = ""


class GridIn(StrictModel):
    id: str = Field(pattern=ID)
    name: str = ""
    buildings: list[str] = Field(default_factory=list)


class DeviceIn(StrictModel):
    id: str = Field(pattern=ID)
    profile_id: str = Field(pattern=ID)
    gateway_id: str = Field(pattern=ID)
    site_id: str = Field(pattern=ID)
    building: str
    floor: int | None = None
    unit: str | None = None
    area: str | None = None
    name: str | None = None


# -- outputs ----------------------------------------------------------------------------------------


class Site(_Out):
    id: str
    name: str


class Grid(_Out):
    """A grid (网格): the buildings one grid worker looks after."""

    id: str
    name: str
    buildings: list[str]


class GridOut(Grid):
    site_id: str


class GatewaySummary(_Out):
    id: str
    state: DeviceState
    last_seen: datetime | None
    software: str | None


class BuildingSummary(_Out):
    """One building of a site: how many devices, how many online, how many active alarms."""

    building: str | None
    devices: int
    online: int
    active_alarms: int


class SiteDetail(Site):
    """A site with its grids, gateways (empty for a grid worker) and a summary per building."""

    grids: list[Grid]
    gateways: list[GatewaySummary]
    buildings: list[BuildingSummary]


class DeviceSummary(_Out):
    """A device as the device list shows it."""

    id: str
    gateway_id: str | None
    profile_id: str
    site_id: str
    building: str | None
    floor: int | None
    unit: str | None
    area: str | None
    name: str | None
    state: DeviceState
    last_seen: datetime | None


class Device(DeviceSummary):
    """A device's whole registry row."""

    offline_since: datetime | None
    created_at: datetime
    updated_at: datetime


class DeviceAlarm(_Out):
    """An active alarm of a device, as the device page lists it."""

    id: int
    type: str
    severity: AlarmSeverity
    acknowledged: bool
    first_ts: datetime


class DeviceDetail(Device):
    active_alarms: list[DeviceAlarm]


class DeviceLocation(_Out):
    site_id: str
    building: str | None


# -- rows the ingest path writes --------------------------------------------------------------------


class GatewayStateRow(NamedTuple):
    """A state message (birth / death) to apply to the gateway's row."""

    gateway_id: str
    site_id: str
    state: Literal["online", "offline"]
    reason: str | None
    epoch: int
    seq: int
    received_at: datetime
    software: str | None
    config_version: int | None
    config_error: str | None


class AnnouncedDevice(NamedTuple):
    """A device announced in a gateway's birth: upserted with the gateway as its gateway."""

    device_id: str
    profile_id: str
    site_id: str
    building: str | None
    floor: int | None
    unit: str | None
    area: str | None
    name: str | None


class OfflineStatement(NamedTuple):
    """A gateway's ``device.offline`` event: ``active`` = went offline at ``ts``; not active = back."""

    device_id: str
    active: bool
    ts: datetime
