"""Work orders for grid workers (whole lifecycle) and the on-duty roster."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status

from cloud.api.deps import Conn, State, not_found, require
from cloud.auth.roles import Role, is_grid_scoped
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.changes import json_row
from cloud.dispatch import repository as repo
from cloud.dispatch import workorders as wo
from cloud.dispatch.models import (
    ArriveIn,
    AssignIn,
    OrderAction,
    OrderIn,
    ReopenIn,
    ResolveIn,
    RosterEntry,
    RosterIn,
    WorkOrder,
    WorkOrderDetail,
)

__all__ = ["ArriveIn", "AssignIn", "OrderIn", "ReopenIn", "ResolveIn", "RosterIn", "router"]

router = APIRouter(prefix="/api", tags=["work orders"])


def _visible(order: WorkOrder, user: Principal) -> bool:
    return (
        not is_grid_scoped(user.role)
        or order.assignee == user.username
        or (user.grid_id is not None and order.grid_id == user.grid_id)
    )


async def _order(conn: repo.Conn, order_id: int, user: Principal) -> WorkOrder:
    try:
        order = await wo.get_order(conn, order_id)
    except wo.NotFound:
        raise not_found(f"work order {order_id}") from None
    if not _visible(order, user):
        raise not_found(f"work order {order_id}")
    return order


@router.get("/orders", response_model=list[WorkOrder],
            summary="Work orders (grid workers: their grid's and their own)")
async def list_orders(
    conn: Conn,
    user: Annotated[Principal, Depends(require("orders.read"))],
    state: str | None = None,
    open_only: bool = True,
    limit: int = 200,
) -> list[WorkOrder]:
    visible_to = (user.username, user.grid_id) if is_grid_scoped(user.role) else None
    return await repo.list_orders(
        conn, state=state, open_only=open_only, visible_to=visible_to, limit=min(max(limit, 1), 1000)
    )


@router.get("/orders/{order_id}", response_model=WorkOrderDetail, summary="A work order with its timeline")
async def get_order(
    order_id: int, conn: Conn, user: Annotated[Principal, Depends(require("orders.read"))]
) -> WorkOrderDetail:
    order = await _order(conn, order_id, user)
    return WorkOrderDetail(**dict(order), timeline=await repo.order_timeline(conn, order_id))


@router.post("/orders", status_code=201, response_model=WorkOrder,
             summary="Create a work order by hand (from an alarm or not)")
async def create_order(
    body: OrderIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.create"))]
) -> WorkOrder:
    effects = wo.Effects.empty()
    async with conn.transaction():
        order = await wo.create_order(
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
    if order is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "an order for this alarm (or unit) is already open")
    await state.engine.send([], effects.changes, effects.notifications)
    return order


async def _transition(
    state: State,
    conn: Conn,
    user: Principal,
    order_id: int,
    action: OrderAction,
    *,
    assignee: str | None = None,
    note: str | None = None,
    photo: str | None = None,
    evidence: list[str] | None = None,
) -> WorkOrder:
    effects = wo.Effects.empty()
    await _order(conn, order_id, user)
    try:
        async with conn.transaction():
            order = await wo.transition(
                conn,
                order_id,
                action,
                user.username,
                state.clock.now(),
                effects,
                actor_is_manager=user.role is Role.ADMIN,
                rules=state.engine.rules,
                assignee=assignee,
                note=note,
                photo=photo,
                evidence=evidence,
            )
    except wo.WorkOrderError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await state.engine.send([], effects.changes, effects.notifications)
    return order


@router.post("/orders/{order_id}/assign", response_model=WorkOrder, summary="Assign (or re-assign) to a worker")
async def assign(
    order_id: int,
    body: AssignIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("orders.assign"))],
) -> WorkOrder:
    return await _transition(state, conn, user, order_id, "assign", assignee=body.assignee)


@router.post("/orders/{order_id}/accept", response_model=WorkOrder, summary="Accept (the assigned worker)")
async def accept(
    order_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.work"))]
) -> WorkOrder:
    return await _transition(state, conn, user, order_id, "accept")


@router.post("/orders/{order_id}/arrive", response_model=WorkOrder,
             summary="Check in on site (time recorded, optional photo)")
async def arrive(
    order_id: int, body: ArriveIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.work"))]
) -> WorkOrder:
    return await _transition(state, conn, user, order_id, "arrive", photo=body.photo)


@router.post("/orders/{order_id}/resolve", response_model=WorkOrder, summary="Resolve with a note and evidence")
async def resolve(
    order_id: int,
    body: ResolveIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("orders.work"))],
) -> WorkOrder:
    return await _transition(state, conn, user, order_id, "resolve", note=body.note, evidence=body.evidence)


@router.post("/orders/{order_id}/close", response_model=WorkOrder, summary="Verify and close (manager)")
async def close(
    order_id: int, conn: Conn, state: State, user: Annotated[Principal, Depends(require("orders.verify"))]
) -> WorkOrder:
    return await _transition(state, conn, user, order_id, "close")


@router.post("/orders/{order_id}/reopen", response_model=WorkOrder,
             summary="Re-open a resolved or closed order (manager)")
async def reopen(
    order_id: int,
    body: ReopenIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("orders.verify"))],
) -> WorkOrder:
    return await _transition(state, conn, user, order_id, "reopen", note=body.reason)


@router.get("/roster", tags=["roster"], response_model=list[RosterEntry], summary="On-duty roster")
async def list_roster(
    conn: Conn, _: Annotated[Principal, Depends(require("roster.manage"))]
) -> list[RosterEntry]:
    return await repo.list_roster(conn)


@router.post("/roster", status_code=201, tags=["roster"], response_model=RosterEntry,
             summary="Put a worker on duty for a grid")
async def add_roster(
    body: RosterIn, conn: Conn, user: Annotated[Principal, Depends(require("roster.manage"))]
) -> RosterEntry:
    async with conn.transaction():
        entry = await repo.insert_roster(conn, body.username, body.grid_id, body.starts_at, body.ends_at)
        await audit(conn, user.username, "roster.add", "roster", entry.id, json_row(entry))
    return entry
