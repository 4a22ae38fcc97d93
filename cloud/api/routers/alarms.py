"""Alarms (list, detail, ack, clear, comment, assign), maintenance / 屏蔽 windows and incidents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import AwareDatetime, Field

from cloud.alarms import repository as repo
from cloud.alarms.models import Alarm, AlarmComment, AlarmDetail, Incident, IncidentDetail, SuppressionWindow
from cloud.api.deps import Conn, GridScope, Scope, State, not_found, require
from cloud.auth.security import Principal
from cloud.changes import Change
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


async def _visible_alarm(conn: Conn, alarm_id: int, scope: Scope) -> Alarm:
    try:
        alarm = await repo.get_alarm(conn, alarm_id)
    except repo.AlarmNotFound:
        raise not_found(f"alarm {alarm_id}") from None
    scope.check(alarm.site_id, alarm.building, f"alarm {alarm_id}")  # outside the grid: as if it did not exist
    return alarm


@router.get("/alarms", response_model=list[Alarm], summary="List alarms (grid workers see their grid's only)")
async def list_alarms(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("alarms.read"))],
    active: bool | None = True,
    site_id: str | None = None,
    building: str | None = None,
    severity: str | None = None,
    limit: int = 200,
) -> list[Alarm]:
    return await repo.list_alarms(
        conn,
        active=active,
        site_id=site_id,
        building=building,
        severity=severity,
        limit=min(max(limit, 1), 1000),
        scope=scope.sql(),
    )


@router.get(
    "/alarms/{alarm_id}", response_model=AlarmDetail, summary="An alarm with its timeline, comments and evidence"
)
async def get_alarm(
    alarm_id: int, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("alarms.read"))]
) -> AlarmDetail:
    await _visible_alarm(conn, alarm_id, scope)
    return await repo.detail(conn, alarm_id)


async def _act(state: State, conn: Conn, alarm_id: int, op: str, fn: Callable[[], Awaitable[Alarm]]) -> Alarm:
    """Run ``fn`` in a transaction; push the change only after it committed."""
    try:
        async with conn.transaction():
            alarm = await fn()
    except repo.AlarmNotFound:
        raise not_found(f"alarm {alarm_id}") from None
    except repo.AlarmError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await state.engine.send([], [Change.alarm(alarm, op)])
    return alarm


@router.post("/alarms/{alarm_id}/ack", response_model=Alarm, summary="Acknowledge (stops escalation)")
async def ack(
    alarm_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("alarms.ack"))]
) -> Alarm:
    return await _act(
        state,
        conn,
        alarm_id,
        "acknowledged",
        lambda: repo.acknowledge(conn, alarm_id, user.username, state.clock.now()),
    )


@router.post("/alarms/{alarm_id}/clear", response_model=Alarm, summary="Clear by hand")
async def clear(
    alarm_id: int, body: ClearIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("alarms.clear"))]
) -> Alarm:
    return await _act(
        state,
        conn,
        alarm_id,
        "cleared",
        lambda: repo.clear(conn, alarm_id, user.username, state.clock.now(), body.reason),
    )


@router.post("/alarms/{alarm_id}/comments", status_code=201, response_model=AlarmComment, summary="Comment on an alarm")
async def comment(
    alarm_id: int,
    body: CommentIn,
    conn: Conn,
    state: State,
    scope: GridScope,
    user: Annotated[Principal, Depends(require("alarms.comment"))],
) -> AlarmComment:
    await _visible_alarm(conn, alarm_id, scope)
    async with conn.transaction():
        return await repo.comment(conn, alarm_id, user.username, body.text, state.clock.now())


@router.post("/alarms/{alarm_id}/assign", response_model=Alarm, summary="Assign an alarm to someone")
async def assign(
    alarm_id: int,
    body: AssignIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("alarms.assign"))],
) -> Alarm:
    return await _act(
        state,
        conn,
        alarm_id,
        "assigned",
        lambda: repo.assign(conn, alarm_id, body.assignee, user.username, state.clock.now()),
    )


@router.get(
    "/suppressions",
    response_model=list[SuppressionWindow],
    tags=["suppression"],
    summary="Maintenance / 屏蔽 windows",
)
async def list_windows(
    conn: Conn, _: Annotated[Principal, Depends(require("suppression.manage"))]
) -> list[SuppressionWindow]:
    return await repo.list_windows(conn)


@router.post(
    "/suppressions",
    status_code=201,
    response_model=SuppressionWindow,
    tags=["suppression"],
    summary="Open a maintenance / 屏蔽 window",
)
async def create_window(
    body: WindowIn, conn: Conn, user: Annotated[Principal, Depends(require("suppression.manage"))]
) -> SuppressionWindow:
    if body.ends_at <= body.starts_at:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "ends_at must be after starts_at")
    async with conn.transaction():
        return await repo.create_window(
            conn,
            site_id=body.site_id,
            building=body.building,
            floor=body.floor,
            device_id=body.device_id,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            reason=body.reason,
            actor=user.username,
        )


@router.get(
    "/incidents",
    response_model=list[Incident],
    tags=["incidents"],
    summary="Incidents (confirmed fire, entrapment, …)",
)
async def list_incidents(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("incidents.read"))],
    state_filter: str | None = "open",
) -> list[Incident]:
    return await repo.list_incidents(conn, state_filter, scope.sql())


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentDetail,
    tags=["incidents"],
    summary="An incident with its alarms and commands",
)
async def get_incident(
    incident_id: int, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("incidents.read"))]
) -> IncidentDetail:
    incident = await repo.get_incident(conn, incident_id)
    if incident is None:
        raise not_found(f"incident {incident_id}")
    scope.check(incident.site_id, incident.building, f"incident {incident_id}")
    return await repo.incident_detail(conn, incident)


@router.post("/incidents/{incident_id}/close", response_model=Incident, tags=["incidents"], summary="Close an incident")
async def close_incident(
    incident_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("incidents.close"))]
) -> Incident:
    async with conn.transaction():
        incident = await repo.close_incident(conn, incident_id, user.username, state.clock.now())
        if incident is None:
            raise not_found(f"open incident {incident_id}")
    await state.engine.send([], [Change.incident(incident, "closed")])
    return incident
