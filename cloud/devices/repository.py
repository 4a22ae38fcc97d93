"""The SQL of sites, grids, gateways and devices.

Synchronous functions take the ingest worker's cursor or connection (inside the caller's transaction unless
they say otherwise); ``async`` ones take the API's connection and return models of
:mod:`cloud.devices.models`. Read functions that list located things take ``within``: the (site, building)
pairs the caller may see, or None for everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow, class_row
from pydantic import BaseModel

from cloud.devices.models import (
    AnnouncedDevice,
    BuildingSummary,
    Device,
    DeviceAlarm,
    DeviceIn,
    DeviceLocation,
    DeviceSummary,
    GatewayStateRow,
    GatewaySummary,
    Grid,
    GridIn,
    OfflineStatement,
    Site,
)

Conn = psycopg.Connection[TupleRow]
Cursor = psycopg.Cursor[TupleRow]
AConn = AsyncConnection[Any]
Within = Sequence[tuple[str, str]] | None
R = TypeVar("R", bound=BaseModel)

DEVICE_SUMMARY_COLUMNS = "id, gateway_id, profile_id, site_id, building, floor, unit, area, name, state, last_seen"
DEVICE_COLUMNS = f"{DEVICE_SUMMARY_COLUMNS}, offline_since, created_at, updated_at"


# -- ingest (synchronous) ---------------------------------------------------------------------------


def all_device_ids(conn: Conn) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT id FROM devices").fetchall()}


def existing_device_ids(conn: Conn, ids: list[str]) -> set[str]:
    """The subset of ``ids`` registered."""
    return {str(r[0]) for r in conn.execute("SELECT id FROM devices WHERE id = ANY(%s)", (ids,)).fetchall()}


def ensure_sites(cur: Cursor, site_ids: Iterable[str]) -> None:
    """Create the sites not there yet (named after their id)."""
    cur.execute(
        "INSERT INTO sites (id, name) SELECT s, s FROM unnest(%s::text[]) AS s ON CONFLICT (id) DO NOTHING",
        (sorted(set(site_ids)),),
    )


def apply_gateway_state(cur: Cursor, s: GatewayStateRow) -> bool:
    """Upsert the gateway's row from a state message unless the row reflects a later one; True when changed.

    Later = a higher ``(epoch, seq)``, or the same one with another state (the rule of
    :func:`cloud.devices.registry.register_birth`)."""
    cur.execute(
        """
        INSERT INTO gateways AS g (id, site_id, state, state_reason, state_epoch, state_seq, last_seen, software,
                                   updated_at, config_version, config_error)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s)
        ON CONFLICT (id) DO UPDATE SET
            site_id = EXCLUDED.site_id, state = EXCLUDED.state, state_reason = EXCLUDED.state_reason,
            state_epoch = EXCLUDED.state_epoch, state_seq = EXCLUDED.state_seq,
            software = COALESCE(EXCLUDED.software, g.software),
            last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen), updated_at = now(),
            -- a birth says which pushed config is in force (or why the last was refused); a death says nothing
            config_version = CASE WHEN EXCLUDED.state = 'online' THEN EXCLUDED.config_version ELSE g.config_version END,
            config_error = CASE WHEN EXCLUDED.state = 'online' THEN EXCLUDED.config_error ELSE g.config_error END
        WHERE g.state_seq IS NULL
           OR (EXCLUDED.state_epoch, EXCLUDED.state_seq) > (g.state_epoch, g.state_seq)
           OR (EXCLUDED.state_epoch = g.state_epoch AND EXCLUDED.state_seq = g.state_seq
               AND EXCLUDED.state IS DISTINCT FROM g.state)
        RETURNING id
        """,
        (s.gateway_id, s.site_id, s.state, s.reason, s.epoch, s.seq, s.received_at, s.software,
         s.config_version, s.config_error),
    )
    return cur.fetchone() is not None


def upsert_announced_devices(cur: Cursor, gateway_id: str, devices: Sequence[AnnouncedDevice]) -> None:
    """Register (or move / rename) the devices a gateway's birth announces."""
    if not devices:
        return
    cur.execute(
        """
        INSERT INTO devices AS d (id, gateway_id, profile_id, site_id, building, floor, unit, area, name)
        SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[],
                             %s::text[], %s::text[], %s::text[])
        ON CONFLICT (id) DO UPDATE SET
            gateway_id = EXCLUDED.gateway_id, profile_id = EXCLUDED.profile_id, site_id = EXCLUDED.site_id,
            building = EXCLUDED.building, floor = EXCLUDED.floor, unit = EXCLUDED.unit, area = EXCLUDED.area,
            name = COALESCE(EXCLUDED.name, d.name), updated_at = now()
        """,
        (
            [x.device_id for x in devices],
            [gateway_id] * len(devices),
            [x.profile_id for x in devices],
            [x.site_id for x in devices],
            [x.building for x in devices],
            [x.floor for x in devices],
            [x.unit for x in devices],
            [x.area for x in devices],
            [x.name for x in devices],
        ),
    )


def set_offline(cur: Cursor, s: OfflineStatement) -> int:
    """The device is offline from ``s.ts`` unless its row already reflects something later; rows changed."""
    cur.execute(
        "UPDATE devices SET state = 'offline', offline_since = %s, updated_at = now() "
        "WHERE id = %s AND (offline_since IS NULL OR offline_since < %s) "
        "AND (last_seen IS NULL OR last_seen <= %s)",
        (s.ts, s.device_id, s.ts, s.ts),
    )
    return cur.rowcount


def set_back_online(cur: Cursor, s: OfflineStatement) -> int:
    """The device is online again from ``s.ts`` unless it went offline after that; rows changed."""
    cur.execute(
        "UPDATE devices SET state = 'online', offline_since = NULL, "
        "last_seen = GREATEST(last_seen, %s), updated_at = now() "
        "WHERE id = %s AND (offline_since IS NULL OR offline_since <= %s)",
        (s.ts, s.device_id, s.ts),
    )
    return cur.rowcount


def write_presence(
    conn: Conn, online_window_s: float, devices: dict[str, datetime], gateways: dict[str, datetime]
) -> None:
    """Newest observation per device and newest message per gateway, in one statement of its own transaction.

    A device heard within ``online_window_s`` comes online, unless the gateway said it went offline after
    the observation (``offline_since``)."""
    with conn.transaction():
        conn.execute(
            """
            WITH dev AS (
                UPDATE devices AS d SET
                    last_seen = GREATEST(d.last_seen, u.ts),
                    state = CASE WHEN GREATEST(d.last_seen, u.ts) > now() - make_interval(secs => %s)
                                  AND (d.offline_since IS NULL OR u.ts > d.offline_since)
                                 THEN 'online' ELSE d.state END,
                    offline_since = CASE WHEN u.ts > d.offline_since THEN NULL ELSE d.offline_since END
                FROM unnest(%s::text[], %s::timestamptz[]) AS u(id, ts)
                WHERE d.id = u.id
                RETURNING 1
            ), gw AS (
                UPDATE gateways AS g SET last_seen = GREATEST(g.last_seen, u.ts)
                FROM unnest(%s::text[], %s::timestamptz[]) AS u(id, ts)
                WHERE g.id = u.id
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM dev), (SELECT count(*) FROM gw)
            """,
            (online_window_s, list(devices), list(devices.values()), list(gateways), list(gateways.values())),
        )


def mark_silent_offline(conn: Conn, offline_after_s: float) -> int:
    """Online devices not heard from within ``offline_after_s`` become offline (own transaction); rows changed."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE devices SET state = 'offline', updated_at = now() "
            "WHERE state = 'online' AND last_seen < now() - make_interval(secs => %s)",
            (offline_after_s,),
        )
        return cur.rowcount


# -- API (asynchronous) -----------------------------------------------------------------------------


def _within(within: Within, site_col: str = "site_id", building_col: str = "building") -> tuple[str, list[Any]]:
    """An ``AND …`` clause restricting rows to ``within`` ('' when None)."""
    if within is None:
        return "", []
    clause = f" AND ({site_col}, {building_col}) IN (SELECT s, b FROM unnest(%s::text[], %s::text[]) AS t(s, b))"
    return clause, [[s for s, _ in within], [b for _, b in within]]


async def _fetch(conn: AConn, model: type[R], sql: str, *args: Any) -> list[R]:
    async with conn.cursor(row_factory=class_row(model)) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()


async def list_sites(conn: AConn, site_ids: Iterable[str] | None) -> list[Site]:
    ids = None if site_ids is None else sorted(site_ids)
    return await _fetch(
        conn, Site, "SELECT id, name FROM sites WHERE %s::text[] IS NULL OR id = ANY(%s) ORDER BY id", ids, ids
    )


async def get_site(conn: AConn, site_id: str) -> Site | None:
    rows = await _fetch(conn, Site, "SELECT id, name FROM sites WHERE id = %s", site_id)
    return rows[0] if rows else None


async def insert_site(conn: AConn, site: Site) -> None:
    """Raises ``UniqueViolation`` when the id exists."""
    await conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s)", (site.id, site.name))


async def site_grids(conn: AConn, site_id: str) -> list[Grid]:
    return await _fetch(conn, Grid, "SELECT id, name, buildings FROM grids WHERE site_id = %s ORDER BY id", site_id)


async def grid(conn: AConn, grid_id: str | None) -> list[Grid]:
    return await _fetch(conn, Grid, "SELECT id, name, buildings FROM grids WHERE id = %s", grid_id)


async def put_grid(conn: AConn, site_id: str, body: GridIn) -> None:
    """Create or replace a grid; raises ``ForeignKeyViolation`` when the site does not exist."""
    await conn.execute(
        "INSERT INTO grids (id, site_id, name, buildings) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, buildings = EXCLUDED.buildings",
        (body.id, site_id, body.name, body.buildings),
    )


async def site_gateways(conn: AConn, site_id: str) -> list[GatewaySummary]:
    return await _fetch(
        conn,
        GatewaySummary,
        "SELECT id, state, last_seen, software FROM gateways WHERE site_id = %s ORDER BY id",
        site_id,
    )


async def building_summaries(conn: AConn, site_id: str, within: Within) -> list[BuildingSummary]:
    clause, args = _within(within, "d.site_id", "d.building")
    return await _fetch(
        conn,
        BuildingSummary,
        "SELECT d.building, count(*) AS devices, count(*) FILTER (WHERE d.state = 'online') AS online, "
        "(SELECT count(*) FROM alarms a WHERE a.site_id = %s AND a.building = d.building AND a.active) "
        "AS active_alarms "
        f"FROM devices d WHERE d.site_id = %s{clause} GROUP BY d.building ORDER BY d.building",
        site_id,
        site_id,
        *args,
    )


async def list_devices(
    conn: AConn, within: Within, *, site_id: str | None, building: str | None, gateway_id: str | None
) -> list[DeviceSummary]:
    clause, args = _within(within)
    return await _fetch(
        conn,
        DeviceSummary,
        f"SELECT {DEVICE_SUMMARY_COLUMNS} FROM devices "
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


async def get_device(conn: AConn, device_id: str) -> Device | None:
    rows = await _fetch(conn, Device, f"SELECT {DEVICE_COLUMNS} FROM devices WHERE id = %s", device_id)
    return rows[0] if rows else None


async def device_location(conn: AConn, device_id: str) -> DeviceLocation | None:
    rows = await _fetch(conn, DeviceLocation, "SELECT site_id, building FROM devices WHERE id = %s", device_id)
    return rows[0] if rows else None


async def active_device_alarms(conn: AConn, device_id: str) -> list[DeviceAlarm]:
    return await _fetch(
        conn,
        DeviceAlarm,
        "SELECT id, type, severity, acknowledged, first_ts FROM alarms WHERE device_id = %s AND active",
        device_id,
    )


async def register_device(conn: AConn, body: DeviceIn) -> None:
    """Insert the device (and its gateway, if new, state unknown). Raises ``UniqueViolation`` when the device
    exists, ``ForeignKeyViolation`` when the site does not."""
    await conn.execute(
        "INSERT INTO gateways (id, site_id, state) VALUES (%s, %s, 'unknown') ON CONFLICT (id) DO NOTHING",
        (body.gateway_id, body.site_id),
    )
    await conn.execute(
        "INSERT INTO devices (id, gateway_id, profile_id, site_id, building, floor, unit, area, name) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (body.id, body.gateway_id, body.profile_id, body.site_id, body.building, body.floor, body.unit,
         body.area, body.name),
    )
