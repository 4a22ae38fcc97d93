"""All SQL of the alarms domain: alarms and their lifecycle, timeline, comments, incidents, maintenance windows,
and the reads and writes of the decision engine. Every function runs in the caller's connection (and its
transaction) and returns records of :mod:`cloud.alarms.models`.

Alarm lifecycle in PostgreSQL: active/cleared × unacknowledged/acknowledged. One active alarm per
(device, key) is guarded by the partial unique index ``alarms_one_active_key``. The key is the event's
(``Event.key``: the profile row and instance, ``fire.alarm#12`` for zone 12 of a panel), so two zones of one
panel are two alarms and a clear closes only its own key; alarms the engine raises itself
(``gateway.offline``, ``device.silent``) are keyed by their type. :func:`raise_alarm` is a single
``INSERT … ON CONFLICT … DO UPDATE``, so two identical events committed milliseconds apart on two
connections yield one alarm with ``occurrence_count = 2``. Clearing sets ``active = false``, which takes
the row out of the index: the next occurrence opens a new alarm, whether or not the old one was
acknowledged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.alarms.models import (
    ActiveSignal,
    Alarm,
    AlarmComment,
    AlarmDetail,
    AlarmEvent,
    AlarmTimelineEntry,
    DeviceRoute,
    FoldedChild,
    GatewayRef,
    GatewayStatus,
    Incident,
    IncidentDetail,
    LinkageTarget,
    LinkOutcome,
    RaiseResult,
    SilentDevice,
    SuppressionWindow,
    WelfareUnit,
)
from cloud.auth.store import audit
from cloud.changes import json_row
from cloud.records import R, columns, row_factory
from contract.messages import ALARM_SEVERITIES

log = logging.getLogger(__name__)

SEVERITIES = ALARM_SEVERITIES

SHOWN = "shown"
"""Timeline kind: when the raise of an alarm was first pushed to a console (the WebSocket), and to whom."""

ALARM_COLUMNS = columns(Alarm)
INCIDENT_COLUMNS = columns(Incident)
WINDOW_COLUMNS = columns(SuppressionWindow)

Conn = AsyncConnection[Any]
JsonDetail = Mapping[str, object]


class AlarmError(ValueError):
    pass


class AlarmNotFound(LookupError):
    pass


def _json(value: object) -> str:
    return json.dumps(value, default=str)


async def _one(conn: Conn, model: type[R], sql: str, params: Sequence[object] = ()) -> R | None:
    async with conn.cursor(row_factory=row_factory(model)) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


async def _all(conn: Conn, model: type[R], sql: str, params: Sequence[object] = ()) -> list[R]:
    async with conn.cursor(row_factory=row_factory(model)) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


# ---------------------------------------------------------------------- alarms: lifecycle


async def timeline(
    conn: Conn, alarm_id: int, ts: datetime, kind: str, actor: str, detail: JsonDetail | None = None
) -> None:
    await conn.execute(
        "INSERT INTO alarm_timeline (alarm_id, ts, kind, actor, detail) VALUES (%s, %s, %s, %s, %s)",
        (alarm_id, ts, kind, actor, _json(detail or {})),
    )


async def note_shown(conn: Conn, alarm_id: int, ts: datetime, actor: str) -> bool:
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
    conn: Conn,
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
    detail: JsonDetail | None = None,
    evidence: Sequence[object] | None = None,
    next_escalation_at: datetime | None = None,
    actor: str = "engine",
) -> RaiseResult:
    """Open an alarm for (device, key) — ``key`` defaults to the type — or count one more occurrence of the
    active one (atomically, race-free)."""
    if severity not in SEVERITIES:
        raise AlarmError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""
            INSERT INTO alarms AS a (site_id, gateway_id, device_id, building, floor, unit, area, type, key, severity,
                                     life_safety, first_ts, last_ts, created_at, detail, evidence, next_escalation_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (device_id, key) WHERE active DO UPDATE SET
                occurrence_count = a.occurrence_count + 1,
                last_ts = greatest(a.last_ts, EXCLUDED.last_ts),
                evidence = a.evidence || EXCLUDED.evidence,
                detail = a.detail || EXCLUDED.detail,
                clear_pending_at = NULL
            RETURNING {ALARM_COLUMNS}, (xmax = 0) AS inserted
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
                _json(detail or {}),
                _json(list(evidence or [])),
                next_escalation_at,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    created = bool(row.pop("inserted"))
    alarm = Alarm.model_validate(row)
    await timeline(
        conn,
        alarm.id,
        now,
        "raised" if created else "occurrence",
        actor,
        {"ts": ts.isoformat(), "count": alarm.occurrence_count, **({"evidence": evidence} if evidence else {})},
    )
    return RaiseResult(alarm=alarm, created=created)


async def get_alarm(conn: Conn, alarm_id: int, *, lock: bool = False) -> Alarm:
    alarm = await _one(
        conn, Alarm, f"SELECT {ALARM_COLUMNS} FROM alarms WHERE id = %s" + (" FOR UPDATE" if lock else ""), (alarm_id,)
    )
    if alarm is None:
        raise AlarmNotFound(f"alarm {alarm_id} not found")
    return alarm


async def active_alarm(conn: Conn, device_id: str, key: str) -> Alarm | None:
    """The active alarm of (device, key), locked; engine-raised alarms are keyed by their type."""
    return await _one(
        conn,
        Alarm,
        f"SELECT {ALARM_COLUMNS} FROM alarms WHERE device_id = %s AND key = %s AND active FOR UPDATE",
        (device_id, key),
    )


async def clear(conn: Conn, alarm_id: int, actor: str, now: datetime, reason: str | None = None) -> Alarm:
    alarm = await _one(
        conn,
        Alarm,
        "UPDATE alarms SET active = false, cleared_at = %s, cleared_by = %s, clear_pending_at = NULL, "
        f"next_escalation_at = NULL WHERE id = %s AND active RETURNING {ALARM_COLUMNS}",
        (now, actor, alarm_id),
    )
    if alarm is None:
        existing = await get_alarm(conn, alarm_id)
        raise AlarmError(f"alarm {existing.id} is already cleared")
    await timeline(conn, alarm_id, now, "cleared", actor, {"reason": reason} if reason else {})
    if not actor.startswith(("engine", "device")):
        await audit(conn, actor, "alarm.clear", "alarm", alarm_id, {"reason": reason}, ts=now)
    return alarm


async def acknowledge(conn: Conn, alarm_id: int, actor: str, now: datetime) -> Alarm:
    alarm = await _one(
        conn,
        Alarm,
        "UPDATE alarms SET acknowledged = true, acked_by = %s, acked_at = %s, next_escalation_at = NULL "
        f"WHERE id = %s AND NOT acknowledged RETURNING {ALARM_COLUMNS}",
        (actor, now, alarm_id),
    )
    if alarm is None:
        await get_alarm(conn, alarm_id)
        raise AlarmError(f"alarm {alarm_id} is already acknowledged")
    await timeline(conn, alarm_id, now, "acknowledged", actor)
    await audit(conn, actor, "alarm.ack", "alarm", alarm_id, ts=now)
    return alarm


async def comment(conn: Conn, alarm_id: int, author: str, text: str, now: datetime) -> AlarmComment:
    await get_alarm(conn, alarm_id)
    row = await _one(
        conn,
        AlarmComment,
        f"INSERT INTO alarm_comments (alarm_id, ts, author, text) VALUES (%s, %s, %s, %s) "
        f"RETURNING {columns(AlarmComment)}",
        (alarm_id, now, author, text),
    )
    assert row is not None
    await timeline(conn, alarm_id, now, "comment", author, {"text": text})
    await audit(conn, author, "alarm.comment", "alarm", alarm_id, {"text": text}, ts=now)
    return row


async def assign(conn: Conn, alarm_id: int, assignee: str, actor: str, now: datetime) -> Alarm:
    alarm = await _one(
        conn, Alarm, f"UPDATE alarms SET assignee = %s WHERE id = %s RETURNING {ALARM_COLUMNS}", (assignee, alarm_id)
    )
    if alarm is None:
        raise AlarmNotFound(f"alarm {alarm_id} not found")
    await timeline(conn, alarm_id, now, "assigned", actor, {"assignee": assignee})
    await audit(conn, actor, "alarm.assign", "alarm", alarm_id, {"assignee": assignee}, ts=now)
    return alarm


async def detail(conn: Conn, alarm_id: int) -> AlarmDetail:
    """The alarm with its timeline and comments."""
    alarm = await get_alarm(conn, alarm_id)
    entries = await _all(
        conn,
        AlarmTimelineEntry,
        f"SELECT {columns(AlarmTimelineEntry)} FROM alarm_timeline WHERE alarm_id = %s ORDER BY id",
        (alarm_id,),
    )
    comments = await _all(
        conn,
        AlarmComment,
        f"SELECT {columns(AlarmComment)} FROM alarm_comments WHERE alarm_id = %s ORDER BY id",
        (alarm_id,),
    )
    return AlarmDetail(**dict(alarm), timeline=entries, comments=comments)


async def list_alarms(
    conn: Conn,
    *,
    active: bool | None,
    site_id: str | None,
    building: str | None,
    severity: str | None,
    limit: int,
    scope: tuple[str, Sequence[object]] = ("", ()),
) -> list[Alarm]:
    """Alarms matching the filters (None = any), most severe first then newest; ``scope`` is an ``AND …``
    clause over ``site_id`` / ``building`` and its arguments (the caller's grid)."""
    clause, scope_args = scope
    sql = (
        f"SELECT {ALARM_COLUMNS} FROM alarms WHERE (%s::boolean IS NULL OR active = %s) "
        "AND (%s::text IS NULL OR site_id = %s) AND (%s::text IS NULL OR building = %s) "
        "AND (%s::text IS NULL OR severity = %s)"
        f"{clause} ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END, "
        "id DESC LIMIT %s"
    )
    args = [active, active, site_id, site_id, building, building, severity, severity, *scope_args, limit]
    return await _all(conn, Alarm, sql, args)


# ---------------------------------------------------------------------- incidents


async def list_incidents(
    conn: Conn, state: str | None, scope: tuple[str, Sequence[object]] = ("", ())
) -> list[Incident]:
    clause, scope_args = scope
    return await _all(
        conn,
        Incident,
        f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE (%s::text IS NULL OR state = %s){clause} "
        "ORDER BY id DESC LIMIT 500",
        (state, state, *scope_args),
    )


async def get_incident(conn: Conn, incident_id: int) -> Incident | None:
    return await _one(conn, Incident, f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = %s", (incident_id,))


async def incident_detail(conn: Conn, incident: Incident) -> IncidentDetail:
    """The incident with its alarms, commands and work orders."""
    alarms = await _all(
        conn, Alarm, f"SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ANY(%s) ORDER BY id", (incident.alarm_ids,)
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM commands WHERE incident_id = %s ORDER BY created_at, device_id", (incident.id,)
        )
        commands = [json_row(r) for r in await cur.fetchall()]
        await cur.execute("SELECT * FROM work_orders WHERE incident_id = %s ORDER BY id", (incident.id,))
        orders = [json_row(r) for r in await cur.fetchall()]
    return IncidentDetail(**dict(incident), alarms=alarms, commands=commands, work_orders=orders)


async def close_incident(conn: Conn, incident_id: int, actor: str, now: datetime) -> Incident | None:
    """Close an open incident (audited); None when there is no open incident of that id."""
    incident = await _one(
        conn,
        Incident,
        "UPDATE incidents SET state = 'closed', closed_at = %s, closed_by = %s WHERE id = %s AND state = 'open' "
        f"RETURNING {INCIDENT_COLUMNS}",
        (now, actor, incident_id),
    )
    if incident is not None:
        await audit(conn, actor, "incident.close", "incident", incident_id, ts=now)
    return incident


async def open_incident(
    conn: Conn, site: str, building: str, kind: str, rule: str, alarm_ids: list[int], now: datetime
) -> Incident | None:
    """Open an incident (one open per building and kind) for ``alarm_ids``, marking them and their timelines,
    audited. None when one is open already: the alarms join it instead."""
    incident = await _one(
        conn,
        Incident,
        f"""
        INSERT INTO incidents (site_id, building, kind, rule, alarm_ids, opened_at)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (site_id, building, kind) WHERE state = 'open' DO NOTHING
        RETURNING {INCIDENT_COLUMNS}
        """,
        (site, building, kind, rule, alarm_ids, now),
    )
    if incident is None:
        cur = await conn.execute(
            "UPDATE incidents SET alarm_ids = "
            "(SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(alarm_ids || %s::bigint[]) x) "
            "WHERE site_id = %s AND building = %s AND kind = %s AND state = 'open' RETURNING id",
            (alarm_ids, site, building, kind),
        )
        joined = await cur.fetchone()
        if joined is not None:
            await conn.execute("UPDATE alarms SET incident_id = %s WHERE id = ANY(%s)", (joined[0], alarm_ids))
        return None
    await conn.execute("UPDATE alarms SET incident_id = %s WHERE id = ANY(%s)", (incident.id, alarm_ids))
    for aid in alarm_ids:
        await timeline(conn, aid, now, "incident", "engine", {"incident_id": incident.id, "kind": kind})
    await audit(
        conn,
        "engine",
        "incident.open",
        "incident",
        incident.id,
        {"kind": kind, "rule": rule, "alarms": alarm_ids},
        ts=now,
    )
    return incident


# ---------------------------------------------------------------------- maintenance windows


async def list_windows(conn: Conn) -> list[SuppressionWindow]:
    return await _all(
        conn, SuppressionWindow, f"SELECT {WINDOW_COLUMNS} FROM suppression_windows ORDER BY starts_at DESC LIMIT 500"
    )


async def create_window(
    conn: Conn,
    *,
    site_id: str,
    building: str | None,
    floor: int | None,
    device_id: str | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    actor: str,
) -> SuppressionWindow:
    """Open a maintenance window (audited)."""
    window = await _one(
        conn,
        SuppressionWindow,
        "INSERT INTO suppression_windows (site_id, building, floor, device_id, starts_at, ends_at, reason, created_by) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {WINDOW_COLUMNS}",
        (site_id, building, floor, device_id, starts_at, ends_at, reason, actor),
    )
    assert window is not None
    await audit(conn, actor, "suppression.create", "suppression_window", window.id, json_row(window))
    return window


async def window_reason(
    conn: Conn, site_id: str, device_id: str, building: str | None, floor: int | None, now: datetime
) -> str | None:
    """The reason of a maintenance window covering the device (or its building / floor) at ``now``."""
    cur = await conn.execute(
        """
        SELECT reason FROM suppression_windows
        WHERE site_id = %s AND starts_at <= %s AND ends_at > %s
          AND (device_id IS NULL OR device_id = %s)
          AND (building IS NULL OR building = %s)
          AND (floor IS NULL OR floor = %s)
        LIMIT 1
        """,
        (site_id, now, now, device_id, building, floor),
    )
    row = await cur.fetchone()
    return str(row[0]) if row else None


# ---------------------------------------------------------------------- events → alarms


async def claim_event(conn: Conn, event_id: str) -> bool:
    """Claim an event for handling; False when it was handled already (NOTIFY and callback both delivered it)."""
    cur = await conn.execute(
        "INSERT INTO alarm_event_links (event_id, outcome) VALUES (%s, 'pending') ON CONFLICT DO NOTHING",
        (event_id,),
    )
    return cur.rowcount == 1


async def link_event(
    conn: Conn, event_id: str, alarm_id: int | None, outcome: LinkOutcome, reason: str | None = None
) -> None:
    await conn.execute(
        "UPDATE alarm_event_links SET alarm_id = %s, outcome = %s, reason = %s WHERE event_id = %s",
        (alarm_id, outcome, reason, event_id),
    )


async def alarm_event(conn: Conn, event_id: str) -> AlarmEvent | None:
    """The event with its alarm key and place: the event's location (a panel zone's floor) when the gateway gave
    one, else the device's. Events stored before keys existed read as key = type."""
    return await _one(
        conn,
        AlarmEvent,
        """
        SELECT e.id, e.device_id, e.type, e.severity, e.active, e.life_safety, e.ts, e.detail, e.evidence,
               coalesce(e.key, e.type) AS alarm_key, d.site_id,
               CASE WHEN e.location IS NULL THEN d.building
                    ELSE coalesce(e.location->>'building', d.building) END AS building,
               CASE WHEN e.location IS NULL THEN d.floor ELSE (e.location->>'floor')::int END AS floor,
               CASE WHEN e.location IS NULL THEN d.unit ELSE e.location->>'unit' END AS unit,
               e.location->>'area' AS area,
               d.profile_id, g.state AS gateway_state, coalesce(d.gateway_id, e.gateway_id) AS gw
        FROM events e
        LEFT JOIN devices d ON d.id = e.device_id
        LEFT JOIN gateways g ON g.id = coalesce(d.gateway_id, e.gateway_id)
        WHERE e.id = %s
        """,
        (event_id,),
    )


async def unlinked_events(conn: Conn, since: timedelta) -> list[UUID]:
    """Events of the last ``since`` no decision has been recorded for, oldest first."""
    cur = await conn.execute(
        "SELECT e.id FROM events e WHERE e.ts > now() - %s::interval AND NOT EXISTS "
        "(SELECT 1 FROM alarm_event_links l WHERE l.event_id = e.id) ORDER BY e.ts, e.seq",
        (since,),
    )
    return [row[0] for row in await cur.fetchall()]


async def recent_alarm_count(conn: Conn, device_id: str, key: str, since: datetime) -> int:
    """How many alarms (device, key) opened after ``since``."""
    cur = await conn.execute(
        "SELECT count(*) FROM alarms WHERE device_id = %s AND key = %s AND created_at > %s", (device_id, key, since)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def defer_clear(conn: Conn, alarm_id: int, until: datetime) -> None:
    """Mark the alarm flapping and defer its clear until ``until``."""
    await conn.execute("UPDATE alarms SET flapping = true, clear_pending_at = %s WHERE id = %s", (until, alarm_id))


async def fold(conn: Conn, parent_id: int, device_id: str, now: datetime) -> Alarm:
    """Count ``device_id`` into the parent alarm (its ``detail.devices``), with a timeline entry."""
    alarm = await _one(
        conn,
        Alarm,
        "UPDATE alarms SET folded_count = folded_count + 1, "
        "detail = jsonb_set(detail, '{devices}', coalesce(detail->'devices', '[]'::jsonb) || to_jsonb(%s::text)) "
        f"WHERE id = %s RETURNING {ALARM_COLUMNS}",
        (device_id, parent_id),
    )
    assert alarm is not None
    await timeline(conn, parent_id, now, "folded", "engine", {"device": device_id})
    return alarm


async def lock_correlation(conn: Conn, name: str) -> None:
    """Serialise correlation of one rule and building (a transaction-scoped advisory lock)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


async def active_signals(
    conn: Conn, site: str, building: str, types: Sequence[str], *, floor: int | None, by_floor: bool
) -> list[ActiveSignal]:
    """Active alarms of ``types`` in the building (and on ``floor`` when ``by_floor``)."""
    floor_clause = " AND floor IS NOT DISTINCT FROM %s" if by_floor else ""
    params: list[object] = [site, building, list(types)]
    if by_floor:
        params.append(floor)
    return await _all(
        conn,
        ActiveSignal,
        f"SELECT {columns(ActiveSignal)} FROM alarms "
        f"WHERE active AND site_id = %s AND building = %s AND type = ANY(%s){floor_clause}",
        params,
    )


async def linkage_targets(conn: Conn, site: str, building: str | None, profiles: Sequence[str]) -> list[LinkageTarget]:
    """The building's devices of ``profiles`` that sit behind a gateway."""
    return await _all(
        conn,
        LinkageTarget,
        "SELECT id AS device_id, gateway_id FROM devices WHERE site_id = %s AND building = %s "
        "AND profile_id = ANY(%s) AND gateway_id IS NOT NULL ORDER BY id",
        (site, building, list(profiles)),
    )


async def device_route(conn: Conn, device_id: str) -> DeviceRoute | None:
    return await _one(
        conn, DeviceRoute, "SELECT site_id, gateway_id, profile_id FROM devices WHERE id = %s", (device_id,)
    )


# ---------------------------------------------------------------------- gateways and supervision


async def gateway_status(conn: Conn, gateway_id: str) -> GatewayStatus | None:
    return await _one(conn, GatewayStatus, "SELECT site_id, state FROM gateways WHERE id = %s", (gateway_id,))


async def offline_children(conn: Conn, gateway_id: str, types: Sequence[str]) -> list[FoldedChild]:
    """Active alarms of ``types`` of the gateway's devices, locked."""
    return await _all(
        conn,
        FoldedChild,
        "SELECT a.id, a.device_id FROM alarms a JOIN devices d ON d.id = a.device_id "
        "WHERE a.active AND a.type = ANY(%s) AND d.gateway_id = %s FOR UPDATE OF a",
        (list(types), gateway_id),
    )


async def silent_gateways(conn: Conn, silent_since: datetime, offline_type: str) -> list[GatewayRef]:
    """Gateways not heard from since ``silent_since`` without an active ``offline_type`` alarm."""
    return await _all(
        conn,
        GatewayRef,
        "SELECT g.id, g.site_id FROM gateways g WHERE g.last_seen < %s AND NOT EXISTS "
        "(SELECT 1 FROM alarms a WHERE a.device_id = g.id AND a.type = %s AND a.active)",
        (silent_since, offline_type),
    )


async def silent_devices(
    conn: Conn, silent_since: datetime, gateway_type: str, offline_types: Sequence[str]
) -> list[SilentDevice]:
    """Devices not heard from since ``silent_since``, with their gateway's active ``gateway_type`` alarm and
    whether they have an active alarm of ``offline_types``."""
    return await _all(
        conn,
        SilentDevice,
        """
        SELECT d.id, d.site_id, d.gateway_id, d.building, d.floor, d.profile_id, d.last_seen,
               (SELECT a.id FROM alarms a
                WHERE a.device_id = d.gateway_id AND a.type = %s AND a.active) AS gw_alarm,
               EXISTS (SELECT 1 FROM alarms a
                       WHERE a.device_id = d.id AND a.type = ANY(%s) AND a.active) AS has_alarm
        FROM devices d WHERE d.last_seen IS NOT NULL AND d.last_seen < %s
        """,
        (gateway_type, list(offline_types), silent_since),
    )


async def folded_already(conn: Conn, alarm_id: int, device_id: str) -> bool:
    """Whether ``device_id`` is folded into the alarm already."""
    cur = await conn.execute("SELECT detail->'devices' ? %s FROM alarms WHERE id = %s", (device_id, alarm_id))
    row = await cur.fetchone()
    return bool(row and row[0])


async def heard_again(conn: Conn, alarm_type: str) -> list[int]:
    """Active ``alarm_type`` alarms whose device was heard from after the alarm's first occurrence, locked."""
    cur = await conn.execute(
        "SELECT a.id FROM alarms a JOIN devices d ON d.id = a.device_id "
        "WHERE a.active AND a.type = %s AND d.last_seen > a.first_ts FOR UPDATE OF a",
        (alarm_type,),
    )
    return [int(row[0]) for row in await cur.fetchall()]


# ---------------------------------------------------------------------- timers


async def due_escalations(conn: Conn, now: datetime) -> list[Alarm]:
    """Active unacknowledged alarms due for escalation, locked (ones locked elsewhere are skipped)."""
    return await _all(
        conn,
        Alarm,
        f"SELECT {ALARM_COLUMNS} FROM alarms WHERE active AND NOT acknowledged AND next_escalation_at <= %s "
        "ORDER BY next_escalation_at FOR UPDATE SKIP LOCKED",
        (now,),
    )


async def stop_escalation(conn: Conn, alarm_id: int) -> None:
    await conn.execute("UPDATE alarms SET next_escalation_at = NULL WHERE id = %s", (alarm_id,))


async def escalate(conn: Conn, alarm_id: int, level: int, next_at: datetime | None) -> Alarm:
    alarm = await _one(
        conn,
        Alarm,
        f"UPDATE alarms SET escalation_level = %s, next_escalation_at = %s WHERE id = %s RETURNING {ALARM_COLUMNS}",
        (level, next_at, alarm_id),
    )
    assert alarm is not None
    return alarm


async def pending_clears(conn: Conn, now: datetime) -> list[int]:
    """Active alarms whose deferred (flapping) clear is due, locked (ones locked elsewhere are skipped)."""
    cur = await conn.execute(
        "SELECT id FROM alarms WHERE active AND clear_pending_at <= %s FOR UPDATE SKIP LOCKED", (now,)
    )
    return [int(row[0]) for row in await cur.fetchall()]


async def welfare_candidates(conn: Conn, door_profiles: Sequence[str]) -> list[WelfareUnit]:
    """Welfare units without an open welfare check, with their last door activity."""
    return await _all(
        conn,
        WelfareUnit,
        """
        SELECT w.site_id, w.building, w.unit,
               (SELECT max(e.ts) FROM events e JOIN devices d ON d.id = e.device_id
                WHERE d.site_id = w.site_id AND d.building = w.building AND d.unit = w.unit
                  AND d.profile_id = ANY(%s)) AS last_activity
        FROM welfare_units w
        WHERE NOT EXISTS (SELECT 1 FROM work_orders o WHERE o.type = 'welfare_check' AND o.state <> 'closed'
                          AND o.site_id = w.site_id AND o.building = w.building AND o.unit = w.unit)
        """,
        (list(door_profiles),),
    )
