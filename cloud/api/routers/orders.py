"""Work orders for grid workers (whole lifecycle) and the on-duty roster."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import AwareDatetime, Field

from cloud.api.deps import Conn, State, not_found, require
from cloud.auth.roles import Role, is_grid_scoped
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.changes import json_row
from cloud.dispatch import workorders as wo
from contract.base import StrictModel

router = APIRouter(prefix="/api", tags=["work orders"])


class OrderIn(StrictModel):
    site_id: str
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    building: str | None = None
    floor: int | None = None
    unit: str | None = None
    alarm_id: int | None = None
    assignee: str | None = None


class AssignIn(StrictModel):
    assignee: str


class ArriveIn(StrictModel):
    photo: str | None = Field(default=None, description="evidence ref of a check-in photo (POST /api/evidence/{ref})")


class ResolveIn(StrictModel):
    note: str = Field(min_length=1)
    evidence: list[str] = Field(default_factory=list, description="evidence refs")


class ReopenIn(StrictModel):
    reason: str = Field(min_length=1)


class RosterIn(StrictModel):
    username: str
    grid_id: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime


def _visible(row: dict[str, Any], user: Principal) -> bool:
    return (
        not is_grid_scoped(user.role)
        or row["assignee"] == user.username
        or (user.grid_id is not None and row["grid_id"] == user.grid_id)
    )


async def _order(conn: AsyncConnection[Any], order_id: int, user: Principal) -> dict[str, Any]:
    try:
        row = await wo.get_order(conn, order_id)
    except wo.NotFound:
        raise not_found(f"work order {order_id}") from None
    if not _visible(row, user):
        raise not_found(f"work order {order_id}")
    return row


@router.get("/orders", summary="Work orders (grid workers: their grid's and their own)")
async def list_orders(
    conn: Conn,
    user: Annotated[Principal, Depends(require("orders.read"))],
    state: str | None = None,
    open_only: bool = True,
    limit: int = 200,
) -> list[dict[str, Any]]:
    scoped = is_grid_scoped(user.role)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM work_orders WHERE (%s::text IS NULL OR state = %s) AND (NOT %s OR state <> 'closed') "
            "AND (NOT %s OR assignee = %s OR grid_id = %s) ORDER BY id DESC LIMIT %s",
            (state, state, open_only, scoped, user.username, user.grid_id, min(max(limit, 1), 1000)),
        )
        return [json_row(r) for r in await cur.fetchall()]


@router.get("/orders/{order_id}", summary="A work order with its timeline")
async def get_order(
    order_id: int, conn: Conn, user: Annotated[Principal, Depends(require("orders.read"))]
) -> dict[str, Any]:
    out = json_row(await _order(conn, order_id, user))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT ts, kind, actor, detail FROM work_order_timeline WHERE order_id = %s ORDER BY id", (order_id,)
        )
        out["timeline"] = [json_row(r) for r in await cur.fetchall()]
    return out


@router.post("/orders", status_code=201, summary="Create a work order by hand (from an alarm or not)")
async def create_order(
    body: OrderIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.create"))]
) -> dict[str, Any]:
    effects = wo.Effects.empty()
    async with conn.transaction():
        row = await wo.create_order(
            conn,
            state.engine.rules,
            state.clock.now(),
            site_id=body.site_id,
            order_type=body.type,
            title=body.title,
            created_by=user.username,
            effects=effects,
            building=body.building,
            floor=body.floor,
            unit=body.unit,
            alarm_id=body.alarm_id,
            assignee=body.assignee,
        )
    if row is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "an order for this alarm (or unit) is already open")
    await state.engine.send([], effects.changes, effects.notifications)
    return json_row(row)


async def _transition(
    state: State, conn: Conn, user: Principal, order_id: int, action: str, **kw: Any
) -> dict[str, Any]:
    effects = wo.Effects.empty()
    await _order(conn, order_id, user)
    try:
        async with conn.transaction():
            row = await wo.transition(
                conn,
                order_id,
                action,
                user.username,
                state.clock.now(),
                effects,
                actor_is_manager=user.role is Role.ADMIN,
                rules=state.engine.rules,
                **kw,
            )
    except wo.WorkOrderError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await state.engine.send([], effects.changes, effects.notifications)
    return json_row(row)


@router.post("/orders/{order_id}/assign", summary="Assign (or re-assign) to a worker")
async def assign(
    order_id: int,
    body: AssignIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("orders.assign"))],
) -> dict[str, Any]:
    return await _transition(state, conn, user, order_id, "assign", assignee=body.assignee)


@router.post("/orders/{order_id}/accept", summary="Accept (the assigned worker)")
async def accept(
    order_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.work"))]
) -> dict[str, Any]:
    return await _transition(state, conn, user, order_id, "accept")


@router.post("/orders/{order_id}/arrive", summary="Check in on site (time recorded, optional photo)")
async def arrive(
    order_id: int, body: ArriveIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.work"))]
) -> dict[str, Any]:
    return await _transition(state, conn, user, order_id, "arrive", photo=body.photo)


@router.post("/orders/{order_id}/resolve", summary="Resolve with a note and evidence")
async def resolve(
    order_id: int,
    body: ResolveIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("orders.work"))],
) -> dict[str, Any]:
    return await _transition(state, conn, user, order_id, "resolve", note=body.note, evidence=body.evidence)


@router.post("/orders/{order_id}/close", summary="Verify and close (manager)")
async def close(
    order_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.verify"))]
) -> dict[str, Any]:
    return await _transition(state, conn, user, order_id, "close")


@router.post("/orders/{order_id}/reopen", summary="Re-open a resolved or closed order (manager)")
async def reopen(
    order_id: int,
    body: ReopenIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("orders.verify"))],
) -> dict[str, Any]:
    return await _transition(state, conn, user, order_id, "reopen", note=body.reason)


@router.get("/roster", tags=["roster"], summary="On-duty roster")
async def list_roster(conn: Conn, _: Annotated[Principal, Depends(require("roster.manage"))]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM roster ORDER BY starts_at DESC LIMIT 500")
        return [json_row(r) for r in await cur.fetchall()]


@router.post("/roster", status_code=201, tags=["roster"], summary="Put a worker on duty for a grid")
async def add_roster(
    body: RosterIn, conn: Conn, user: Annotated[Principal, Depends(require("roster.manage"))]
) -> dict[str, Any]:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO roster (username, grid_id, starts_at, ends_at) VALUES (%s, %s, %s, %s) RETURNING *",
            (body.username, body.grid_id, body.starts_at, body.ends_at),
        )
        row = await cur.fetchone()
        assert row is not None
        await audit(conn, user.username, "roster.add", "roster", row["id"], json_row(row))
    return json_row(row)
