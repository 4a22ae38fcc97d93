"""The decision engine: events → alarms → correlation / suppression → incidents, linkage, work orders.

Fed by ingest as events commit — ``LISTEN xq_events`` (payloads ``{"events": [...]}``,
``{"acks": [...]}``, ``{"gateways": [...]}``) or ingest's in-process ``on_committed`` callback; both
call :meth:`DecisionEngine.handle_events` / :meth:`handle_acks` / :meth:`handle_gateways`. Timers
(escalation, heartbeat supervision, command time-outs, SLA, flapping damping, welfare checks) run in
:meth:`DecisionEngine.tick`, driven by an injectable :class:`~contract.clock.Clock`.

Each event is handled in its own transaction; ``alarm_event_links`` makes handling idempotent, so an
event delivered both by NOTIFY and by the callback is counted once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from cloud.alarms import store
from cloud.alarms.bus import ChangeBus
from cloud.alarms.rules import CorrelationRule, Rules
from cloud.auth.store import audit
from cloud.changes import Change, json_row
from cloud.dispatch import commands as cmds
from cloud.dispatch import workorders as wo
from cloud.dispatch.notify import Notification, Notifier
from cloud.dispatch.validate import check_command
from contract.clock import Clock, SystemClock
from device_profiles import Catalog, load_catalog
from device_profiles.linkage import Signal, confirming_signals

log = logging.getLogger(__name__)

CHANNEL = "xq_events"
GATEWAY_OFFLINE = "gateway.offline"
DEVICE_SILENT = "device.silent"
OFFLINE_TYPES = ("device.offline", DEVICE_SILENT)


@dataclass
class Effects(wo.Effects):
    """Post-commit work of one transaction."""

    commands: list[UUID] = field(default_factory=list)

    @classmethod
    def empty(cls) -> Effects:
        return cls([], [], [])


class DecisionEngine:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        rules: Rules,
        *,
        clock: Clock | None = None,
        publisher: cmds.Publisher | None = None,
        bus: ChangeBus | None = None,
        notifier: Notifier | None = None,
        catalog: Catalog | None = None,
        command_timeouts: cmds.CommandTimeouts | None = None,
    ) -> None:
        self._catalog = catalog
        self.pool = pool
        self.command_timeouts = command_timeouts or cmds.CommandTimeouts()
        self.rules = rules
        self.clock = clock or SystemClock()
        self.publisher = publisher
        self.bus = bus or ChangeBus()
        self.notifier = notifier or Notifier()

    @property
    def catalog(self) -> Catalog:
        """The device profiles commands are checked against (the shipped ones unless given)."""
        if self._catalog is None:
            self._catalog = load_catalog()
        return self._catalog

    # ------------------------------------------------------------------ entry points

    async def handle_events(self, ids: Iterable[UUID | str]) -> None:
        for event_id in ids:
            effects = Effects.empty()
            try:
                async with self.pool.connection() as conn, conn.transaction():
                    await self._handle_event(conn, str(event_id), effects)
            except psycopg.Error:
                log.exception("event %s: decision failed; it will be retried on the next delivery", event_id)
                continue
            await self._flush(effects)

    async def handle_acks(self, ids: Iterable[UUID | str]) -> None:
        effects = Effects.empty()
        async with self.pool.connection() as conn, conn.transaction():
            effects.changes.extend(await cmds.apply_acks(conn, [str(i) for i in ids], self.clock.now()))
        await self._flush(effects)

    async def handle_gateways(self, ids: Iterable[str]) -> None:
        for gateway_id in ids:
            effects = Effects.empty()
            async with self.pool.connection() as conn, conn.transaction():
                await self._handle_gateway(conn, gateway_id, effects)
            await self._flush(effects)

    async def handle_payload(self, payload: str) -> None:
        """One ``xq_events`` notification payload."""
        try:
            data = json.loads(payload)
        except json.JSONDecodeError:
            log.warning("ignoring malformed %s payload %r", CHANNEL, payload[:200])
            return
        if not isinstance(data, dict):
            return
        if data.get("events"):
            await self.handle_events(data["events"])
        if data.get("acks"):
            await self.handle_acks(data["acks"])
        if data.get("gateways"):
            await self.handle_gateways(data["gateways"])

    async def listen(self, dsn: str, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> None:
        """LISTEN on ``xq_events`` and handle each notification; reconnects when the database goes away."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await self.catch_up()
                    if ready is not None:
                        ready.set()
                    gen = conn.notifies()
                    async for note in gen:
                        try:
                            await self.handle_payload(note.payload)
                        except psycopg.OperationalError:
                            raise
                        except psycopg.Error:
                            log.exception("decision on %s payload %r failed; continuing", CHANNEL, note.payload[:200])
                        if stop.is_set():
                            break
            except psycopg.OperationalError as exc:
                log.warning("listener lost the database (%s); reconnecting in 1 s", exc)
                await asyncio.sleep(1)

    async def catch_up(self, since: timedelta = timedelta(days=1)) -> int:
        """Handle events committed while no listener was connected (PostgreSQL does not keep NOTIFYs for an
        absent listener: the engine starting after ingest, a database restart). Idempotent; returns how many."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT e.id FROM events e WHERE e.ts > now() - %s::interval AND NOT EXISTS "
                "(SELECT 1 FROM alarm_event_links l WHERE l.event_id = e.id) ORDER BY e.ts, e.seq",
                (since,),
            )
            ids = [row[0] for row in await cur.fetchall()]
        if ids:
            log.info("catching up on %d event(s) stored while the engine was not listening", len(ids))
            await self.handle_events(ids)
        return len(ids)

    async def run_timers(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except psycopg.Error:
                log.exception("timer tick failed; next tick in %.1f s", interval)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ events

    async def _handle_event(self, conn: AsyncConnection[Any], event_id: str, effects: Effects) -> None:
        claimed = await conn.execute(
            "INSERT INTO alarm_event_links (event_id, outcome) VALUES (%s, 'pending') ON CONFLICT DO NOTHING",
            (event_id,),
        )
        if claimed.rowcount == 0:
            return  # already handled (NOTIFY and callback both delivered it)
        async with conn.cursor(row_factory=dict_row) as cur:
            # The alarm's place: the event's location (a panel zone's floor) when the gateway gave one, else
            # the device's. Events stored before keys existed read as key = type.
            await cur.execute(
                """
                SELECT e.*, coalesce(e.key, e.type) AS alarm_key, d.site_id,
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
            ev = await cur.fetchone()
        if ev is None:
            await self._link(conn, event_id, None, "ignored", "event row not found")
            return
        now = self.clock.now()
        if ev["type"] in self.rules.ignore_events or ev["severity"] not in store.SEVERITIES:
            await self._link(conn, event_id, None, "ignored", f"{ev['type']}/{ev['severity']} is not an alarm")
            return
        if ev["active"]:
            await self._raise_from_event(conn, ev, now, effects)
        else:
            await self._clear_from_event(conn, ev, now, effects)

    async def _link(
        self, conn: AsyncConnection[Any], event_id: str, alarm_id: int | None, outcome: str, reason: str | None = None
    ) -> None:
        await conn.execute(
            "UPDATE alarm_event_links SET alarm_id = %s, outcome = %s, reason = %s WHERE event_id = %s",
            (alarm_id, outcome, reason, event_id),
        )

    async def _window_for(self, conn: AsyncConnection[Any], ev: dict[str, Any], now: datetime) -> str | None:
        cur = await conn.execute(
            """
            SELECT reason FROM suppression_windows
            WHERE site_id = %s AND starts_at <= %s AND ends_at > %s
              AND (device_id IS NULL OR device_id = %s)
              AND (building IS NULL OR building = %s)
              AND (floor IS NULL OR floor = %s)
            LIMIT 1
            """,
            (ev["site_id"], now, now, ev["device_id"], ev["building"], ev["floor"]),
        )
        row = await cur.fetchone()
        return str(row[0]) if row else None

    async def _raise_from_event(
        self, conn: AsyncConnection[Any], ev: dict[str, Any], now: datetime, effects: Effects
    ) -> None:
        event_id = str(ev["id"])
        window = await self._window_for(conn, ev, now) if ev["site_id"] else None
        if window is not None:
            await self._link(conn, event_id, None, "suppressed", f"maintenance window: {window}")
            return
        if ev["type"] in OFFLINE_TYPES and self.rules.suppression.gateway_offline and ev["gw"]:
            parent = await store.active_alarm(conn, ev["gw"], GATEWAY_OFFLINE)
            if parent is not None:
                await self._fold(conn, parent, ev["device_id"], now, effects)
                await self._link(conn, event_id, parent["id"], "folded", "gateway offline")
                return
        steps = self.rules.escalation_for(ev["severity"])
        res = await store.raise_alarm(
            conn,
            device_id=ev["device_id"],
            alarm_type=ev["type"],
            key=ev["alarm_key"],
            severity=ev["severity"],
            ts=ev["ts"],
            now=now,
            site_id=ev["site_id"],
            gateway_id=ev["gw"],
            building=ev["building"],
            floor=ev["floor"],
            unit=ev["unit"],
            area=ev["area"],
            life_safety=ev["life_safety"],
            detail={**ev["detail"], "event_id": event_id},
            evidence=ev["evidence"],
            next_escalation_at=now + steps[0].after if steps else None,
        )
        alarm = res.alarm
        await self._link(conn, event_id, alarm["id"], "raised" if res.created else "occurrence")
        effects.changes.append(Change.alarm(alarm, "raised" if res.created else "occurrence"))
        if not res.created:
            return
        if ev["site_id"] and ev["building"]:
            for corr in self.rules.correlation:
                if alarm["type"] in corr.signals:
                    await self._correlate(conn, corr, alarm, now, effects)
        for disp in self.rules.dispatch:
            if disp.alarm == alarm["type"] and ev["site_id"]:
                incident_id = None
                if disp.incident:
                    incident_id = await self._open_incident(
                        conn, ev["site_id"], ev["building"] or "", disp.incident, disp.name, [alarm["id"]], now, effects
                    )
                if disp.linkage and incident_id is not None:
                    await self._linkage(conn, disp.linkage, ev["site_id"], ev["building"], incident_id, now, effects)
                if disp.work_order:
                    await self._order_for_alarm(conn, alarm, disp.work_order, incident_id, now, effects)
        for auto in self.rules.work_orders.from_alarms:
            if auto.alarm == alarm["type"] and ev["site_id"]:
                await self._order_for_alarm(conn, alarm, auto.type, None, now, effects)

    async def _clear_from_event(
        self, conn: AsyncConnection[Any], ev: dict[str, Any], now: datetime, effects: Effects
    ) -> None:
        event_id = str(ev["id"])
        alarm = await store.active_alarm(conn, ev["device_id"], ev["alarm_key"])
        if alarm is None:
            await self._link(conn, event_id, None, "ignored", "no active alarm to clear")
            return
        flap = self.rules.suppression.flapping
        cur = await conn.execute(
            "SELECT count(*) FROM alarms WHERE device_id = %s AND key = %s AND created_at > %s",
            (ev["device_id"], ev["alarm_key"], now - flap.window),
        )
        recent = (await cur.fetchone() or [0])[0]
        changes = 2 * int(recent) + max(0, alarm["occurrence_count"] - 1)
        if changes >= flap.max_changes:
            await conn.execute(
                "UPDATE alarms SET flapping = true, clear_pending_at = %s WHERE id = %s", (now + flap.hold, alarm["id"])
            )
            if not alarm["flapping"]:
                await store.timeline(conn, alarm["id"], now, "flapping", "engine", {"hold": flap.hold.total_seconds()})
            await self._link(conn, event_id, alarm["id"], "damped", "flapping: clear deferred")
            return
        row = await store.clear(conn, alarm["id"], "device", now)
        await self._link(conn, event_id, alarm["id"], "cleared")
        effects.changes.append(Change.alarm(row, "cleared"))

    async def _fold(
        self, conn: AsyncConnection[Any], parent: dict[str, Any], device_id: str, now: datetime, effects: Effects
    ) -> None:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "UPDATE alarms SET folded_count = folded_count + 1, "
                "detail = jsonb_set(detail, '{devices}', "
                "coalesce(detail->'devices', '[]'::jsonb) || to_jsonb(%s::text)) "
                "WHERE id = %s RETURNING *",
                (device_id, parent["id"]),
            )
            row = await cur.fetchone()
        assert row is not None
        await store.timeline(conn, parent["id"], now, "folded", "engine", {"device": device_id})
        effects.changes.append(Change.alarm(row, "folded"))

    # ------------------------------------------------------------------ correlation and actions

    async def _correlate(
        self, conn: AsyncConnection[Any], corr: CorrelationRule, alarm: dict[str, Any], now: datetime, effects: Effects
    ) -> None:
        site, building = alarm["site_id"], alarm["building"]
        # Serialise correlation per building so two racing signals see each other.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"corr:{site}:{building}:{corr.name}",))
        floor_clause = "AND floor IS NOT DISTINCT FROM %s" if corr.scope == "floor" else ""
        params: list[Any] = [site, building, corr.signals]
        if corr.scope == "floor":
            params.append(alarm["floor"])
        cur = await conn.execute(
            f"""
            SELECT id, device_id, key, first_ts FROM alarms
            WHERE active AND site_id = %s AND building = %s AND type = ANY(%s) {floor_clause}
            """,
            params,
        )
        # A signal is (device, key) — the definition the gateway's local linkage uses too: two zones of one
        # panel are two signals, one zone raised twice is one (GB 50116 §4.1.6).
        ids: dict[Signal, int] = {}
        raised: dict[Signal, float] = {}
        for alarm_id, device_id, key, first_ts in await cur.fetchall():
            signal = Signal(device_id, key)
            ids[signal] = int(alarm_id)
            raised[signal] = first_ts.timestamp()
        confirming = confirming_signals(raised, corr.min_signals, corr.window.total_seconds())
        if Signal(alarm["device_id"], alarm["key"]) not in confirming:
            return
        alarm_ids = sorted(ids[s] for s in confirming)
        incident_id = await self._open_incident(conn, site, building, corr.incident, corr.name, alarm_ids, now, effects)
        if incident_id is None:
            return
        if corr.linkage:
            await self._linkage(conn, corr.linkage, site, building, incident_id, now, effects)
        if corr.work_order:
            await wo.create_order(
                conn,
                self.rules,
                now,
                site_id=site,
                building=building,
                floor=alarm["floor"],
                order_type=corr.work_order,
                title=f"{corr.incident} confirmed in building {building}",
                created_by="engine",
                effects=effects,
                incident_id=incident_id,
            )

    async def _open_incident(
        self,
        conn: AsyncConnection[Any],
        site: str,
        building: str,
        kind: str,
        rule: str,
        alarm_ids: list[int],
        now: datetime,
        effects: Effects,
    ) -> int | None:
        """Open an incident (one open per building and kind); None when one is already open (alarms join it)."""
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                """
                INSERT INTO incidents (site_id, building, kind, rule, alarm_ids, opened_at)
                VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (site_id, building, kind) WHERE state = 'open' DO NOTHING
                RETURNING *
                """,
                (site, building, kind, rule, alarm_ids, now),
            )
            row = await cur.fetchone()
            if row is None:
                await cur.execute(
                    "UPDATE incidents SET alarm_ids = "
                    "(SELECT array_agg(DISTINCT x ORDER BY x) FROM unnest(alarm_ids || %s::bigint[]) x) "
                    "WHERE site_id = %s AND building = %s AND kind = %s AND state = 'open' RETURNING id",
                    (alarm_ids, site, building, kind),
                )
                joined = await cur.fetchone()
                if joined is not None:
                    await conn.execute(
                        "UPDATE alarms SET incident_id = %s WHERE id = ANY(%s)", (joined["id"], alarm_ids)
                    )
                return None
        await conn.execute("UPDATE alarms SET incident_id = %s WHERE id = ANY(%s)", (row["id"], alarm_ids))
        for aid in alarm_ids:
            await store.timeline(conn, aid, now, "incident", "engine", {"incident_id": row["id"], "kind": kind})
        await audit(
            conn,
            "engine",
            "incident.open",
            "incident",
            row["id"],
            {"kind": kind, "rule": rule, "alarms": alarm_ids},
            ts=now,
        )
        effects.changes.append(Change.incident(row, "opened"))
        effects.notifications.append(
            Notification(
                subject=f"incident: {kind} in building {building}", body=json_row(row), role="property_manager"
            )
        )
        return int(row["id"])

    async def _linkage(
        self,
        conn: AsyncConnection[Any],
        plan_name: str,
        site: str,
        building: str | None,
        incident_id: int,
        now: datetime,
        effects: Effects,
    ) -> None:
        plan = self.rules.linkage[plan_name]
        for step in plan.steps:
            cur = await conn.execute(
                "SELECT id, gateway_id FROM devices WHERE site_id = %s AND building = %s AND profile_id = ANY(%s) "
                "AND gateway_id IS NOT NULL ORDER BY id",
                (site, building, step.profiles),
            )
            for device_id, gateway_id in await cur.fetchall():
                cid = await cmds.queue_command(
                    conn,
                    site_id=site,
                    gateway_id=gateway_id,
                    device_id=device_id,
                    command=step.command,
                    args=dict(step.args),
                    origin=f"incident:{incident_id}",
                    now=now,
                    ack_timeout=plan.ack_timeout,
                    timeouts=self.command_timeouts,
                    max_attempts=plan.retries + 1,
                    retry_safe=True,
                    expires_after=plan.expires_after,
                    incident_id=incident_id,
                )
                effects.commands.append(cid)

    async def _order_for_alarm(
        self,
        conn: AsyncConnection[Any],
        alarm: dict[str, Any],
        order_type: str,
        incident_id: int | None,
        now: datetime,
        effects: Effects,
    ) -> None:
        where = " ".join(str(p) for p in (alarm["building"], alarm["floor"]) if p is not None)
        await wo.create_order(
            conn,
            self.rules,
            now,
            site_id=alarm["site_id"],
            building=alarm["building"],
            floor=alarm["floor"],
            order_type=order_type,
            title=f"{alarm['type']} at {alarm['device_id']} {where}".strip(),
            created_by="engine",
            effects=effects,
            alarm_id=alarm["id"],
            incident_id=incident_id,
        )

    # ------------------------------------------------------------------ gateways

    async def _handle_gateway(self, conn: AsyncConnection[Any], gateway_id: str, effects: Effects) -> None:
        cur = await conn.execute("SELECT site_id, state FROM gateways WHERE id = %s", (gateway_id,))
        row = await cur.fetchone()
        if row is None:
            return
        site_id, state = row
        now = self.clock.now()
        if state == "offline":
            await self._gateway_down(conn, gateway_id, site_id, now, "gateway reported offline (last will)", effects)
        elif state == "online":
            await self._gateway_up(conn, gateway_id, now, effects)

    async def _gateway_down(
        self, conn: AsyncConnection[Any], gateway_id: str, site_id: str, now: datetime, reason: str, effects: Effects
    ) -> None:
        steps = self.rules.escalation_for("major")
        res = await store.raise_alarm(
            conn,
            device_id=gateway_id,
            alarm_type=GATEWAY_OFFLINE,
            severity="major",
            ts=now,
            now=now,
            site_id=site_id,
            gateway_id=gateway_id,
            detail={"reason": reason},
            next_escalation_at=now + steps[0].after if steps else None,
        )
        if not res.created:
            return
        alarm = res.alarm
        # Fold the gateway's devices' offline alarms into this one.
        if self.rules.suppression.gateway_offline:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "SELECT a.id, a.device_id FROM alarms a JOIN devices d ON d.id = a.device_id "
                    "WHERE a.active AND a.type = ANY(%s) AND d.gateway_id = %s FOR UPDATE OF a",
                    (list(OFFLINE_TYPES), gateway_id),
                )
                children = await cur.fetchall()
            for child in children:
                row = await store.clear(
                    conn, child["id"], "engine", now, f"folded into alarm {alarm['id']} (gateway offline)"
                )
                effects.changes.append(Change.alarm(row, "cleared"))
                await self._fold(conn, alarm, child["device_id"], now, effects)
        effects.changes.append(Change.alarm(alarm, "raised"))

    async def _gateway_up(self, conn: AsyncConnection[Any], gateway_id: str, now: datetime, effects: Effects) -> None:
        alarm = await store.active_alarm(conn, gateway_id, GATEWAY_OFFLINE)
        if alarm is not None:
            row = await store.clear(conn, alarm["id"], "engine", now, "gateway back online")
            effects.changes.append(Change.alarm(row, "cleared"))

    # ------------------------------------------------------------------ timers

    async def tick(self) -> None:
        """Run every timer once at ``clock.now()``: escalation, supervision, commands, SLA, flapping, welfare."""
        now = self.clock.now()
        for step in (self._escalate, self._supervise, self._flapping_clears, self._sla, self._welfare):
            effects = Effects.empty()
            async with self.pool.connection() as conn, conn.transaction():
                await step(conn, now, effects)
            await self._flush(effects)
        effects = Effects.empty()
        async with self.pool.connection() as conn, conn.transaction():
            resend, changed = await cmds.sweep(conn, now)
            effects.changes.extend(changed)
            effects.commands.extend(resend)
        await self._flush(effects)

    async def _escalate(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT * FROM alarms WHERE active AND NOT acknowledged AND next_escalation_at <= %s "
                "ORDER BY next_escalation_at FOR UPDATE SKIP LOCKED",
                (now,),
            )
            due = await cur.fetchall()
        for alarm in due:
            steps = self.rules.escalation_for(alarm["severity"])
            level = alarm["escalation_level"]
            if level >= len(steps):
                await conn.execute("UPDATE alarms SET next_escalation_at = NULL WHERE id = %s", (alarm["id"],))
                continue
            step = steps[level]
            nxt = alarm["created_at"] + steps[level + 1].after if level + 1 < len(steps) else None
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "UPDATE alarms SET escalation_level = %s, next_escalation_at = %s WHERE id = %s RETURNING *",
                    (level + 1, nxt, alarm["id"]),
                )
                row = await cur.fetchone()
            assert row is not None
            detail = {
                "level": level + 1,
                "role": step.role,
                "unacknowledged_for_s": (now - alarm["created_at"]).total_seconds(),
            }
            await store.timeline(conn, alarm["id"], now, "escalated", "engine", detail)
            await audit(conn, "engine", "alarm.escalate", "alarm", alarm["id"], detail, ts=now)
            effects.notifications.append(
                Notification(
                    subject=f"unacknowledged {alarm['severity']} alarm {alarm['type']} at {alarm['device_id']}",
                    body=json_row(row),
                    role=step.role,
                )
            )
            effects.changes.append(Change.alarm(row, "escalated"))

    async def _supervise(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        hb = self.rules.heartbeat
        # Gateways silent beyond their window count as offline.
        cur = await conn.execute(
            "SELECT g.id, g.site_id FROM gateways g WHERE g.last_seen < %s AND NOT EXISTS "
            "(SELECT 1 FROM alarms a WHERE a.device_id = g.id AND a.type = %s AND a.active)",
            (now - hb.gateway_window, GATEWAY_OFFLINE),
        )
        for gateway_id, site_id in await cur.fetchall():
            await self._gateway_down(
                conn, gateway_id, site_id, now, f"silent for more than {hb.gateway_window}", effects
            )
        # Devices silent beyond their (profile's) window → a fault alarm, folded when the gateway is down.
        async with conn.cursor(row_factory=dict_row) as dcur:
            await dcur.execute(
                """
                SELECT d.*,
                       (SELECT a.id FROM alarms a
                        WHERE a.device_id = d.gateway_id AND a.type = %s AND a.active) AS gw_alarm,
                       EXISTS (SELECT 1 FROM alarms a
                               WHERE a.device_id = d.id AND a.type = ANY(%s) AND a.active) AS has_alarm
                FROM devices d WHERE d.last_seen IS NOT NULL AND d.last_seen < %s
                """,
                (GATEWAY_OFFLINE, list(OFFLINE_TYPES), now - min([hb.device_window, *hb.profiles.values()])),
            )
            silent = await dcur.fetchall()
        for dev in silent:
            window = hb.profiles.get(dev["profile_id"], hb.device_window)
            if dev["last_seen"] >= now - window or dev["has_alarm"]:
                continue
            if dev["gw_alarm"] is not None:
                detail = await conn.execute(
                    "SELECT detail->'devices' ? %s FROM alarms WHERE id = %s", (dev["id"], dev["gw_alarm"])
                )
                seen = (await detail.fetchone() or [False])[0]
                if not seen:
                    await self._fold(conn, {"id": dev["gw_alarm"]}, dev["id"], now, effects)
                continue
            steps = self.rules.escalation_for("major")
            res = await store.raise_alarm(
                conn,
                device_id=dev["id"],
                alarm_type=DEVICE_SILENT,
                severity="major",
                ts=dev["last_seen"],
                now=now,
                site_id=dev["site_id"],
                gateway_id=dev["gateway_id"],
                building=dev["building"],
                floor=dev["floor"],
                detail={"silent_since": dev["last_seen"].isoformat(), "window_s": window.total_seconds()},
                next_escalation_at=now + steps[0].after if steps else None,
            )
            effects.changes.append(Change.alarm(res.alarm, "raised"))
        # Devices heard from again: clear their silence alarms.
        async with conn.cursor(row_factory=dict_row) as acur:
            await acur.execute(
                "SELECT a.id FROM alarms a JOIN devices d ON d.id = a.device_id "
                "WHERE a.active AND a.type = %s AND d.last_seen > a.first_ts FOR UPDATE OF a",
                (DEVICE_SILENT,),
            )
            back = await acur.fetchall()
        for a in back:
            row = await store.clear(conn, a["id"], "engine", now, "device heard from again")
            effects.changes.append(Change.alarm(row, "cleared"))

    async def _flapping_clears(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        cur = await conn.execute(
            "SELECT id FROM alarms WHERE active AND clear_pending_at <= %s FOR UPDATE SKIP LOCKED", (now,)
        )
        for (alarm_id,) in await cur.fetchall():
            row = await store.clear(conn, alarm_id, "engine", now, "stable after flapping")
            effects.changes.append(Change.alarm(row, "cleared"))

    async def _sla(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        await wo.sla_sweep(conn, self.rules, now, effects)

    async def _welfare(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        rule = self.rules.welfare
        if not rule.door_profiles:
            return
        cur = await conn.execute(
            """
            SELECT w.site_id, w.building, w.unit,
                   (SELECT max(e.ts) FROM events e JOIN devices d ON d.id = e.device_id
                    WHERE d.site_id = w.site_id AND d.building = w.building AND d.unit = w.unit
                      AND d.profile_id = ANY(%s)) AS last_activity
            FROM welfare_units w
            WHERE NOT EXISTS (SELECT 1 FROM work_orders o WHERE o.type = 'welfare_check' AND o.state <> 'closed'
                              AND o.site_id = w.site_id AND o.building = w.building AND o.unit = w.unit)
            """,
            (rule.door_profiles,),
        )
        for site_id, building, unit, last in await cur.fetchall():
            if last is not None and last >= now - rule.quiet_for:
                continue
            since = last.isoformat() if last else "never"
            await wo.create_order(
                conn,
                self.rules,
                now,
                site_id=site_id,
                building=building,
                unit=unit,
                order_type="welfare_check",
                title=f"welfare check: no door activity at {building}-{unit} since {since}",
                created_by="engine",
                effects=effects,
            )

    # ------------------------------------------------------------------ after commit

    async def _flush(self, effects: Effects) -> None:
        if effects.commands and self.publisher is not None:
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    effects.changes.extend(
                        await cmds.send_commands(conn, self.publisher, effects.commands, self.clock.now())
                    )
                finally:
                    await conn.set_autocommit(False)
        for change in effects.changes:
            self.bus.publish(change)
        for note in effects.notifications:
            await self.notifier.send(note)

    async def issue_command(
        self,
        conn: AsyncConnection[Any],
        *,
        device_id: str,
        command: str,
        args: dict[str, Any],
        actor: str,
        ack_timeout: timedelta | None = None,
        retry_safe: bool | None = None,
        max_attempts: int = 1,
    ) -> UUID:
        """Queue a manual command (API) in ``conn``'s transaction; call :meth:`send` after commit.

        Checked against the device's profile first (:class:`cloud.dispatch.validate.CommandRefused`);
        ``retry_safe`` defaults to the profile command's ``safe_to_retry``. Without ``ack_timeout`` the
        backend waits what the device's profile needs (its command timeout plus a transit margin); an
        explicit one is used as given (a shorter one ends as ``<outcome>_late``)."""
        cur = await conn.execute("SELECT site_id, gateway_id, profile_id FROM devices WHERE id = %s", (device_id,))
        row = await cur.fetchone()
        if row is None or row[1] is None:
            raise LookupError(f"device {device_id!r} is not registered to a gateway")
        spec = check_command(self.catalog, row[2], command, args)
        if retry_safe is None:
            retry_safe = spec.safe_to_retry if spec is not None else False
        return await cmds.queue_command(
            conn,
            site_id=row[0],
            gateway_id=row[1],
            device_id=device_id,
            command=command,
            args=args,
            origin=actor,
            now=self.clock.now(),
            ack_timeout=ack_timeout,
            retry_safe=retry_safe,
            max_attempts=max_attempts,
            timeouts=self.command_timeouts if ack_timeout is None else None,
        )

    async def send(
        self,
        command_ids: Sequence[UUID],
        changes: Sequence[Change] = (),
        notifications: Sequence[Notification] = (),
    ) -> None:
        """Post-commit work of an API transaction: publish commands, push changes, notify."""
        await self._flush(Effects(list(changes), list(notifications), list(command_ids)))
