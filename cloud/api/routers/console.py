"""Read routes the web console needs beyond the resource routers: labels from the device profiles, the
compound layout (map → building → floor), device and gateway health, the readings around an alarm, the
people a manager can dispatch to, a device's recent events and commissioning records; plus the console's
own pages and alarm tone (not in the OpenAPI schema)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import FileResponse, Response
from psycopg.rows import dict_row
from pydantic import Field, field_validator

from cloud.api.deps import Conn, State, not_found, require, scope_for
from cloud.auth.roles import allowed
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.changes import json_row
from cloud.dispatch.commands import FINAL_STATES, TRANSIT_MARGIN, queue_command
from cloud.web import WEB_DIR
from cloud.web.labels import labels as build_labels
from cloud.web.sound import alarm_wav
from contract.base import StrictModel
from contract.messages import PROBE_COMMAND, SEVERITY_RANK, ProbePoint
from device_profiles import SHIPPED_DIR, Catalog, CompiledProfile, UnknownProfile, load_catalog

router = APIRouter(prefix="/api", tags=["console"])
pages = APIRouter(include_in_schema=False)

DEFAULT_TZ = "Asia/Shanghai"


@cache
def shipped_catalog() -> Catalog:
    """The shipped device profiles, read once per process (they are package data, not configuration)."""
    return load_catalog([SHIPPED_DIR])


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


async def _rows(conn: Conn, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return [json_row(r) for r in await cur.fetchall()]


# ---------------------------------------------------------------------------------------------- labels


@router.get("/labels", summary="Labels of event types, points and commands, from the device profiles")
async def get_labels(_: Annotated[Principal, Depends(require("sites.read"))]) -> dict[str, Any]:
    return build_labels(shipped_catalog())


# ---------------------------------------------------------------------------------------------- layout


class BuildingIn(StrictModel):
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


@router.put("/sites/{site_id}/layout", summary="Set a compound's time zone and buildings (admin)")
async def put_layout(
    site_id: str, body: LayoutIn, conn: Conn, user: Annotated[Principal, Depends(require("sites.write"))]
) -> dict[str, Any]:
    layout = {"buildings": [b.model_dump() for b in body.buildings]}
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE sites SET timezone = %s, layout = %s::jsonb WHERE id = %s",
            (body.timezone, _json(layout), site_id),
        )
        if cur.rowcount == 0:
            raise not_found(f"site {site_id!r}")
        await audit(conn, user.username, "site.layout", "site", site_id, body.model_dump())
    return {"site_id": site_id, **body.model_dump()}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@router.get("/sites/{site_id}/layout", summary="Buildings, floors and devices with their state, for the map")
async def get_layout(
    site_id: str, conn: Conn, user: Annotated[Principal, Depends(require("sites.read"))]
) -> dict[str, Any]:
    sites = await _rows(conn, "SELECT id, name, timezone, layout FROM sites WHERE id = %s", site_id)
    if not sites:
        raise not_found(f"site {site_id!r}")
    site = sites[0]
    scope = await scope_for(conn, user)
    devices = await _rows(
        conn,
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
    devices = [d for d in devices if scope.allows(site_id, d["building"])]
    alarms = await _rows(
        conn,
        "SELECT id, device_id, building, floor, unit, key, type, severity, acknowledged, detail FROM alarms "
        "WHERE site_id = %s AND active AND building IS NOT NULL",
        site_id,
    )
    alarms = [a for a in alarms if scope.allows(site_id, a["building"])]
    floor_of = {d["id"]: d["floor"] for d in devices}
    declared = {b["id"]: b for b in (site["layout"] or {}).get("buildings", [])}
    names = set(declared) | {d["building"] for d in devices if d["building"]}
    if scope.buildings is not None:
        names = {n for n in names if scope.allows(site_id, n)}
    buildings = []
    for name in sorted(names, key=_natural):
        decl = declared.get(name, {})
        in_b = [d for d in devices if d["building"] == name]
        floors_seen = [d["floor"] for d in in_b if d["floor"] is not None]
        top = max([decl.get("floors", 0), *floors_seen, 1])
        bottom = min([-decl.get("basement_floors", 0), *[f for f in floors_seen if f < 1]]) if floors_seen else 0
        floors = [f for f in range(top, bottom - 1, -1) if f != 0] if bottom < 0 else list(range(top, 0, -1))
        b_alarms = [a for a in alarms if a["building"] == name]
        alarmed: dict[int, str] = {}
        for a in b_alarms:
            if a["floor"] is not None:
                cur = alarmed.get(a["floor"])
                if cur is None or SEVERITY_RANK.get(a["severity"], 9) < SEVERITY_RANK.get(cur, 9):
                    alarmed[a["floor"]] = a["severity"]
        worst = min((a["severity"] for a in b_alarms), key=lambda s: SEVERITY_RANK.get(s, 9), default=None)
        buildings.append(
            {
                "id": name,
                "name": decl.get("name") or name,
                "floors": floors,
                "units_per_floor": decl.get("units_per_floor", 0),
                "devices": len(in_b),
                "online": sum(1 for d in in_b if d["state"] == "online"),
                "offline": sum(1 for d in in_b if d["state"] == "offline"),
                "active_alarms": len(b_alarms),
                "worst_severity": worst,
                "alarmed_floors": [{"floor": f, "severity": s} for f, s in sorted(alarmed.items())],
            }
        )
    return {
        "site": {"id": site["id"], "name": site["name"], "timezone": site["timezone"] or DEFAULT_TZ},
        "buildings": buildings,
        "devices": sorted(devices, key=lambda d: (_natural(d["building"] or ""), d["floor"] or 0, _natural(d["id"]))),
        # Active alarms located elsewhere than their device (a panel zone's floor): pins on the map.
        "remote_alarms": [
            a for a in alarms if a["floor"] is not None and a["floor"] != floor_of.get(a["device_id"], a["floor"])
        ],
    }


# ---------------------------------------------------------------------------------------------- health


@router.get("/console/health", summary="Gateways (uplink, outbox depth) and devices (online, last seen)")
async def health(
    conn: Conn, _: Annotated[Principal, Depends(require("devices.read"))], site_id: str | None = None
) -> dict[str, Any]:
    gateways = await _rows(
        conn,
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
    devices = await _rows(
        conn,
        "SELECT id, profile_id, gateway_id, site_id, building, floor, unit, name, state, last_seen FROM devices "
        "WHERE (%s::text IS NULL OR site_id = %s) ORDER BY building, floor NULLS FIRST, id",
        site_id,
        site_id,
    )
    devices.sort(key=lambda d: (_natural(d["building"] or ""), d["floor"] or 0, _natural(d["id"])))
    return {"gateways": gateways, "devices": devices}


# ---------------------------------------------------------------------------------------------- readings


@router.get("/alarms/{alarm_id}/readings", summary="The alarm device's rolled-up readings around the alarm")
async def readings(
    alarm_id: int,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("alarms.read"))],
    minutes: int = 30,
) -> dict[str, Any]:
    if not allowed(user.role, "telemetry.read"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role.value} may not telemetry.read")
    minutes = min(max(minutes, 1), 24 * 60)
    rows = await _rows(
        conn,
        "SELECT a.id, a.site_id, a.building, a.device_id, a.first_ts, a.last_ts, a.cleared_at, d.profile_id "
        "FROM alarms a LEFT JOIN devices d ON d.id = a.device_id WHERE a.id = %s",
        alarm_id,
    )
    if not rows:
        raise not_found(f"alarm {alarm_id}")
    alarm = rows[0]
    scope = await scope_for(conn, user)
    if not scope.allows(alarm["site_id"], alarm["building"]):
        raise not_found(f"alarm {alarm_id}")
    first = datetime.fromisoformat(alarm["first_ts"])
    end = datetime.fromisoformat(alarm["cleared_at"] or alarm["last_ts"])
    lo, hi = first - timedelta(minutes=minutes), max(end, first) + timedelta(minutes=minutes)
    hi = min(hi, max(state.clock.now(), end))
    table, resolution = ("telemetry_1m", "1m") if (hi - lo) <= timedelta(hours=6) else ("telemetry_5m", "5m")
    data = await _rows(
        conn,
        f"SELECT point, bucket, avg, min, max FROM {table} WHERE device_id = %s AND bucket >= %s AND bucket <= %s "
        "ORDER BY point, bucket",
        alarm["device_id"],
        lo,
        hi,
    )
    points: dict[str, dict[str, Any]] = {}
    for r in data:
        s = points.setdefault(r["point"], {"point": r["point"], "ts": [], "avg": [], "min": [], "max": []})
        s["ts"].append(r["bucket"])
        for k in ("avg", "min", "max"):
            s[k].append(r[k])

    def interest(s: dict[str, Any]) -> tuple[int, int]:
        values = {v for v in s["avg"] if v is not None}
        return (0 if not values <= {0.0, 1.0} else 1, 0 if len(values) > 1 else 1)

    series = sorted(points.values(), key=lambda s: (*interest(s), _natural(s["point"])))[:8]
    return {
        "alarm_id": alarm_id,
        "device_id": alarm["device_id"],
        "profile_id": alarm["profile_id"],
        "resolution": resolution,
        "from": lo.isoformat(),
        "to": hi.isoformat(),
        "event_ts": alarm["first_ts"],
        "series": series,
    }


# ---------------------------------------------------------------------------------------------- people


@router.get("/console/workers", summary="Grid workers a manager can assign or dispatch to, and who is on duty")
async def workers(
    conn: Conn, state: State, _: Annotated[Principal, Depends(require("orders.assign"))]
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        "SELECT u.username, u.full_name, u.grid_id, EXISTS (SELECT 1 FROM roster r WHERE r.username = u.username "
        "AND r.starts_at <= %s AND r.ends_at > %s) AS on_duty FROM users u "
        "WHERE u.role = 'grid_worker' AND u.active ORDER BY u.grid_id NULLS LAST, u.username",
        state.clock.now(),
        state.clock.now(),
    )


# ---------------------------------------------------------------------------------------------- installer


@router.get("/devices/{device_id}/events", summary="A device's latest events (commissioning: watch a test arrive)")
async def device_events(
    device_id: str,
    conn: Conn,
    _: Annotated[Principal, Depends(require("devices.read"))],
    since: datetime | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        "SELECT id, type, severity, active, ts, received_at, detail FROM events WHERE device_id = %s "
        "AND (%s::timestamptz IS NULL OR received_at > %s) ORDER BY received_at DESC, ts DESC LIMIT %s",
        device_id,
        since,
        since,
        min(max(limit, 1), 500),
    )


QUALITY = {0: "good", 1: "uncertain", 2: "bad"}


@router.get("/devices/{device_id}/points", summary="Each profile point: the latest value the gateway reported")
async def device_points(
    device_id: str,
    conn: Conn,
    state: State,
    _: Annotated[Principal, Depends(require("devices.read"))],
    since: datetime | None = None,
) -> dict[str, Any]:
    """Pass / fail per point from what the gateway actually read (its first read reports every point with
    its quality): ``good``, ``uncertain``, ``bad`` (the read failed) or ``missing`` (nothing since ``since``,
    default the last 24 h)."""
    cur = await conn.execute("SELECT profile_id FROM devices WHERE id = %s", (device_id,))
    row = await cur.fetchone()
    if row is None:
        raise not_found(f"device {device_id!r}")
    try:
        points = CompiledProfile(shipped_catalog().get(row[0])).points
    except UnknownProfile:
        points = []
    since = since or state.clock.now() - timedelta(days=1)
    latest = {
        r["point"]: r
        for r in await _rows(
            conn,
            "SELECT DISTINCT ON (point) point, ts, value, value_text, quality FROM telemetry "
            "WHERE device_id = %s AND ts >= %s ORDER BY point, ts DESC",
            device_id,
            since,
        )
    }
    out = []
    for p in points:
        r = latest.get(p.name)
        status_ = "missing" if r is None else QUALITY.get(r["quality"], "bad")
        value = None if r is None else (r["value_text"] if r["value_text"] is not None else r["value"])
        out.append(
            {"name": p.name, "label": p.label, "unit": p.unit, "value": value, "ts": r and r["ts"], "status": status_}
        )
    counts = {k: sum(1 for p in out if p["status"] == k) for k in ("good", "uncertain", "bad", "missing")}
    return {"device_id": device_id, "profile_id": row[0], "since": since.isoformat(), "counts": counts, "points": out}


class CheckIn(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    passed: bool
    detail: str | None = Field(default=None, max_length=2000)


class CommissioningIn(StrictModel):
    checks: list[CheckIn] = Field(min_length=1)
    note: str | None = Field(default=None, max_length=4000)


@router.post("/devices/{device_id}/commissioning", status_code=201, summary="Record a device's commissioning")
async def commission(
    device_id: str,
    body: CommissioningIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("devices.register"))],
) -> dict[str, Any]:
    passed = all(c.passed for c in body.checks)
    async with conn.transaction():
        cur = await conn.execute("SELECT building, floor, unit, profile_id FROM devices WHERE id = %s", (device_id,))
        row = await cur.fetchone()
        if row is None:
            raise not_found(f"device {device_id!r}")
        detail = {
            "passed": passed,
            "checks": [c.model_dump() for c in body.checks],
            "note": body.note,
            "location": {"building": row[0], "floor": row[1], "unit": row[2]},
            "profile_id": row[3],
        }
        await audit(conn, user.username, "device.commission", "device", device_id, detail, ts=state.clock.now())
    return {"device_id": device_id, **detail}


# ---------------------------------------------------------------------------------------------- probe

PROBE_GATEWAY_S = 5.0
"""What the gateway may take: an MQTT topic not heard yet is waited for this long (its probe window)."""


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


async def _probe_out(conn: Conn, device_id: str, command_id: UUID) -> ProbeOut | None:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:  # each look a fresh snapshot
        await cur.execute(
            "SELECT c.id, c.device_id, c.gateway_id, c.state, c.reason, c.created_at, c.answered_at, a.probe, "
            "d.profile_id FROM commands c LEFT JOIN command_acks a ON a.id = c.ack_id "
            "LEFT JOIN devices d ON d.id = c.device_id WHERE c.id = %s AND c.device_id = %s AND c.command = %s",
            (command_id, device_id, PROBE_COMMAND),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    points = [ProbePoint.model_validate(p) for p in row["probe"] or []]
    done = row["state"] in FINAL_STATES
    return ProbeOut(
        command_id=row["id"], device_id=row["device_id"], profile_id=row["profile_id"], gateway_id=row["gateway_id"],
        state=row["state"], done=done, ok=(row["state"] == "succeeded") if done else None, reason=row["reason"],
        passed=sum(1 for p in points if p.ok), failed=sum(1 for p in points if not p.ok), points=points,
        requested_at=row["created_at"], answered_at=row["answered_at"],
    )


async def _audit_result(conn: Conn, out: ProbeOut, actor: str, now: datetime) -> None:
    """The outcome goes into the audit log once (``device.probe.result``), by whichever request first sees it."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT 1 FROM audit_log WHERE action = 'device.probe.result' AND target_id = %s "
            "AND detail->>'command_id' = %s", (out.device_id, str(out.command_id)))
        if await cur.fetchone() is not None:
            return
        detail = {"command_id": str(out.command_id), "state": out.state, "reason": out.reason, "passed": out.passed,
                  "failed": out.failed, "failed_points": [p.name for p in out.points if not p.ok], "asked_by": actor}
        await audit(conn, f"gateway:{out.gateway_id}", "device.probe.result", "device", out.device_id, detail, ts=now)


async def _wait_probe(conn: Conn, state: State, device_id: str, command_id: UUID, wait_s: float,
                      actor: str) -> ProbeOut:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        out = await _probe_out(conn, device_id, command_id)
        if out is None:
            raise not_found(f"probe {command_id} of device {device_id!r}")
        if out.done:
            await _audit_result(conn, out, actor, state.clock.now())
            return out
        if asyncio.get_running_loop().time() >= deadline:
            return out
        await asyncio.sleep(0.2)


@router.post("/devices/{device_id}/probe", summary="Probe a device through its gateway: pass / fail per point",
             response_model=ProbeOut)
async def probe(
    device_id: str,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("devices.probe"))],
    wait_s: Annotated[float, Query(ge=0, le=60)] = 15.0,
) -> ProbeOut:
    """Sends the gateway's probe command (``gateway.probe``): the gateway reads every point of the device once
    (Modbus through its running poller, MQTT from the latest messages) and answers with the decoded value or
    the reason of the failure per point (including a value outside the point's plausible range). Waits up to
    ``wait_s`` for the answer; when ``done`` is false, ask ``GET /api/devices/{id}/probe/{command_id}``."""
    now = state.clock.now()
    async with conn.transaction():
        cur = await conn.execute("SELECT site_id, gateway_id, profile_id FROM devices WHERE id = %s", (device_id,))
        row = await cur.fetchone()
        if row is None:
            raise not_found(f"device {device_id!r}")
        if row[1] is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"device {device_id!r} is not bound to a gateway")
        cid = await queue_command(
            conn, site_id=row[0], gateway_id=row[1], device_id=device_id, command=PROBE_COMMAND, args={},
            origin=user.username, now=now, ack_timeout=timedelta(seconds=PROBE_GATEWAY_S) + TRANSIT_MARGIN,
            expires_after=timedelta(minutes=2),
        )
        await audit(conn, user.username, "device.probe", "device", device_id,
                    {"command_id": str(cid), "gateway_id": row[1], "profile_id": row[2]}, ts=now)
    await state.engine.send([cid])
    return await _wait_probe(conn, state, device_id, cid, wait_s, user.username)


@router.get("/devices/{device_id}/probe/{command_id}", summary="A probe's state and per-point results",
            response_model=ProbeOut)
async def probe_result(
    device_id: str,
    command_id: UUID,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("devices.read"))],
) -> ProbeOut:
    return await _wait_probe(conn, state, device_id, command_id, 0.0, user.username)


# ---------------------------------------------------------------------------------------------- pages


@pages.get("/sound/alarm.wav")
async def alarm_sound() -> Response:
    return Response(alarm_wav(), media_type="audio/wav", headers={"Cache-Control": "public, max-age=86400"})


@pages.get("/install")
async def installer_page() -> FileResponse:
    return FileResponse(WEB_DIR / "install.html")
