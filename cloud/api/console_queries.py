"""The console and installer routes' SQL: each query returns typed rows (``console_models`` or row models here)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, LiteralString, TypeVar
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row
from pydantic import BaseModel, Field, JsonValue

from cloud.api.console_models import (
    DeviceEvent,
    DeviceHealth,
    GatewayHealth,
    LayoutDevice,
    MapAlarm,
    Out,
    WorkerOut,
)

Conn = AsyncConnection[Any]
M = TypeVar("M", bound=BaseModel)


async def _fetch(conn: Conn, model: type[M], sql: LiteralString, *args: object) -> list[M]:
    async with conn.cursor(row_factory=class_row(model)) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()


async def _fetch_one(conn: Conn, model: type[M], sql: LiteralString, *args: object) -> M | None:
    async with conn.cursor(row_factory=class_row(model)) as cur:
        await cur.execute(sql, args)
        return await cur.fetchone()


# ---------------------------------------------------------------------------------------------- layout


class DeclaredBuilding(Out):
    """A building of ``sites.layout`` as stored (written by the layout route, or by hand in SQL)."""

    id: str
    name: str = ""
    floors: int = 0
    basement_floors: int = 0
    units_per_floor: int = 0


class DeclaredLayout(Out):
    buildings: list[DeclaredBuilding] = Field(default_factory=list)


class SiteRow(Out):
    id: str
    name: str
    timezone: str | None
    layout: DeclaredLayout | None


async def site(conn: Conn, site_id: str) -> SiteRow | None:
    return await _fetch_one(conn, SiteRow, "SELECT id, name, timezone, layout FROM sites WHERE id = %s", site_id)


async def set_layout(conn: Conn, site_id: str, timezone: str, layout: object) -> bool:
    """Store a compound's time zone and layout; False when the site does not exist."""
    cur = await conn.execute(
        "UPDATE sites SET timezone = %s, layout = %s::jsonb WHERE id = %s",
        (timezone, json.dumps(layout, ensure_ascii=False), site_id),
    )
    return cur.rowcount > 0


async def layout_devices(conn: Conn, site_id: str) -> list[LayoutDevice]:
    """The site's devices, each with its worst active alarm (most severe, then newest)."""
    return await _fetch(
        conn,
        LayoutDevice,
        """
        SELECT d.id, d.profile_id, d.gateway_id, d.building, d.floor, d.unit, d.area, d.name, d.state, d.last_seen,
               a.id AS alarm_id, a.type AS alarm_type, a.severity AS alarm_severity, a.acknowledged AS alarm_acked
        FROM devices d
        LEFT JOIN LATERAL (
            SELECT id, type, severity, acknowledged FROM alarms
            WHERE device_id = d.id AND active
            ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END, id DESC
            LIMIT 1
        ) a ON true
        WHERE d.site_id = %s
        """,
        site_id,
    )


async def located_alarms(conn: Conn, site_id: str) -> list[MapAlarm]:
    """The site's active alarms that are located in a building."""
    return await _fetch(
        conn,
        MapAlarm,
        "SELECT id, device_id, building, floor, unit, key, type, severity, acknowledged, detail FROM alarms "
        "WHERE site_id = %s AND active AND building IS NOT NULL",
        site_id,
    )


# ---------------------------------------------------------------------------------------------- health


async def gateway_health(conn: Conn, site_id: str | None) -> list[GatewayHealth]:
    return await _fetch(
        conn,
        GatewayHealth,
        """
        SELECT g.id, g.site_id, g.state, g.state_reason, g.last_seen, g.software, g.health, g.health_at,
               g.config_version, g.config_error,
               count(d.id) AS devices, count(d.id) FILTER (WHERE d.state = 'online') AS online,
               count(d.id) FILTER (WHERE d.state = 'offline') AS offline
        FROM gateways g LEFT JOIN devices d ON d.gateway_id = g.id
        WHERE (%s::text IS NULL OR g.site_id = %s)
        GROUP BY g.id ORDER BY g.id
        """,
        site_id,
        site_id,
    )


async def device_health(conn: Conn, site_id: str | None) -> list[DeviceHealth]:
    return await _fetch(
        conn,
        DeviceHealth,
        "SELECT id, profile_id, gateway_id, site_id, building, floor, unit, name, state, last_seen FROM devices "
        "WHERE (%s::text IS NULL OR site_id = %s) ORDER BY building, floor NULLS FIRST, id",
        site_id,
        site_id,
    )


# ---------------------------------------------------------------------------------------------- readings


class AlarmSpan(Out):
    """When an alarm began and ended, and on which device."""

    id: int
    site_id: str | None
    building: str | None
    device_id: str
    first_ts: datetime
    last_ts: datetime
    cleared_at: datetime | None
    profile_id: str | None


class Rollup(Out):
    point: str
    bucket: datetime
    avg: float | None
    min: float | None
    max: float | None


Resolution = Literal["1m", "5m"]

_ROLLUPS: dict[Resolution, LiteralString] = {
    "1m": "SELECT point, bucket, avg, min, max FROM telemetry_1m "
    "WHERE device_id = %s AND bucket >= %s AND bucket <= %s ORDER BY point, bucket",
    "5m": "SELECT point, bucket, avg, min, max FROM telemetry_5m "
    "WHERE device_id = %s AND bucket >= %s AND bucket <= %s ORDER BY point, bucket",
}


async def alarm_span(conn: Conn, alarm_id: int) -> AlarmSpan | None:
    return await _fetch_one(
        conn,
        AlarmSpan,
        "SELECT a.id, a.site_id, a.building, a.device_id, a.first_ts, a.last_ts, a.cleared_at, d.profile_id "
        "FROM alarms a LEFT JOIN devices d ON d.id = a.device_id WHERE a.id = %s",
        alarm_id,
    )


async def rollups(conn: Conn, resolution: Resolution, device_id: str, lo: datetime, hi: datetime) -> list[Rollup]:
    """A device's rollups of every point in [lo, hi], by point then time."""
    return await _fetch(conn, Rollup, _ROLLUPS[resolution], device_id, lo, hi)


# ---------------------------------------------------------------------------------------------- people


async def workers(conn: Conn, now: datetime) -> list[WorkerOut]:
    """Active grid workers, by grid, and whether a roster shift covers ``now``."""
    return await _fetch(
        conn,
        WorkerOut,
        "SELECT u.username, u.full_name, u.grid_id, EXISTS (SELECT 1 FROM roster r WHERE r.username = u.username "
        "AND r.starts_at <= %s AND r.ends_at > %s) AS on_duty FROM users u "
        "WHERE u.role = 'grid_worker' AND u.active ORDER BY u.grid_id NULLS LAST, u.username",
        now,
        now,
    )


# ---------------------------------------------------------------------------------------------- installer


class DeviceRow(Out):
    """A registered device: where it is and which gateway serves it."""

    id: str
    site_id: str
    gateway_id: str | None
    profile_id: str
    building: str | None
    floor: int | None
    unit: str | None


async def device(conn: Conn, device_id: str) -> DeviceRow | None:
    return await _fetch_one(
        conn,
        DeviceRow,
        "SELECT id, site_id, gateway_id, profile_id, building, floor, unit FROM devices WHERE id = %s",
        device_id,
    )


async def device_events(conn: Conn, device_id: str, since: datetime | None, limit: int) -> list[DeviceEvent]:
    """A device's events received after ``since`` (all without), newest first."""
    return await _fetch(
        conn,
        DeviceEvent,
        "SELECT id, type, severity, active, ts, received_at, detail FROM events WHERE device_id = %s "
        "AND (%s::timestamptz IS NULL OR received_at > %s) ORDER BY received_at DESC, ts DESC LIMIT %s",
        device_id,
        since,
        since,
        limit,
    )


class LatestValue(Out):
    point: str
    ts: datetime
    value: float | None
    value_text: str | None
    quality: int = Field(description="0 good, 1 uncertain, 2 bad")


async def latest_values(conn: Conn, device_id: str, since: datetime) -> dict[str, LatestValue]:
    """Each point's latest reported value since ``since``, by point name."""
    rows = await _fetch(
        conn,
        LatestValue,
        "SELECT DISTINCT ON (point) point, ts, value, value_text, quality FROM telemetry "
        "WHERE device_id = %s AND ts >= %s ORDER BY point, ts DESC",
        device_id,
        since,
    )
    return {r.point: r for r in rows}


# ---------------------------------------------------------------------------------------------- probe


class ProbeRow(Out):
    """A probe command and, once answered, its acknowledgement's per-point results."""

    id: UUID
    device_id: str
    gateway_id: str
    state: str
    reason: str | None
    created_at: datetime
    answered_at: datetime | None
    probe: list[JsonValue] | None
    profile_id: str | None


async def probe(conn: Conn, device_id: str, command_id: UUID, command: str) -> ProbeRow | None:
    """The probe ``command_id`` of ``device_id``, in a transaction of its own (each look a fresh snapshot)."""
    async with conn.transaction():
        return await _fetch_one(
            conn,
            ProbeRow,
            "SELECT c.id, c.device_id, c.gateway_id, c.state, c.reason, c.created_at, c.answered_at, a.probe, "
            "d.profile_id FROM commands c LEFT JOIN command_acks a ON a.id = c.ack_id "
            "LEFT JOIN devices d ON d.id = c.device_id WHERE c.id = %s AND c.device_id = %s AND c.command = %s",
            command_id,
            device_id,
            command,
        )


async def probe_result_audited(conn: Conn, device_id: str, command_id: UUID) -> bool:
    """Whether the probe's outcome is in the audit log already (``device.probe.result``)."""
    cur = await conn.execute(
        "SELECT 1 FROM audit_log WHERE action = 'device.probe.result' AND target_id = %s "
        "AND detail->>'command_id' = %s",
        (device_id, str(command_id)),
    )
    return await cur.fetchone() is not None
