"""Alarms (list, detail, ack, clear, comment, assign), maintenance / 屏蔽 windows and incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from psycopg.rows import dict_row
from pydantic import AwareDatetime, Field

from cloud.alarms import store
from cloud.api.deps import Conn, GridScope, Scope, State, not_found, require
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.changes import Change, json_row
from contract.base import StrictModel

router = APIRouter(prefix="/api", tags=["alarms"])


class CommentIn(StrictModel):
    text: str = Field(min_length=1, max_length=4000)


class AssignIn(StrictModel):
    assignee: str


class ClearIn(StrictModel):
    reason: str | None = None


class WindowIn(StrictModel):
    site_id: str
    building: str | None = None
    floor: int | None = None
    device_id: str | None = None
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str = Field(min_length=1)


async def _visible_alarm(conn: Conn, alarm_id: int, scope: Scope) -> dict[str, Any]:
    try:
        row = await store.get_alarm(conn, alarm_id)
    except store.AlarmNotFound:
        raise not_found(f"alarm {alarm_id}") from None
    scope.check(row["site_id"], row["building"], f"alarm {alarm_id}")  # outside the grid: as if it did not exist
    return row


@router.get("/alarms", summary="List alarms (grid workers see their grid's only)")
async def list_alarms(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("alarms.read"))],
    active: bool | None = True,
    site_id: str | None = None,
    building: str | None = None,
    severity: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    sql = (
        "SELECT * FROM alarms WHERE (%s::boolean IS NULL OR active = %s) AND (%s::text IS NULL OR site_id = %s) "
        "AND (%s::text IS NULL OR building = %s) AND (%s::text IS NULL OR severity = %s)"
    )
    args: list[Any] = [active, active, site_id, site_id, building, building, severity, severity]
    clause, scope_args = scope.sql()
    sql += clause
    args += scope_args
    sql += " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END, id DESC"
    sql += " LIMIT %s"
    args.append(min(max(limit, 1), 1000))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return [json_row(r) for r in await cur.fetchall()]


@router.get("/alarms/{alarm_id}", summary="An alarm with its timeline, comments and evidence")
async def get_alarm(
    alarm_id: int, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("alarms.read"))]
) -> dict[str, Any]:
    await _visible_alarm(conn, alarm_id, scope)
    return await store.detail(conn, alarm_id)


async def _act(state: State, conn: Conn, alarm_id: int, op: str, fn: Any) -> dict[str, Any]:
    try:
        async with conn.transaction():
            row: dict[str, Any] = await fn()
    except store.AlarmNotFound:
        raise not_found(f"alarm {alarm_id}") from None
    except store.AlarmError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await state.engine.send([], [Change.alarm(row, op)])
    return json_row(row)


@router.post("/alarms/{alarm_id}/ack", summary="Acknowledge (stops escalation)")
async def ack(
    alarm_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("alarms.ack"))]
) -> dict[str, Any]:
    return await _act(
        state,
        conn,
        alarm_id,
        "acknowledged",
        lambda: store.acknowledge(conn, alarm_id, user.username, state.clock.now()),
    )


@router.post("/alarms/{alarm_id}/clear", summary="Clear by hand")
async def clear(
    alarm_id: int, body: ClearIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("alarms.clear"))]
) -> dict[str, Any]:
    return await _act(
        state,
        conn,
        alarm_id,
        "cleared",
        lambda: store.clear(conn, alarm_id, user.username, state.clock.now(), body.reason),
    )


@router.post("/alarms/{alarm_id}/comments", status_code=201, summary="Comment on an alarm")
async def comment(
    alarm_id: int,
    body: CommentIn,
    conn: Conn,
    state: State,
    scope: GridScope,
    user: Annotated[Principal, Depends(require("alarms.comment"))],
) -> dict[str, Any]:
    await _visible_alarm(conn, alarm_id, scope)
    async with conn.transaction():
        row = await store.comment(conn, alarm_id, user.username, body.text, state.clock.now())
    return json_row(row)


@router.post("/alarms/{alarm_id}/assign", summary="Assign an alarm to someone")
async def assign(
    alarm_id: int,
    body: AssignIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("alarms.assign"))],
) -> dict[str, Any]:
    return await _act(
        state,
        conn,
        alarm_id,
        "assigned",
        lambda: store.assign(conn, alarm_id, body.assignee, user.username, state.clock.now()),
    )


@router.get("/suppressions", tags=["suppression"], summary="Maintenance / 屏蔽 windows")
async def list_windows(
    conn: Conn, _: Annotated[Principal, Depends(require("suppression.manage"))]
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM suppression_windows ORDER BY starts_at DESC LIMIT 500")
        return [json_row(r) for r in await cur.fetchall()]


@router.post("/suppressions", status_code=201, tags=["suppression"], summary="Open a maintenance / 屏蔽 window")
async def create_window(
    body: WindowIn, conn: Conn, user: Annotated[Principal, Depends(require("suppression.manage"))]
) -> dict[str, Any]:
    if body.ends_at <= body.starts_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "ends_at must be after starts_at")
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO suppression_windows "
            "(site_id, building, floor, device_id, starts_at, ends_at, reason, created_by) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (
                body.site_id,
                body.building,
                body.floor,
                body.device_id,
                body.starts_at,
                body.ends_at,
                body.reason,
                user.username,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        await audit(conn, user.username, "suppression.create", "suppression_window", row["id"], json_row(row))
    return json_row(row)


@router.get("/incidents", tags=["incidents"], summary="Incidents (confirmed fire, entrapment, …)")
async def list_incidents(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("incidents.read"))],
    state_filter: str | None = "open",
) -> list[dict[str, Any]]:
    clause, scope_args = scope.sql()
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT * FROM incidents WHERE (%s::text IS NULL OR state = %s){clause} ORDER BY id DESC LIMIT 500",
            (state_filter, state_filter, *scope_args),
        )
        return [json_row(r) for r in await cur.fetchall()]


@router.get("/incidents/{incident_id}", tags=["incidents"], summary="An incident with its alarms and commands")
async def get_incident(
    incident_id: int, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("incidents.read"))]
) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM incidents WHERE id = %s", (incident_id,))
        row = await cur.fetchone()
        if row is None:
            raise not_found(f"incident {incident_id}")
        scope.check(row["site_id"], row["building"], f"incident {incident_id}")
        out = json_row(row)
        await cur.execute("SELECT * FROM alarms WHERE id = ANY(%s) ORDER BY id", (row["alarm_ids"],))
        out["alarms"] = [json_row(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT * FROM commands WHERE incident_id = %s ORDER BY created_at, device_id", (incident_id,)
        )
        out["commands"] = [json_row(r) for r in await cur.fetchall()]
        await cur.execute("SELECT * FROM work_orders WHERE incident_id = %s ORDER BY id", (incident_id,))
        out["work_orders"] = [json_row(r) for r in await cur.fetchall()]
    return out


@router.post("/incidents/{incident_id}/close", tags=["incidents"], summary="Close an incident")
async def close_incident(
    incident_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("incidents.close"))]
) -> dict[str, Any]:
    now: datetime = state.clock.now()
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE incidents SET state = 'closed', closed_at = %s, closed_by = %s WHERE id = %s AND state = 'open' "
            "RETURNING *",
            (now, user.username, incident_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise not_found(f"open incident {incident_id}")
        await audit(conn, user.username, "incident.close", "incident", incident_id, ts=now)
    await state.engine.send([], [Change.incident(row, "closed")])
    return json_row(row)
