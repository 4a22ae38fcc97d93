"""Sites, grids, gateways and devices; onboarding (register a device); a device's telemetry.

The SQL is in :mod:`cloud.devices.repository` and :mod:`cloud.ingest.queries`; every route returns models of
:mod:`cloud.devices.models` / :mod:`cloud.ingest.models`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from psycopg.errors import ForeignKeyViolation, UniqueViolation
from psycopg.rows import class_row

from cloud.api.deps import Conn, GridScope, not_found, require
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.devices import repository
from cloud.devices.models import (
    DeviceDetail,
    DeviceIn,
    DeviceSummary,
    GridIn,
    GridOut,
    Site,
    SiteDetail,
    SiteIn,
)
from cloud.ingest.models import TelemetryBucket, TelemetrySample
from cloud.ingest.queries import LATEST_SAMPLES_SQL, SAMPLES_SQL, Resolution, recent_buckets_sql

router = APIRouter(prefix="/api", tags=["sites and devices"])

RESOLUTIONS: dict[str, Resolution] = {"1m": "1m", "5m": "5m", "1h": "1h"}


@router.get("/sites", response_model=list[Site], summary="List sites")
async def list_sites(
    conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("sites.read"))]
) -> list[Site]:
    return await repository.list_sites(conn, scope.sites)


@router.post("/sites", response_model=SiteIn, status_code=201, summary="Create a site (admin)")
async def create_site(
    body: SiteIn, conn: Conn, user: Annotated[Principal, Depends(require("sites.write"))]
) -> SiteIn:
    async with conn.transaction():
        try:
            await repository.insert_site(conn, Site(id=body.id, name=body.name))
        except UniqueViolation:
            raise HTTPException(status.HTTP_409_CONFLICT, f"site {body.id!r} exists") from None
        await audit(conn, user.username, "site.create", "site", body.id)
    return body


@router.get(
    "/sites/{site_id}",
    response_model=SiteDetail,
    summary="A site with its grids, gateways and alarm counts per building",
)
async def get_site(
    site_id: str, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("sites.read"))]
) -> SiteDetail:
    site = await repository.get_site(conn, site_id)
    if site is None or (scope.sites is not None and site_id not in scope.sites):
        raise not_found(f"site {site_id!r}")
    if scope.unrestricted:
        grids = await repository.site_grids(conn, site_id)
        gateways = await repository.site_gateways(conn, site_id)
    else:  # a grid worker: their grid, no gateway inventory
        grids, gateways = await repository.grid(conn, scope.grid_id), []
    buildings = await repository.building_summaries(conn, site_id, scope.buildings)
    return SiteDetail(id=site.id, name=site.name, grids=grids, gateways=gateways, buildings=buildings)


@router.post(
    "/sites/{site_id}/grids", response_model=GridOut, status_code=201, summary="Create or replace a grid (admin)"
)
async def put_grid(
    site_id: str, body: GridIn, conn: Conn, user: Annotated[Principal, Depends(require("sites.write"))]
) -> GridOut:
    async with conn.transaction():
        try:
            await repository.put_grid(conn, site_id, body)
        except ForeignKeyViolation:
            raise not_found(f"site {site_id!r}") from None
        await audit(conn, user.username, "grid.put", "grid", body.id, body.model_dump())
    return GridOut(site_id=site_id, **body.model_dump())


@router.get(
    "/devices", response_model=list[DeviceSummary], summary="List devices (filter by site, building, gateway)"
)
async def list_devices(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("devices.read"))],
    site_id: str | None = None,
    building: str | None = None,
    gateway_id: str | None = None,
) -> list[DeviceSummary]:
    return await repository.list_devices(
        conn, scope.buildings, site_id=site_id, building=building, gateway_id=gateway_id
    )


@router.get("/devices/{device_id}", response_model=DeviceDetail, summary="One device with its active alarms")
async def get_device(
    device_id: str, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("devices.read"))]
) -> DeviceDetail:
    device = await repository.get_device(conn, device_id)
    if device is None:
        raise not_found(f"device {device_id!r}")
    scope.check(device.site_id, device.building, f"device {device_id!r}")
    alarms = await repository.active_device_alarms(conn, device_id)
    return DeviceDetail(**device.model_dump(), active_alarms=alarms)


@router.post(
    "/devices", response_model=DeviceIn, status_code=201, summary="Onboard a device: id, profile, gateway, location"
)
async def register_device(
    body: DeviceIn, conn: Conn, user: Annotated[Principal, Depends(require("devices.register"))]
) -> DeviceIn:
    async with conn.transaction():
        try:
            await repository.register_device(conn, body)
        except UniqueViolation:
            raise HTTPException(status.HTTP_409_CONFLICT, f"device {body.id!r} is already registered") from None
        except ForeignKeyViolation:
            raise not_found(f"site {body.site_id!r}") from None
        await audit(conn, user.username, "device.register", "device", body.id, body.model_dump())
    return body


@router.get(
    "/telemetry/{device_id}",
    response_model=list[TelemetryBucket],
    tags=["telemetry"],
    summary="Rolled-up telemetry of one device",
)
async def telemetry(
    device_id: str,
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("telemetry.read"))],
    point: str | None = None,
    resolution: str = "1m",
    limit: int = 500,
) -> list[TelemetryBucket]:
    res = RESOLUTIONS.get(resolution)
    if res is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "resolution must be one of 1m, 5m, 1h")
    if not scope.unrestricted:
        where = await repository.device_location(conn, device_id)
        if where is None:
            raise not_found(f"device {device_id!r}")
        scope.check(where.site_id, where.building, f"device {device_id!r}")
    async with conn.cursor(row_factory=class_row(TelemetryBucket)) as cur:
        await cur.execute(
            recent_buckets_sql(res), {"device": device_id, "point": point, "limit": _clamp(limit)}
        )
        return await cur.fetchall()


@router.get(
    "/telemetry/{device_id}/samples",
    response_model=list[TelemetrySample],
    tags=["telemetry"],
    summary="Raw samples of one device, numeric and text-valued (enum states, strings), newest first",
)
async def telemetry_samples(
    device_id: str,
    conn: Conn,
    _: Annotated[Principal, Depends(require("telemetry.read"))],
    point: str | None = None,
    limit: int = 500,
) -> list[TelemetrySample]:
    """Each sample as stored: ``value`` (numbers and booleans) or ``value_text`` (enum states and other
    text), and its ``quality`` — a value that did not convert to its point's type is ``bad``."""
    async with conn.cursor(row_factory=class_row(TelemetrySample)) as cur:
        await cur.execute(SAMPLES_SQL, {"device": device_id, "point": point, "limit": _clamp(limit)})
        return await cur.fetchall()


@router.get(
    "/telemetry/{device_id}/latest",
    response_model=list[TelemetrySample],
    tags=["telemetry"],
    summary="The latest sample of every point of one device (numeric or text), with its quality",
)
async def telemetry_latest(
    device_id: str,
    conn: Conn,
    _: Annotated[Principal, Depends(require("telemetry.read"))],
) -> list[TelemetrySample]:
    async with conn.cursor(row_factory=class_row(TelemetrySample)) as cur:
        await cur.execute(LATEST_SAMPLES_SQL, {"device": device_id})
        return await cur.fetchall()


def _clamp(limit: int) -> int:
    return min(max(limit, 1), 10_000)


