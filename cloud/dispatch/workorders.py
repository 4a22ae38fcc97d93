"""Work orders for grid workers: assignment by grid and roster, lifecycle, SLA timers and escalation.

Lifecycle: ``open`` (nobody on duty) → ``assigned`` → ``accepted`` → ``arrived`` (check-in, optional
photo) → ``resolved`` (note + evidence) → ``closed`` by a manager, or re-opened (→ ``assigned``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue

from cloud.alarms.rules import Rules
from cloud.auth.store import audit
from cloud.changes import Change, json_row
from cloud.dispatch import repository as repo
from cloud.dispatch.models import NewWorkOrder, Notification, OrderAction, SlaTimer, WorkOrder, WorkOrderState
from cloud.dispatch.repository import Conn

log = logging.getLogger(__name__)

STATES: tuple[WorkOrderState, ...] = ("open", "assigned", "accepted", "arrived", "resolved", "closed")

# action (an OrderAction) → (states it is allowed from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[WorkOrderState], WorkOrderState]] = {
    "assign": (frozenset({"open", "assigned", "accepted"}), "assigned"),
    "accept": (frozenset({"assigned"}), "accepted"),
    "arrive": (frozenset({"accepted"}), "arrived"),
    "resolve": (frozenset({"arrived"}), "resolved"),
    "close": (frozenset({"resolved"}), "closed"),
    "reopen": (frozenset({"resolved", "closed"}), "assigned"),
}
WORKER_ACTIONS: frozenset[OrderAction] = frozenset({"accept", "arrive", "resolve"})
"""Actions only the assignee (or a manager) may take."""


class WorkOrderError(ValueError):
    """An action that is not allowed in the order's current state (or by this user)."""


class NotFound(LookupError):
    pass


def next_state(current: str, action: str) -> WorkOrderState:
    """The state ``action`` leads to from ``current``; :class:`WorkOrderError` if not allowed."""
    rule = TRANSITIONS.get(action)
    if rule is None:
        raise WorkOrderError(f"unknown action {action!r}")
    allowed_from, to = rule
    if current not in allowed_from:
        raise WorkOrderError(
            f"cannot {action} an order that is {current} (allowed from: {', '.join(sorted(allowed_from))})"
        )
    return to


@dataclass
class Effects:
    """What a transaction wants done after it commits: changes to push, notifications to send."""

    changes: list[Change]
    notifications: list[Notification]

    @classmethod
    def empty(cls) -> Effects:
        return cls([], [])


async def grid_for(conn: Conn, site_id: str, building: str | None) -> str | None:
    return await repo.grid_for(conn, site_id, building)


async def on_duty_worker(conn: Conn, grid_id: str, now: datetime) -> str | None:
    """The rostered worker of this grid with the fewest open orders right now."""
    return await repo.on_duty_worker(conn, grid_id, now)


async def create_order(
    conn: Conn,
    rules: Rules,
    now: datetime,
    *,
    site_id: str,
    order_type: str,
    title: str,
    created_by: str,
    effects: Effects,
    building: str | None = None,
    floor: int | None = None,
    unit: str | None = None,
    alarm_id: int | None = None,
    incident_id: int | None = None,
    assignee: str | None = None,
) -> WorkOrder | None:
    """Create an order, assigned to an on-duty worker of the building's grid when there is one.

    Returns None when an equivalent order already exists (one per alarm, one open welfare check per unit).
    """
    sla = rules.work_orders.sla_for(order_type)
    grid_id = await repo.grid_for(conn, site_id, building)
    if assignee is None and grid_id is not None:
        assignee = await repo.on_duty_worker(conn, grid_id, now)
    order = await repo.insert_order(
        conn,
        NewWorkOrder(
            site_id=site_id, building=building, floor=floor, unit=unit, grid_id=grid_id, type=order_type,
            title=title, state="assigned" if assignee else "open", alarm_id=alarm_id, incident_id=incident_id,
            assignee=assignee, created_by=created_by, created_at=now, dispatch_due=now + sla.dispatch,
            arrival_due=now + sla.arrive,
        ),
    )
    if order is None:
        return None
    await repo.add_event(conn, order.id, now, "created", created_by, {"type": order_type, "alarm_id": alarm_id})
    await audit(conn, created_by, "work_order.create", "work_order", order.id, {"type": order_type}, ts=now)
    if assignee:
        await repo.add_event(conn, order.id, now, "assigned", created_by, {"assignee": assignee})
        await audit(conn, created_by, "work_order.assign", "work_order", order.id, {"assignee": assignee}, ts=now)
        effects.notifications.append(
            Notification(subject=f"work order #{order.id}: {title}", body=json_row(order), recipients=[assignee])
        )
    effects.changes.append(Change.order(order, "created"))
    return order


async def get_order(conn: Conn, order_id: int, *, lock: bool = False) -> WorkOrder:
    order = await repo.get_order(conn, order_id, lock=lock)
    if order is None:
        raise NotFound(f"work order {order_id} not found")
    return order


def apply_action(
    order: WorkOrder,
    action: str,
    actor: str,
    now: datetime,
    *,
    actor_is_manager: bool = False,
    assignee: str | None = None,
    note: str | None = None,
    photo: str | None = None,
    evidence: list[str] | None = None,
    rules: Rules | None = None,
) -> tuple[WorkOrder, dict[str, JsonValue]]:
    """The order after ``action`` and the history detail to record; :class:`WorkOrderError` when not allowed.
    Workers may only act on orders assigned to them."""
    to = next_state(order.state, action)
    if action in WORKER_ACTIONS and not actor_is_manager and order.assignee != actor:
        raise WorkOrderError(f"work order {order.id} is assigned to {order.assignee!r}, not {actor!r}")
    new = order.model_copy(update={"state": to})
    detail: dict[str, JsonValue] = {}
    if action == "assign":
        if not assignee:
            raise WorkOrderError("assign needs an assignee")
        new = new.model_copy(update={"assignee": assignee})
        detail["assignee"] = assignee
    elif action == "accept":
        new = new.model_copy(update={"accepted_at": now})
    elif action == "arrive":
        new = new.model_copy(update={"arrived_at": now, "arrival_photo": photo})
        detail["photo"] = photo
    elif action == "resolve":
        if not note:
            raise WorkOrderError("resolve needs a note")
        new = new.model_copy(update={"resolved_at": now, "resolution_note": note, "evidence": list(evidence or [])})
        detail = {"note": note, "evidence": list(evidence or [])}
    elif action == "close":
        new = new.model_copy(update={"closed_at": now, "closed_by": actor})
    elif action == "reopen":
        new = new.model_copy(update={
            "reopen_count": order.reopen_count + 1, "closed_at": None, "closed_by": None, "resolved_at": None,
            "accepted_at": None, "arrived_at": None, "dispatch_breached": False, "arrival_breached": False,
        })
        if rules is not None:
            sla = rules.work_orders.sla_for(order.type)
            new = new.model_copy(update={"dispatch_due": now + sla.dispatch, "arrival_due": now + sla.arrive})
        detail["reason"] = note
    return new, detail


async def transition(
    conn: Conn,
    order_id: int,
    action: str,
    actor: str,
    now: datetime,
    effects: Effects,
    *,
    actor_is_manager: bool = False,
    assignee: str | None = None,
    note: str | None = None,
    photo: str | None = None,
    evidence: list[str] | None = None,
    rules: Rules | None = None,
) -> WorkOrder:
    """Apply one lifecycle action (:func:`apply_action`), record it in the history and the audit log."""
    order = await get_order(conn, order_id, lock=True)
    changed, detail = apply_action(
        order, action, actor, now, actor_is_manager=actor_is_manager, assignee=assignee, note=note, photo=photo,
        evidence=evidence, rules=rules,
    )
    new = await repo.save_order(conn, changed)
    await repo.add_event(conn, order_id, now, action, actor, detail)
    await audit(conn, actor, f"work_order.{action}", "work_order", order_id, detail, ts=now)
    effects.changes.append(Change.order(new, action))
    if action in ("assign", "reopen") and new.assignee:
        effects.notifications.append(
            Notification(subject=f"work order #{order_id} {action}", body=json_row(new), recipients=[new.assignee])
        )
    return new


def breached_timers(order: WorkOrder, now: datetime) -> list[SlaTimer]:
    """The SLA timers of ``order`` that ran out at ``now`` and have not been escalated yet."""
    timers: list[SlaTimer] = []
    if order.state in ("open", "assigned") and not order.dispatch_breached and order.dispatch_due <= now:
        timers.append("dispatch")
    if not order.arrival_breached and order.arrival_due <= now:
        timers.append("arrival")
    return timers


async def sla_sweep(conn: Conn, rules: Rules, now: datetime, effects: Effects) -> int:
    """Escalate orders whose dispatch or arrival timer ran out; each breach escalates once."""
    breaches = 0
    for order in await repo.orders_past_due(conn, now):
        sla = rules.work_orders.sla_for(order.type)
        for timer in breached_timers(order, now):
            breaches += 1
            await repo.mark_breached(conn, order.id, timer)
            due = order.dispatch_due if timer == "dispatch" else order.arrival_due
            detail: dict[str, JsonValue] = {"timer": timer, "due": due.isoformat(), "escalated_to": sla.escalate_to}
            await repo.add_event(conn, order.id, now, "sla_breach", "engine", detail)
            await audit(conn, "engine", "work_order.escalate", "work_order", order.id, detail, ts=now)
            effects.notifications.append(
                Notification(
                    subject=f"SLA breach ({timer}) on work order #{order.id}: {order.title}",
                    body={**json_row(order), "breach": timer},
                    role=sla.escalate_to,
                )
            )
            order = order.model_copy(update={f"{timer}_breached": True})
        effects.changes.append(Change.order(order, "sla_breach"))
    return breaches
