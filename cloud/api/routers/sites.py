"""Sites, grids, gateways and devices; onboarding (register a device)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from psycopg.errors import ForeignKeyViolation, UniqueViolation
from psycopg.rows import dict_row
from pydantic import Field

from cloud.api.deps import Conn, GridScope, not_found, require
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.changes import json_row
from contract.base import StrictModel

router = APIRouter(prefix="/api", tags=["sites and devices"])

ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


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


async def _rows(conn: Conn, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return [json_row(r) for r in await cur.fetchall()]


@router.get("/sites", summary="List sites")
async def list_sites(
    conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("sites.read"))]
) -> list[dict[str, Any]]:
    sites = scope.sites
    return await _rows(
        conn, "SELECT id, name FROM sites WHERE %s::text[] IS NULL OR id = ANY(%s) ORDER BY id",
        None if sites is None else sorted(sites), None if sites is None else sorted(sites),
    )


@router.post("/sites", status_code=201, summary="Create a site (admin)")
async def create_site(
    body: SiteIn, conn: Conn, user: Annotated[Principal, Depends(require("sites.write"))]
) -> dict[str, Any]:
    async with conn.transaction():
        try:
            await conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s)", (body.id, body.name))
        except UniqueViolation:
            raise HTTPException(status.HTTP_409_CONFLICT, f"site {body.id!r} exists") from None
        await audit(conn, user.username, "site.create", "site", body.id)
    return body.model_dump()


@router.get("/sites/{site_id}", summary="A site with its grids, gateways and alarm counts per building")
async def get_site(
    site_id: str, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("sites.read"))]
) -> dict[str, Any]:
    site = await _rows(conn, "SELECT id, name FROM sites WHERE id = %s", site_id)
    if not site or (scope.sites is not None and site_id not in scope.sites):
        raise not_found(f"site {site_id!r}")
    out = site[0]
    if scope.unrestricted:
        out["grids"] = await _rows(
            conn, "SELECT id, name, buildings FROM grids WHERE site_id = %s ORDER BY id", site_id
        )
        out["gateways"] = await _rows(
            conn, "SELECT id, state, last_seen, software FROM gateways WHERE site_id = %s ORDER BY id", site_id
        )
    else:  # a grid worker: their grid, no gateway inventory
        out["grids"] = await _rows(conn, "SELECT id, name, buildings FROM grids WHERE id = %s", scope.grid_id)
        out["gateways"] = []
    clause, args = scope.sql("d.site_id", "d.building")
    out["buildings"] = await _rows(
        conn,
        "SELECT d.building, count(*) AS devices, count(*) FILTER (WHERE d.state = 'online') AS online, "
        "(SELECT count(*) FROM alarms a WHERE a.site_id = %s AND a.building = d.building AND a.active) "
        "AS active_alarms "
        f"FROM devices d WHERE d.site_id = %s{clause} GROUP BY d.building ORDER BY d.building",
        site_id,
        site_id,
        *args,
    )
    return out


@router.post("/sites/{site_id}/grids", status_code=201, summary="Create or replace a grid (admin)")
async def put_grid(
    site_id: str, body: GridIn, conn: Conn, user: Annotated[Principal, Depends(require("sites.write"))]
) -> dict[str, Any]:
    async with conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO grids (id, site_id, name, buildings) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, buildings = EXCLUDED.buildings",
                (body.id, site_id, body.name, body.buildings),
            )
        except ForeignKeyViolation:
            raise not_found(f"site {site_id!r}") from None
        await audit(conn, user.username, "grid.put", "grid", body.id, body.model_dump())
    return {"site_id": site_id, **body.model_dump()}


@router.get("/devices", summary="List devices (filter by site, building, gateway)")
async def list_devices(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("devices.read"))],
    site_id: str | None = None,
    building: str | None = None,
    gateway_id: str | None = None,
) -> list[dict[str, Any]]:
    clause, args = scope.sql()
    return await _rows(
        conn,
        "SELECT id, gateway_id, profile_id, site_id, building, floor, unit, area, name, state, last_seen FROM devices "
        "WHERE (%s::text IS NULL OR site_id = %s) AND (%s::text IS NULL OR building = %s) "
        f"AND (%s::text IS NULL OR gateway_id = %s){clause} ORDER BY id",
        site_id,
        site_id,
        building,
        building,
        gateway_id,
        gateway_id,
        *args,
    )


@router.get("/devices/{device_id}", summary="One device with its active alarms")
async def get_device(
    device_id: str, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("devices.read"))]
) -> dict[str, Any]:
    rows = await _rows(conn, "SELECT * FROM devices WHERE id = %s", device_id)
    if not rows:
        raise not_found(f"device {device_id!r}")
    out = rows[0]
    scope.check(out["site_id"], out["building"], f"device {device_id!r}")
    out["active_alarms"] = await _rows(
        conn, "SELECT id, type, severity, acknowledged, first_ts FROM alarms WHERE device_id = %s AND active", device_id
    )
    return out


@router.post("/devices", status_code=201, summary="Onboard a device: id, profile, gateway, location")
async def register_device(
    body: DeviceIn, conn: Conn, user: Annotated[Principal, Depends(require("devices.register"))]
) -> dict[str, Any]:
    async with conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO gateways (id, site_id, state) VALUES (%s, %s, 'unknown') ON CONFLICT (id) DO NOTHING",
                (body.gateway_id, body.site_id),
            )
            await conn.execute(
                "INSERT INTO devices (id, gateway_id, profile_id, site_id, building, floor, unit, area, name) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    body.id,
                    body.gateway_id,
                    body.profile_id,
                    body.site_id,
                    body.building,
                    body.floor,
                    body.unit,
                    body.area,
                    body.name,
                ),
            )
        except UniqueViolation:
            raise HTTPException(status.HTTP_409_CONFLICT, f"device {body.id!r} is already registered") from None
        except ForeignKeyViolation:
            raise not_found(f"site {body.site_id!r}") from None
        await audit(conn, user.username, "device.register", "device", body.id, body.model_dump())
    return body.model_dump()


@router.get("/telemetry/{device_id}", tags=["telemetry"], summary="Rolled-up telemetry of one device")
async def telemetry(
    device_id: str,
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("telemetry.read"))],
    point: str | None = None,
    resolution: str = "1m",
    limit: int = 500,
) -> list[dict[str, Any]]:
    table = {"1m": "telemetry_1m", "5m": "telemetry_5m", "1h": "telemetry_1h"}.get(resolution)
    if table is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "resolution must be one of 1m, 5m, 1h")
    if not scope.unrestricted:
        where = await _rows(conn, "SELECT site_id, building FROM devices WHERE id = %s", device_id)
        if not where:
            raise not_found(f"device {device_id!r}")
        scope.check(where[0]["site_id"], where[0]["building"], f"device {device_id!r}")
    return await _rows(
        conn,
        f"SELECT bucket, point, avg, min, max, count, last FROM {table} WHERE device_id = %s "
        "AND (%s::text IS NULL OR point = %s) ORDER BY bucket DESC LIMIT %s",
        device_id,
        point,
        point,
        min(max(limit, 1), 10_000),
    )


_QUALITY_NAME = "CASE quality WHEN 0 THEN 'good' WHEN 1 THEN 'uncertain' ELSE 'bad' END"


@router.get("/telemetry/{device_id}/samples", tags=["telemetry"],
            summary="Raw samples of one device, numeric and text-valued (enum states, strings), newest first")
async def telemetry_samples(
    device_id: str,
    conn: Conn,
    _: Annotated[Principal, Depends(require("telemetry.read"))],
    point: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Each sample as stored: ``value`` (numbers and booleans) or ``value_text`` (enum states and other
    text), and its ``quality`` — a value that did not convert to its point's type is ``bad``."""
    return await _rows(
        conn,
        f"SELECT ts, point, value, value_text, {_QUALITY_NAME} AS quality FROM telemetry WHERE device_id = %s "
        "AND (%s::text IS NULL OR point = %s) ORDER BY ts DESC LIMIT %s",
        device_id,
        point,
        point,
        min(max(limit, 1), 10_000),
    )


@router.get("/telemetry/{device_id}/latest", tags=["telemetry"],
            summary="The latest sample of every point of one device (numeric or text), with its quality")
async def telemetry_latest(
    device_id: str,
    conn: Conn,
    _: Annotated[Principal, Depends(require("telemetry.read"))],
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        f"SELECT DISTINCT ON (point) point, ts, value, value_text, {_QUALITY_NAME} AS quality FROM telemetry "
        "WHERE device_id = %s ORDER BY point, ts DESC",
        device_id,
    )
