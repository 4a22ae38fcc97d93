"""Alarm lifecycle in PostgreSQL: active/cleared × unacknowledged/acknowledged.

One active alarm per (device, key) is guarded by the partial unique index ``alarms_one_active_key``. The key
is the event's (``Event.key``: the profile row and instance, ``fire.alarm#12`` for zone 12 of a panel), so
two zones of one panel are two alarms and a clear closes only its own key; alarms the engine raises itself
(``gateway.offline``, ``device.silent``) are keyed by their type. :func:`raise_alarm` is a single
``INSERT … ON CONFLICT … DO UPDATE``, so two identical events committed milliseconds apart on two
connections yield one alarm with ``occurrence_count = 2``. Clearing sets ``active = false``, which takes
the row out of the index: the next occurrence opens a new alarm, whether or not the old one was
acknowledged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.auth.store import audit
from cloud.changes import json_row
from contract.messages import ALARM_SEVERITIES

log = logging.getLogger(__name__)

SEVERITIES = ALARM_SEVERITIES


class AlarmError(ValueError):
    pass


class AlarmNotFound(LookupError):
    pass


@dataclass(frozen=True)
class RaiseResult:
    alarm: dict[str, Any]
    created: bool


async def timeline(
    conn: AsyncConnection[Any], alarm_id: int, ts: datetime, kind: str, actor: str, detail: dict[str, Any] | None = None
) -> None:
    await conn.execute(
        "INSERT INTO alarm_timeline (alarm_id, ts, kind, actor, detail) VALUES (%s, %s, %s, %s, %s)",
        (alarm_id, ts, kind, actor, json.dumps(detail or {}, default=str)),
    )


SHOWN = "shown"
"""Timeline kind: when the raise of an alarm was first pushed to a console (the WebSocket), and to whom."""


async def note_shown(conn: AsyncConnection[Any], alarm_id: int, ts: datetime, actor: str) -> bool:
    """Record the first time an alarm's raise reached a console (once per alarm); True when this was the first.
    The fire-drill report measures "shown on the console" from it. Two consoles pushed at once: the alarm row
    lock makes the second wait and then see the first's entry."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM alarms WHERE id = %s FOR NO KEY UPDATE", (alarm_id,))
        cur = await conn.execute(
            "INSERT INTO alarm_timeline (alarm_id, ts, kind, actor, detail) SELECT %s, %s, %s, %s, '{}'::jsonb "
            "WHERE NOT EXISTS (SELECT 1 FROM alarm_timeline WHERE alarm_id = %s AND kind = %s)",
            (alarm_id, ts, SHOWN, actor, alarm_id, SHOWN),
        )
        return cur.rowcount == 1


async def raise_alarm(
    conn: AsyncConnection[Any],
    *,
    device_id: str,
    alarm_type: str,
    severity: str,
    ts: datetime,
    now: datetime,
    site_id: str | None,
    gateway_id: str | None,
    key: str | None = None,
    building: str | None = None,
    floor: int | None = None,
    unit: str | None = None,
    area: str | None = None,
    life_safety: bool = False,
    detail: dict[str, Any] | None = None,
    evidence: list[Any] | None = None,
    next_escalation_at: datetime | None = None,
    actor: str = "engine",
) -> RaiseResult:
    """Open an alarm for (device, key) — ``key`` defaults to the type — or count one more occurrence of the
    active one (atomically, race-free)."""
    if severity not in SEVERITIES:
        raise AlarmError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """
            INSERT INTO alarms AS a (site_id, gateway_id, device_id, building, floor, unit, area, type, key, severity,
                                     life_safety, first_ts, last_ts, created_at, detail, evidence, next_escalation_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (device_id, key) WHERE active DO UPDATE SET
                occurrence_count = a.occurrence_count + 1,
                last_ts = greatest(a.last_ts, EXCLUDED.last_ts),
                evidence = a.evidence || EXCLUDED.evidence,
                detail = a.detail || EXCLUDED.detail,
                clear_pending_at = NULL
            RETURNING *, (xmax = 0) AS inserted
            """,
            (
                site_id,
                gateway_id,
                device_id,
                building,
                floor,
                unit,
                area,
                alarm_type,
                key or alarm_type,
                severity,
                life_safety,
                ts,
                ts,
                now,
                json.dumps(detail or {}, default=str),
                json.dumps(evidence or [], default=str),
                next_escalation_at,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    created = bool(row.pop("inserted"))
    await timeline(
        conn,
        row["id"],
        now,
        "raised" if created else "occurrence",
        actor,
        {"ts": ts.isoformat(), "count": row["occurrence_count"], **({"evidence": evidence} if evidence else {})},
    )
    return RaiseResult(row, created)


async def get_alarm(conn: AsyncConnection[Any], alarm_id: int, *, lock: bool = False) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM alarms WHERE id = %s" + (" FOR UPDATE" if lock else ""), (alarm_id,))
        row = await cur.fetchone()
    if row is None:
        raise AlarmNotFound(f"alarm {alarm_id} not found")
    return row


async def active_alarm(conn: AsyncConnection[Any], device_id: str, key: str) -> dict[str, Any] | None:
    """The active alarm of (device, key), locked; engine-raised alarms are keyed by their type."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM alarms WHERE device_id = %s AND key = %s AND active FOR UPDATE", (device_id, key)
        )
        return await cur.fetchone()


async def clear(
    conn: AsyncConnection[Any], alarm_id: int, actor: str, now: datetime, reason: str | None = None
) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE alarms SET active = false, cleared_at = %s, cleared_by = %s, clear_pending_at = NULL, "
            "next_escalation_at = NULL WHERE id = %s AND active RETURNING *",
            (now, actor, alarm_id),
        )
        row = await cur.fetchone()
    if row is None:
        existing = await get_alarm(conn, alarm_id)
        raise AlarmError(f"alarm {existing['id']} is already cleared")
    await timeline(conn, alarm_id, now, "cleared", actor, {"reason": reason} if reason else {})
    if not actor.startswith(("engine", "device")):
        await audit(conn, actor, "alarm.clear", "alarm", alarm_id, {"reason": reason}, ts=now)
    return row


async def acknowledge(conn: AsyncConnection[Any], alarm_id: int, actor: str, now: datetime) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE alarms SET acknowledged = true, acked_by = %s, acked_at = %s, next_escalation_at = NULL "
            "WHERE id = %s AND NOT acknowledged RETURNING *",
            (actor, now, alarm_id),
        )
        row = await cur.fetchone()
    if row is None:
        await get_alarm(conn, alarm_id)
        raise AlarmError(f"alarm {alarm_id} is already acknowledged")
    await timeline(conn, alarm_id, now, "acknowledged", actor)
    await audit(conn, actor, "alarm.ack", "alarm", alarm_id, ts=now)
    return row


async def comment(conn: AsyncConnection[Any], alarm_id: int, author: str, text: str, now: datetime) -> dict[str, Any]:
    await get_alarm(conn, alarm_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO alarm_comments (alarm_id, ts, author, text) VALUES (%s, %s, %s, %s) RETURNING *",
            (alarm_id, now, author, text),
        )
        row = await cur.fetchone()
    assert row is not None
    await timeline(conn, alarm_id, now, "comment", author, {"text": text})
    await audit(conn, author, "alarm.comment", "alarm", alarm_id, {"text": text}, ts=now)
    return row


async def assign(conn: AsyncConnection[Any], alarm_id: int, assignee: str, actor: str, now: datetime) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("UPDATE alarms SET assignee = %s WHERE id = %s RETURNING *", (assignee, alarm_id))
        row = await cur.fetchone()
    if row is None:
        raise AlarmNotFound(f"alarm {alarm_id} not found")
    await timeline(conn, alarm_id, now, "assigned", actor, {"assignee": assignee})
    await audit(conn, actor, "alarm.assign", "alarm", alarm_id, {"assignee": assignee}, ts=now)
    return row


async def detail(conn: AsyncConnection[Any], alarm_id: int) -> dict[str, Any]:
    """The alarm with its timeline and comments."""
    row = json_row(await get_alarm(conn, alarm_id))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT ts, kind, actor, detail FROM alarm_timeline WHERE alarm_id = %s ORDER BY id", (alarm_id,)
        )
        row["timeline"] = [json_row(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT id, ts, author, text FROM alarm_comments WHERE alarm_id = %s ORDER BY id", (alarm_id,)
        )
        row["comments"] = [json_row(r) for r in await cur.fetchall()]
    return row
