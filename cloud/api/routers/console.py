"""Read routes the web console needs beyond the resource routers: labels from the device profiles, the
compound layout (map → building → floor), device and gateway health, the readings around an alarm and the
people a manager can dispatch to; plus the console's own pages and alarm tone (not in the OpenAPI schema).
The installer's device routes are in :mod:`cloud.api.routers.installer`.

Models are in :mod:`cloud.api.console_models`, SQL in :mod:`cloud.api.console_queries`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import FileResponse, Response

from cloud.api import console_queries as q
from cloud.api.console_models import (
    DEFAULT_TZ,
    AlarmedFloor,
    AlarmReadings,
    BuildingSummary,
    ConsoleHealth,
    LayoutDevice,
    LayoutIn,
    LayoutSaved,
    MapAlarm,
    Series,
    SiteInfo,
    SiteLayout,
    WorkerOut,
)
from cloud.api.deps import Conn, ShippedProfiles, State, not_found, require, scope_for
from cloud.auth.roles import allowed
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.web import WEB_DIR
from cloud.web.labels import Labels
from cloud.web.labels import labels as build_labels
from cloud.web.sound import alarm_wav
from contract.messages import SEVERITY_RANK, AlarmSeverity

router = APIRouter(prefix="/api", tags=["console"])
pages = APIRouter(include_in_schema=False)

SitesRead = Annotated[Principal, Depends(require("sites.read"))]
SitesWrite = Annotated[Principal, Depends(require("sites.write"))]
DevicesRead = Annotated[Principal, Depends(require("devices.read"))]
AlarmsRead = Annotated[Principal, Depends(require("alarms.read"))]


def _natural(text: str) -> list[int | str]:
    """``B10`` after ``B9``: digit runs compare as numbers (they sit at odd places of the split, text at even)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


# ---------------------------------------------------------------------------------------------- labels


@router.get("/labels", response_model=Labels,
            summary="Labels of event types, points and commands, from the device profiles")
async def get_labels(profiles: ShippedProfiles, _: SitesRead) -> Labels:
    return build_labels(profiles)


# ---------------------------------------------------------------------------------------------- layout


@router.put("/sites/{site_id}/layout", response_model=LayoutSaved,
            summary="Set a compound's time zone and buildings (admin)")
async def put_layout(site_id: str, body: LayoutIn, conn: Conn, user: SitesWrite) -> LayoutSaved:
    layout = {"buildings": [b.model_dump() for b in body.buildings]}
    async with conn.transaction():
        if not await q.set_layout(conn, site_id, body.timezone, layout):
            raise not_found(f"site {site_id!r}")
        await audit(conn, user.username, "site.layout", "site", site_id, body.model_dump())
    return LayoutSaved(site_id=site_id, timezone=body.timezone, buildings=body.buildings)


def _worst(severities: list[AlarmSeverity]) -> AlarmSeverity | None:
    return min(severities, key=lambda s: SEVERITY_RANK.get(s, 9), default=None)


def _building(name: str, decl: q.DeclaredBuilding | None, devices: list[LayoutDevice],
              alarms: list[MapAlarm]) -> BuildingSummary:
    """One building of the map: floors from its declaration and its devices, alarmed floors and counts."""
    floors_seen = [d.floor for d in devices if d.floor is not None]
    top = max([decl.floors if decl else 0, *floors_seen, 1])
    basements = decl.basement_floors if decl else 0
    bottom = min([-basements, *[f for f in floors_seen if f < 1]]) if floors_seen else 0
    floors = [f for f in range(top, bottom - 1, -1) if f != 0] if bottom < 0 else list(range(top, 0, -1))
    by_floor: dict[int, list[AlarmSeverity]] = {}
    for a in alarms:
        if a.floor is not None:
            by_floor.setdefault(a.floor, []).append(a.severity)
    return BuildingSummary(
        id=name,
        name=(decl.name if decl else "") or name,
        floors=floors,
        units_per_floor=decl.units_per_floor if decl else 0,
        devices=len(devices),
        online=sum(1 for d in devices if d.state == "online"),
        offline=sum(1 for d in devices if d.state == "offline"),
        active_alarms=len(alarms),
        worst_severity=_worst([a.severity for a in alarms]),
        alarmed_floors=[
            AlarmedFloor(floor=f, severity=worst)
            for f, found in sorted(by_floor.items())
            if (worst := _worst(found)) is not None
        ],
    )


@router.get("/sites/{site_id}/layout", response_model=SiteLayout,
            summary="Buildings, floors and devices with their state, for the map")
async def get_layout(site_id: str, conn: Conn, user: SitesRead) -> SiteLayout:
    site = await q.site(conn, site_id)
    if site is None:
        raise not_found(f"site {site_id!r}")
    scope = await scope_for(conn, user)
    devices = [d for d in await q.layout_devices(conn, site_id) if scope.allows(site_id, d.building)]
    alarms = [a for a in await q.located_alarms(conn, site_id) if scope.allows(site_id, a.building)]
    declared = {b.id: b for b in (site.layout.buildings if site.layout else [])}
    names = set(declared) | {d.building for d in devices if d.building}
    if scope.buildings is not None:
        names = {n for n in names if scope.allows(site_id, n)}
    buildings = [
        _building(name, declared.get(name), [d for d in devices if d.building == name],
                  [a for a in alarms if a.building == name])
        for name in sorted(names, key=_natural)
    ]
    floor_of = {d.id: d.floor for d in devices}
    return SiteLayout(
        site=SiteInfo(id=site.id, name=site.name, timezone=site.timezone or DEFAULT_TZ),
        buildings=buildings,
        devices=sorted(devices, key=lambda d: (_natural(d.building or ""), d.floor or 0, _natural(d.id))),
        remote_alarms=[a for a in alarms if a.floor is not None and a.floor != floor_of.get(a.device_id, a.floor)],
    )


# ---------------------------------------------------------------------------------------------- health


@router.get("/console/health", response_model=ConsoleHealth,
            summary="Gateways (uplink, outbox depth) and devices (online, last seen)")
async def health(conn: Conn, _: DevicesRead, site_id: str | None = None) -> ConsoleHealth:
    gateways = await q.gateway_health(conn, site_id)
    devices = await q.device_health(conn, site_id)
    devices.sort(key=lambda d: (_natural(d.building or ""), d.floor or 0, _natural(d.id)))
    return ConsoleHealth(gateways=gateways, devices=devices)


# ---------------------------------------------------------------------------------------------- readings


def _series(rows: list[q.Rollup]) -> list[Series]:
    """Up to eight series: analogue points that vary first, then flat ones, then 0/1 points; by name within."""
    by_point: dict[str, list[q.Rollup]] = {}
    for r in rows:
        by_point.setdefault(r.point, []).append(r)

    def interest(rs: list[q.Rollup]) -> tuple[int, int]:
        values = {r.avg for r in rs if r.avg is not None}
        return (0 if not values <= {0.0, 1.0} else 1, 0 if len(values) > 1 else 1)

    chosen = sorted(by_point.items(), key=lambda kv: (*interest(kv[1]), _natural(kv[0])))[:8]
    return [
        Series(point=point, ts=[r.bucket for r in rs], avg=[r.avg for r in rs], min=[r.min for r in rs],
               max=[r.max for r in rs])
        for point, rs in chosen
    ]


@router.get("/alarms/{alarm_id}/readings", response_model=AlarmReadings,
            summary="The alarm device's rolled-up readings around the alarm")
async def readings(alarm_id: int, conn: Conn, state: State, user: AlarmsRead, minutes: int = 30) -> AlarmReadings:
    if not allowed(user.role, "telemetry.read"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role.value} may not telemetry.read")
    minutes = min(max(minutes, 1), 24 * 60)
    alarm = await q.alarm_span(conn, alarm_id)
    if alarm is None:
        raise not_found(f"alarm {alarm_id}")
    scope = await scope_for(conn, user)
    if not scope.allows(alarm.site_id, alarm.building):
        raise not_found(f"alarm {alarm_id}")
    first = alarm.first_ts
    end = alarm.cleared_at or alarm.last_ts
    lo, hi = first - timedelta(minutes=minutes), max(end, first) + timedelta(minutes=minutes)
    hi = min(hi, max(state.clock.now(), end))
    resolution: q.Resolution = "1m" if (hi - lo) <= timedelta(hours=6) else "5m"
    rows = await q.rollups(conn, resolution, alarm.device_id, lo, hi)
    return AlarmReadings(
        alarm_id=alarm_id, device_id=alarm.device_id, profile_id=alarm.profile_id, resolution=resolution,
        from_=lo, to=hi, event_ts=alarm.first_ts, series=_series(rows),
    )


# ---------------------------------------------------------------------------------------------- people


@router.get("/console/workers", response_model=list[WorkerOut],
            summary="Grid workers a manager can assign or dispatch to, and who is on duty")
async def workers(
    conn: Conn, state: State, _: Annotated[Principal, Depends(require("orders.assign"))]
) -> list[WorkerOut]:
    return await q.workers(conn, state.clock.now())


# ---------------------------------------------------------------------------------------------- pages


@pages.get("/sound/alarm.wav")
async def alarm_sound() -> Response:
    return Response(alarm_wav(), media_type="audio/wav", headers={"Cache-Control": "public, max-age=86400"})


@pages.get("/install")
async def installer_page() -> FileResponse:
    return FileResponse(WEB_DIR / "install.html")
