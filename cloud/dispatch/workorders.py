"""Work orders for grid workers: assignment by grid and roster, lifecycle, SLA timers and escalation.

Lifecycle: ``open`` (nobody on duty) → ``assigned`` → ``accepted`` → ``arrived`` (check-in, optional
photo) → ``resolved`` (note + evidence) → ``closed`` by a manager, or re-opened (→ ``assigned``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.alarms.rules import Rules
from cloud.auth.store import audit
from cloud.changes import Change, json_row
from cloud.dispatch.notify import Notification

log = logging.getLogger(__name__)

STATES = ("open", "assigned", "accepted", "arrived", "resolved", "closed")

# action → (states it is allowed from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "assign": (frozenset({"open", "assigned", "accepted"}), "assigned"),
    "accept": (frozenset({"assigned"}), "accepted"),
    "arrive": (frozenset({"accepted"}), "arrived"),
    "resolve": (frozenset({"arrived"}), "resolved"),
    "close": (frozenset({"resolved"}), "closed"),
    "reopen": (frozenset({"resolved", "closed"}), "assigned"),
}


class WorkOrderError(ValueError):
    """An action that is not allowed in the order's current state (or by this user)."""


class NotFound(LookupError):
    pass


def next_state(current: str, action: str) -> str:
    """The state ``action`` leads to from ``current``; :class:`WorkOrderError` if not allowed."""
    if action not in TRANSITIONS:
        raise WorkOrderError(f"unknown action {action!r}")
    allowed_from, to = TRANSITIONS[action]
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


async def grid_for(conn: AsyncConnection[Any], site_id: str, building: str | None) -> str | None:
    if building is None:
        return None
    cur = await conn.execute(
        "SELECT id FROM grids WHERE site_id = %s AND %s = ANY(buildings) ORDER BY id LIMIT 1", (site_id, building)
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def on_duty_worker(conn: AsyncConnection[Any], grid_id: str, now: datetime) -> str | None:
    """The rostered worker of this grid with the fewest open orders right now."""
    cur = await conn.execute(
        """
        SELECT r.username FROM roster r
        JOIN users u ON u.username = r.username AND u.active
        WHERE r.grid_id = %s AND r.starts_at <= %s AND r.ends_at > %s
        ORDER BY (SELECT count(*) FROM work_orders w WHERE w.assignee = r.username AND w.state <> 'closed'), r.username
        LIMIT 1
        """,
        (grid_id, now, now),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def timeline(
    conn: AsyncConnection[Any], order_id: int, ts: datetime, kind: str, actor: str, detail: dict[str, Any] | None = None
) -> None:
    await conn.execute(
        "INSERT INTO work_order_timeline (order_id, ts, kind, actor, detail) VALUES (%s, %s, %s, %s, %s)",
        (order_id, ts, kind, actor, json.dumps(detail or {}, default=str)),
    )


async def create_order(
    conn: AsyncConnection[Any],
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
) -> dict[str, Any] | None:
    """Create an order, assigned to an on-duty worker of the building's grid when there is one.

    Returns None when an equivalent order already exists (one per alarm, one open welfare check per unit).
    """
    sla = rules.work_orders.sla_for(order_type)
    grid_id = await grid_for(conn, site_id, building)
    if assignee is None and grid_id is not None:
        assignee = await on_duty_worker(conn, grid_id, now)
    state = "assigned" if assignee else "open"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """
            INSERT INTO work_orders (site_id, building, floor, unit, grid_id, type, title, state, alarm_id, incident_id,
                                     assignee, created_by, created_at, dispatch_due, arrival_due)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING
            RETURNING *
            """,
            (
                site_id,
                building,
                floor,
                unit,
                grid_id,
                order_type,
                title,
                state,
                alarm_id,
                incident_id,
                assignee,
                created_by,
                now,
                now + sla.dispatch,
                now + sla.arrive,
            ),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    await timeline(conn, row["id"], now, "created", created_by, {"type": order_type, "alarm_id": alarm_id})
    await audit(conn, created_by, "work_order.create", "work_order", row["id"], {"type": order_type}, ts=now)
    if assignee:
        await timeline(conn, row["id"], now, "assigned", created_by, {"assignee": assignee})
        await audit(conn, created_by, "work_order.assign", "work_order", row["id"], {"assignee": assignee}, ts=now)
        effects.notifications.append(
            Notification(subject=f"work order #{row['id']}: {title}", body=json_row(row), recipients=[assignee])
        )
    effects.changes.append(Change.order(row, "created"))
    return row


async def get_order(conn: AsyncConnection[Any], order_id: int, *, lock: bool = False) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM work_orders WHERE id = %s" + (" FOR UPDATE" if lock else ""), (order_id,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"work order {order_id} not found")
    return row


async def transition(
    conn: AsyncConnection[Any],
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
) -> dict[str, Any]:
    """Apply one lifecycle action; workers may only act on orders assigned to them."""
    row = await get_order(conn, order_id, lock=True)
    to = next_state(row["state"], action)
    if action in ("accept", "arrive", "resolve") and not actor_is_manager and row["assignee"] != actor:
        raise WorkOrderError(f"work order {order_id} is assigned to {row['assignee']!r}, not {actor!r}")
    sets: dict[str, Any] = {"state": to}
    detail: dict[str, Any] = {}
    if action == "assign":
        if not assignee:
            raise WorkOrderError("assign needs an assignee")
        sets["assignee"] = assignee
        detail["assignee"] = assignee
    elif action == "accept":
        sets["accepted_at"] = now
    elif action == "arrive":
        sets["arrived_at"] = now
        sets["arrival_photo"] = photo
        detail["photo"] = photo
    elif action == "resolve":
        if not note:
            raise WorkOrderError("resolve needs a note")
        sets["resolved_at"] = now
        sets["resolution_note"] = note
        sets["evidence"] = json.dumps(evidence or [])
        detail = {"note": note, "evidence": evidence or []}
    elif action == "close":
        sets["closed_at"] = now
        sets["closed_by"] = actor
    elif action == "reopen":
        sets["reopen_count"] = row["reopen_count"] + 1
        sets.update(closed_at=None, closed_by=None, resolved_at=None, accepted_at=None, arrived_at=None)
        sets.update(dispatch_breached=False, arrival_breached=False)
        if rules is not None:
            sla = rules.work_orders.sla_for(row["type"])
            sets["dispatch_due"] = now + sla.dispatch
            sets["arrival_due"] = now + sla.arrive
        detail["reason"] = note
    cols = ", ".join(f"{k} = %s" for k in sets)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"UPDATE work_orders SET {cols} WHERE id = %s RETURNING *", (*sets.values(), order_id))
        new = await cur.fetchone()
    assert new is not None
    await timeline(conn, order_id, now, action, actor, detail)
    await audit(conn, actor, f"work_order.{action}", "work_order", order_id, detail, ts=now)
    effects.changes.append(Change.order(new, action))
    if action in ("assign", "reopen") and new["assignee"]:
        effects.notifications.append(
            Notification(subject=f"work order #{order_id} {action}", body=json_row(new), recipients=[new["assignee"]])
        )
    return new


async def sla_sweep(conn: AsyncConnection[Any], rules: Rules, now: datetime, effects: Effects) -> int:
    """Escalate orders whose dispatch or arrival timer ran out; each breach escalates once."""
    breaches = 0
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """
            SELECT * FROM work_orders
            WHERE (state IN ('open', 'assigned') AND NOT dispatch_breached AND dispatch_due <= %s)
               OR (state IN ('open', 'assigned', 'accepted') AND NOT arrival_breached AND arrival_due <= %s)
            FOR UPDATE SKIP LOCKED
            """,
            (now, now),
        )
        rows = await cur.fetchall()
    for row in rows:
        sla = rules.work_orders.sla_for(row["type"])
        kinds = []
        if row["state"] in ("open", "assigned") and not row["dispatch_breached"] and row["dispatch_due"] <= now:
            kinds.append("dispatch")
        if not row["arrival_breached"] and row["arrival_due"] <= now:
            kinds.append("arrival")
        for kind in kinds:
            breaches += 1
            await conn.execute(f"UPDATE work_orders SET {kind}_breached = true WHERE id = %s", (row["id"],))
            detail = {"timer": kind, "due": row[f"{kind}_due"].isoformat(), "escalated_to": sla.escalate_to}
            await timeline(conn, row["id"], now, "sla_breach", "engine", detail)
            await audit(conn, "engine", "work_order.escalate", "work_order", row["id"], detail, ts=now)
            effects.notifications.append(
                Notification(
                    subject=f"SLA breach ({kind}) on work order #{row['id']}: {row['title']}",
                    body={**json_row(row), "breach": kind},
                    role=sla.escalate_to,
                )
            )
            row[f"{kind}_breached"] = True
        effects.changes.append(Change.order(row, "sla_breach"))
    return breaches
