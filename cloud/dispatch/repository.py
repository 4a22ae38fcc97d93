"""Every SQL statement of the dispatch domain (commands, work orders, roster), returning typed records.

Functions run in the caller's connection and transaction; the policy (what state follows, when to time out,
whom to assign) lives in :mod:`cloud.dispatch.commands` and :mod:`cloud.dispatch.workorders`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row
from pydantic import JsonValue

from cloud.dispatch.models import (
    OPEN_STATES,
    Command,
    CommandAnswer,
    CommandState,
    NewCommand,
    NewWorkOrder,
    RosterEntry,
    SlaTimer,
    WorkOrder,
    WorkOrderEvent,
)

Conn = AsyncConnection[Any]
"""A connection of any row factory (each query below sets its own)."""

_COMMAND = Command.columns()
_OPEN = ", ".join(sorted(f"'{state.value}'" for state in OPEN_STATES))
"""The open command states as an SQL list (matches the ``commands_open`` partial index)."""
_ORDER = WorkOrder.columns()


# ---------------------------------------------------------------------------------------------------- commands


async def device_profile(conn: Conn, device_id: str) -> str | None:
    """The profile of a registered device (None when unknown or without one)."""
    cur = await conn.execute("SELECT profile_id FROM devices WHERE id = %s", (device_id,))
    row = await cur.fetchone()
    return str(row[0]) if row and row[0] is not None else None


async def insert_command(conn: Conn, new: NewCommand) -> Command:
    async with conn.cursor(row_factory=class_row(Command)) as cur:
        await cur.execute(
            f"""
            INSERT INTO commands (id, site_id, gateway_id, device_id, command, args, state, max_attempts, retry_safe,
                                  ack_timeout_s, created_at, expires_at, origin, incident_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            RETURNING {_COMMAND}
            """,
            (
                new.id, new.site_id, new.gateway_id, new.device_id, new.command, json.dumps(new.args),
                CommandState.QUEUED.value, new.max_attempts, new.retry_safe, new.ack_timeout_s, new.created_at,
                new.expires_at, new.origin, new.incident_id,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def get_command(conn: Conn, command_id: UUID, *, lock: bool = False) -> Command | None:
    async with conn.cursor(row_factory=class_row(Command)) as cur:
        await cur.execute(
            f"SELECT {_COMMAND} FROM commands WHERE id = %s" + (" FOR UPDATE" if lock else ""), (command_id,)
        )
        return await cur.fetchone()


async def command_with_place(conn: Conn, command_id: UUID) -> tuple[Command, str | None, str | None] | None:
    """A command with its device's site and building (where it is visible)."""
    cur = await conn.execute(
        "SELECT d.site_id, d.building FROM commands c LEFT JOIN devices d ON d.id = c.device_id WHERE c.id = %s",
        (command_id,),
    )
    place = await cur.fetchone()
    if place is None:
        return None
    command = await get_command(conn, command_id)
    if command is None:
        return None
    return command, place[0], place[1]


async def list_commands(
    conn: Conn, *, device_id: str | None, located: tuple[str, Sequence[object]], limit: int
) -> list[Command]:
    """Newest first; ``located`` is an ``AND …`` clause over ``d.site_id`` / ``d.building`` and its arguments
    (``cloud.api.deps.Scope.sql``), '' for every command."""
    clause, args = located
    where = f" AND device_id IN (SELECT d.id FROM devices d WHERE true{clause})" if clause else ""
    async with conn.cursor(row_factory=class_row(Command)) as cur:
        await cur.execute(
            f"SELECT {_COMMAND} FROM commands WHERE (%s::text IS NULL OR device_id = %s){where} "
            "ORDER BY created_at DESC LIMIT %s",
            (device_id, device_id, *args, limit),
        )
        return await cur.fetchall()


async def next_command_seq(conn: Conn) -> int:
    cur = await conn.execute("SELECT nextval('command_seq')")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def mark_sent(conn: Conn, command_id: UUID, now: datetime) -> Command | None:
    """One more attempt sent; None when the command is no longer open (answered or swept meanwhile)."""
    async with conn.cursor(row_factory=class_row(Command)) as cur:
        await cur.execute(
            "UPDATE commands SET state = %s, attempts = attempts + 1, sent_at = %s "
            f"WHERE id = %s AND state IN ({_OPEN}) RETURNING {_COMMAND}",
            (CommandState.SENT.value, now, command_id),
        )
        return await cur.fetchone()


async def answers(conn: Conn, ack_ids: Sequence[UUID | str]) -> list[CommandAnswer]:
    async with conn.cursor(row_factory=class_row(CommandAnswer)) as cur:
        await cur.execute(
            f"SELECT {CommandAnswer.columns()} FROM command_acks WHERE id = ANY(%s::uuid[])",
            ([str(i) for i in ack_ids],),
        )
        return await cur.fetchall()


async def record_answer(
    conn: Conn, command_id: UUID, state: CommandState, answer: CommandAnswer, now: datetime,
    timed_out_at: datetime | None,
) -> Command:
    async with conn.cursor(row_factory=class_row(Command)) as cur:
        await cur.execute(
            "UPDATE commands SET state = %s, reason = %s, finished_at = %s, ack_id = %s, answered_at = %s, "
            f"timed_out_at = %s WHERE id = %s RETURNING {_COMMAND}",
            (state.value, answer.reason, now, answer.id, answer.ts, timed_out_at, command_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def open_commands(conn: Conn) -> list[Command]:
    """Queued and sent commands, locked (others' locked ones skipped)."""
    async with conn.cursor(row_factory=class_row(Command)) as cur:
        await cur.execute(
            f"SELECT {_COMMAND} FROM commands WHERE state IN ({_OPEN}) FOR UPDATE SKIP LOCKED"
        )
        return await cur.fetchall()


async def finish_command(
    conn: Conn, command_id: UUID, state: CommandState, now: datetime, reason: str, timed_out_at: datetime | None
) -> Command:
    async with conn.cursor(row_factory=class_row(Command)) as cur:
        await cur.execute(
            "UPDATE commands SET state = %s, finished_at = %s, reason = %s, timed_out_at = %s "
            f"WHERE id = %s RETURNING {_COMMAND}",
            (state.value, now, reason, timed_out_at, command_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


# ---------------------------------------------------------------------------------------------------- work orders


async def grid_for(conn: Conn, site_id: str, building: str | None) -> str | None:
    if building is None:
        return None
    cur = await conn.execute(
        "SELECT id FROM grids WHERE site_id = %s AND %s = ANY(buildings) ORDER BY id LIMIT 1", (site_id, building)
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None


async def on_duty_worker(conn: Conn, grid_id: str, now: datetime) -> str | None:
    """The rostered (active) worker of this grid with the fewest open orders right now."""
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


async def insert_order(conn: Conn, new: NewWorkOrder) -> WorkOrder | None:
    """The inserted order; None when an equivalent one exists (one per alarm, one open welfare check per unit)."""
    async with conn.cursor(row_factory=class_row(WorkOrder)) as cur:
        await cur.execute(
            f"""
            INSERT INTO work_orders (site_id, building, floor, unit, grid_id, type, title, state, alarm_id, incident_id,
                                     assignee, created_by, created_at, dispatch_due, arrival_due)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT DO NOTHING
            RETURNING {_ORDER}
            """,
            (
                new.site_id, new.building, new.floor, new.unit, new.grid_id, new.type, new.title, new.state,
                new.alarm_id, new.incident_id, new.assignee, new.created_by, new.created_at, new.dispatch_due,
                new.arrival_due,
            ),
        )
        return await cur.fetchone()


async def get_order(conn: Conn, order_id: int, *, lock: bool = False) -> WorkOrder | None:
    async with conn.cursor(row_factory=class_row(WorkOrder)) as cur:
        await cur.execute(f"SELECT {_ORDER} FROM work_orders WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                          (order_id,))
        return await cur.fetchone()


async def save_order(conn: Conn, order: WorkOrder) -> WorkOrder:
    """Write an order's changeable columns (state, people, times, evidence, SLA) back; returns the stored row."""
    async with conn.cursor(row_factory=class_row(WorkOrder)) as cur:
        await cur.execute(
            f"""
            UPDATE work_orders SET state = %s, assignee = %s, accepted_at = %s, arrived_at = %s, arrival_photo = %s,
                   resolved_at = %s, resolution_note = %s, evidence = %s, closed_at = %s, closed_by = %s,
                   reopen_count = %s, dispatch_due = %s, arrival_due = %s, dispatch_breached = %s, arrival_breached = %s
            WHERE id = %s RETURNING {_ORDER}
            """,
            (
                order.state, order.assignee, order.accepted_at, order.arrived_at, order.arrival_photo,
                order.resolved_at, order.resolution_note, json.dumps(order.evidence), order.closed_at,
                order.closed_by, order.reopen_count, order.dispatch_due, order.arrival_due, order.dispatch_breached,
                order.arrival_breached, order.id,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def mark_breached(conn: Conn, order_id: int, timer: SlaTimer) -> None:
    column = {"dispatch": "dispatch_breached", "arrival": "arrival_breached"}[timer]
    await conn.execute(f"UPDATE work_orders SET {column} = true WHERE id = %s", (order_id,))


async def orders_past_due(conn: Conn, now: datetime) -> list[WorkOrder]:
    """Orders with a dispatch or arrival timer run out and not yet escalated, locked (others' skipped)."""
    async with conn.cursor(row_factory=class_row(WorkOrder)) as cur:
        await cur.execute(
            f"""
            SELECT {_ORDER} FROM work_orders
            WHERE (state IN ('open', 'assigned') AND NOT dispatch_breached AND dispatch_due <= %s)
               OR (state IN ('open', 'assigned', 'accepted') AND NOT arrival_breached AND arrival_due <= %s)
            FOR UPDATE SKIP LOCKED
            """,
            (now, now),
        )
        return await cur.fetchall()


async def list_orders(
    conn: Conn, *, state: str | None, open_only: bool, visible_to: tuple[str, str | None] | None, limit: int
) -> list[WorkOrder]:
    """Newest first; ``visible_to`` = (username, grid) restricts to that worker's and grid's orders."""
    username, grid_id = visible_to if visible_to is not None else (None, None)
    async with conn.cursor(row_factory=class_row(WorkOrder)) as cur:
        await cur.execute(
            f"SELECT {_ORDER} FROM work_orders WHERE (%s::text IS NULL OR state = %s) "
            "AND (NOT %s OR state <> 'closed') AND (NOT %s OR assignee = %s OR grid_id = %s) ORDER BY id DESC LIMIT %s",
            (state, state, open_only, visible_to is not None, username, grid_id, limit),
        )
        return await cur.fetchall()


async def add_event(
    conn: Conn, order_id: int, ts: datetime, kind: str, actor: str, detail: dict[str, JsonValue] | None = None
) -> None:
    await conn.execute(
        "INSERT INTO work_order_timeline (order_id, ts, kind, actor, detail) VALUES (%s, %s, %s, %s, %s)",
        (order_id, ts, kind, actor, json.dumps(detail or {}, default=str)),
    )


async def order_timeline(conn: Conn, order_id: int) -> list[WorkOrderEvent]:
    async with conn.cursor(row_factory=class_row(WorkOrderEvent)) as cur:
        await cur.execute(
            f"SELECT {WorkOrderEvent.columns()} FROM work_order_timeline WHERE order_id = %s ORDER BY id", (order_id,)
        )
        return await cur.fetchall()


# ---------------------------------------------------------------------------------------------------- roster


async def list_roster(conn: Conn, limit: int = 500) -> list[RosterEntry]:
    async with conn.cursor(row_factory=class_row(RosterEntry)) as cur:
        await cur.execute(f"SELECT {RosterEntry.columns()} FROM roster ORDER BY starts_at DESC LIMIT %s", (limit,))
        return await cur.fetchall()


async def insert_roster(
    conn: Conn, username: str, grid_id: str, starts_at: datetime, ends_at: datetime
) -> RosterEntry:
    async with conn.cursor(row_factory=class_row(RosterEntry)) as cur:
        await cur.execute(
            "INSERT INTO roster (username, grid_id, starts_at, ends_at) VALUES (%s, %s, %s, %s) "
            f"RETURNING {RosterEntry.columns()}",
            (username, grid_id, starts_at, ends_at),
        )
        row = await cur.fetchone()
    assert row is not None
    return row
