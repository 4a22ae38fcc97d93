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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from cloud.alarms import repository as repo
from cloud.alarms.bus import ChangeBus
from cloud.alarms.models import Alarm, AlarmEvent
from cloud.alarms.rules import CorrelationRule, Rules
from cloud.auth.roles import Role
from cloud.auth.store import audit
from cloud.changes import Change, json_row
from cloud.dispatch import commands as cmds
from cloud.dispatch import workorders as wo
from cloud.dispatch.notify import Notification, Notifier
from cloud.dispatch.validate import check_command
from contract.clock import Clock, SystemClock
from contract.messages import Scalar
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
            ids = await repo.unlinked_events(conn, since)
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
        if not await repo.claim_event(conn, event_id):
            return  # already handled (NOTIFY and callback both delivered it)
        ev = await repo.alarm_event(conn, event_id)
        if ev is None:
            await repo.link_event(conn, event_id, None, "ignored", "event row not found")
            return
        now = self.clock.now()
        if ev.type in self.rules.ignore_events or ev.severity not in repo.SEVERITIES:
            await repo.link_event(conn, event_id, None, "ignored", f"{ev.type}/{ev.severity} is not an alarm")
            return
        if ev.active:
            await self._raise_from_event(conn, ev, now, effects)
        else:
            await self._clear_from_event(conn, ev, now, effects)

    async def _raise_from_event(
        self, conn: AsyncConnection[Any], ev: AlarmEvent, now: datetime, effects: Effects
    ) -> None:
        event_id = str(ev.id)
        if ev.site_id:
            window = await repo.window_reason(conn, ev.site_id, ev.device_id, ev.building, ev.floor, now)
            if window is not None:
                await repo.link_event(conn, event_id, None, "suppressed", f"maintenance window: {window}")
                return
        if ev.type in OFFLINE_TYPES and self.rules.suppression.gateway_offline and ev.gw:
            parent = await repo.active_alarm(conn, ev.gw, GATEWAY_OFFLINE)
            if parent is not None:
                await self._fold(conn, parent.id, ev.device_id, now, effects)
                await repo.link_event(conn, event_id, parent.id, "folded", "gateway offline")
                return
        steps = self.rules.escalation_for(ev.severity)
        res = await repo.raise_alarm(
            conn,
            device_id=ev.device_id,
            alarm_type=ev.type,
            key=ev.alarm_key,
            severity=ev.severity,
            ts=ev.ts,
            now=now,
            site_id=ev.site_id,
            gateway_id=ev.gw,
            building=ev.building,
            floor=ev.floor,
            unit=ev.unit,
            area=ev.area,
            life_safety=ev.life_safety,
            detail={**ev.detail, "event_id": event_id},
            evidence=ev.evidence,
            next_escalation_at=now + steps[0].after if steps else None,
        )
        alarm = res.alarm
        await repo.link_event(conn, event_id, alarm.id, "raised" if res.created else "occurrence")
        effects.changes.append(Change.alarm(alarm, "raised" if res.created else "occurrence"))
        if not res.created or not ev.site_id:
            return
        if ev.building:
            for corr in self.rules.correlation:
                if alarm.type in corr.signals:
                    await self._correlate(conn, corr, alarm, ev.site_id, ev.building, now, effects)
        for disp in self.rules.dispatch:
            if disp.alarm == alarm.type:
                incident_id = None
                if disp.incident:
                    incident_id = await self._open_incident(
                        conn, ev.site_id, ev.building or "", disp.incident, disp.name, [alarm.id], now, effects
                    )
                if disp.linkage and incident_id is not None:
                    await self._linkage(conn, disp.linkage, ev.site_id, ev.building, incident_id, now, effects)
                if disp.work_order:
                    await self._order_for_alarm(conn, alarm, ev.site_id, disp.work_order, incident_id, now, effects)
        for auto in self.rules.work_orders.from_alarms:
            if auto.alarm == alarm.type:
                await self._order_for_alarm(conn, alarm, ev.site_id, auto.type, None, now, effects)

    async def _clear_from_event(
        self, conn: AsyncConnection[Any], ev: AlarmEvent, now: datetime, effects: Effects
    ) -> None:
        event_id = str(ev.id)
        alarm = await repo.active_alarm(conn, ev.device_id, ev.alarm_key)
        if alarm is None:
            await repo.link_event(conn, event_id, None, "ignored", "no active alarm to clear")
            return
        flap = self.rules.suppression.flapping
        recent = await repo.recent_alarm_count(conn, ev.device_id, ev.alarm_key, now - flap.window)
        changes = 2 * recent + max(0, alarm.occurrence_count - 1)
        if changes >= flap.max_changes:
            await repo.defer_clear(conn, alarm.id, now + flap.hold)
            if not alarm.flapping:
                await repo.timeline(conn, alarm.id, now, "flapping", "engine", {"hold": flap.hold.total_seconds()})
            await repo.link_event(conn, event_id, alarm.id, "damped", "flapping: clear deferred")
            return
        cleared = await repo.clear(conn, alarm.id, "device", now)
        await repo.link_event(conn, event_id, alarm.id, "cleared")
        effects.changes.append(Change.alarm(cleared, "cleared"))

    async def _fold(
        self, conn: AsyncConnection[Any], parent_id: int, device_id: str, now: datetime, effects: Effects
    ) -> None:
        effects.changes.append(Change.alarm(await repo.fold(conn, parent_id, device_id, now), "folded"))

    # ------------------------------------------------------------------ correlation and actions

    async def _correlate(
        self,
        conn: AsyncConnection[Any],
        corr: CorrelationRule,
        alarm: Alarm,
        site: str,
        building: str,
        now: datetime,
        effects: Effects,
    ) -> None:
        # Serialise correlation per building so two racing signals see each other.
        await repo.lock_correlation(conn, f"corr:{site}:{building}:{corr.name}")
        active = await repo.active_signals(
            conn, site, building, corr.signals, floor=alarm.floor, by_floor=corr.scope == "floor"
        )
        # A signal is (device, key) — the definition the gateway's local linkage uses too: two zones of one
        # panel are two signals, one zone raised twice is one (GB 50116 §4.1.6).
        ids: dict[Signal, int] = {}
        raised: dict[Signal, float] = {}
        for candidate in active:
            signal = Signal(candidate.device_id, candidate.key)
            ids[signal] = candidate.id
            raised[signal] = candidate.first_ts.timestamp()
        confirming = confirming_signals(raised, corr.min_signals, corr.window.total_seconds())
        if Signal(alarm.device_id, alarm.key) not in confirming:
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
                floor=alarm.floor,
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
        incident = await repo.open_incident(conn, site, building, kind, rule, alarm_ids, now)
        if incident is None:
            return None
        effects.changes.append(Change.incident(incident, "opened"))
        effects.notifications.append(
            Notification(
                subject=f"incident: {kind} in building {building}", body=json_row(incident), role=Role.PROPERTY_MANAGER
            )
        )
        return incident.id

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
            for target in await repo.linkage_targets(conn, site, building, step.profiles):
                cid = await cmds.queue_command(
                    conn,
                    site_id=site,
                    gateway_id=target.gateway_id,
                    device_id=target.device_id,
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
        alarm: Alarm,
        site_id: str,
        order_type: str,
        incident_id: int | None,
        now: datetime,
        effects: Effects,
    ) -> None:
        where = " ".join(str(p) for p in (alarm.building, alarm.floor) if p is not None)
        await wo.create_order(
            conn,
            self.rules,
            now,
            site_id=site_id,
            building=alarm.building,
            floor=alarm.floor,
            order_type=order_type,
            title=f"{alarm.type} at {alarm.device_id} {where}".strip(),
            created_by="engine",
            effects=effects,
            alarm_id=alarm.id,
            incident_id=incident_id,
        )

    # ------------------------------------------------------------------ gateways

    async def _handle_gateway(self, conn: AsyncConnection[Any], gateway_id: str, effects: Effects) -> None:
        gateway = await repo.gateway_status(conn, gateway_id)
        if gateway is None:
            return
        now = self.clock.now()
        if gateway.state == "offline":
            await self._gateway_down(
                conn, gateway_id, gateway.site_id, now, "gateway reported offline (last will)", effects
            )
        elif gateway.state == "online":
            await self._gateway_up(conn, gateway_id, now, effects)

    async def _gateway_down(
        self, conn: AsyncConnection[Any], gateway_id: str, site_id: str, now: datetime, reason: str, effects: Effects
    ) -> None:
        steps = self.rules.escalation_for("major")
        res = await repo.raise_alarm(
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
            for child in await repo.offline_children(conn, gateway_id, OFFLINE_TYPES):
                cleared = await repo.clear(
                    conn, child.id, "engine", now, f"folded into alarm {alarm.id} (gateway offline)"
                )
                effects.changes.append(Change.alarm(cleared, "cleared"))
                await self._fold(conn, alarm.id, child.device_id, now, effects)
        effects.changes.append(Change.alarm(alarm, "raised"))

    async def _gateway_up(self, conn: AsyncConnection[Any], gateway_id: str, now: datetime, effects: Effects) -> None:
        alarm = await repo.active_alarm(conn, gateway_id, GATEWAY_OFFLINE)
        if alarm is not None:
            cleared = await repo.clear(conn, alarm.id, "engine", now, "gateway back online")
            effects.changes.append(Change.alarm(cleared, "cleared"))

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
        for alarm in await repo.due_escalations(conn, now):
            steps = self.rules.escalation_for(alarm.severity)
            level = alarm.escalation_level
            if level >= len(steps):
                await repo.stop_escalation(conn, alarm.id)
                continue
            step = steps[level]
            nxt = alarm.created_at + steps[level + 1].after if level + 1 < len(steps) else None
            escalated = await repo.escalate(conn, alarm.id, level + 1, nxt)
            detail = {
                "level": level + 1,
                "role": step.role,
                "unacknowledged_for_s": (now - alarm.created_at).total_seconds(),
            }
            await repo.timeline(conn, alarm.id, now, "escalated", "engine", detail)
            await audit(conn, "engine", "alarm.escalate", "alarm", alarm.id, detail, ts=now)
            effects.notifications.append(
                Notification(
                    subject=f"unacknowledged {alarm.severity} alarm {alarm.type} at {alarm.device_id}",
                    body=json_row(escalated),
                    role=step.role,
                )
            )
            effects.changes.append(Change.alarm(escalated, "escalated"))

    async def _supervise(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        hb = self.rules.heartbeat
        # Gateways silent beyond their window count as offline.
        for gateway in await repo.silent_gateways(conn, now - hb.gateway_window, GATEWAY_OFFLINE):
            await self._gateway_down(
                conn, gateway.id, gateway.site_id, now, f"silent for more than {hb.gateway_window}", effects
            )
        # Devices silent beyond their (profile's) window → a fault alarm, folded when the gateway is down.
        shortest = min([hb.device_window, *hb.profiles.values()])
        for dev in await repo.silent_devices(conn, now - shortest, GATEWAY_OFFLINE, OFFLINE_TYPES):
            window = hb.profiles.get(dev.profile_id or "", hb.device_window)
            if dev.last_seen >= now - window or dev.has_alarm:
                continue
            if dev.gw_alarm is not None:
                if not await repo.folded_already(conn, dev.gw_alarm, dev.id):
                    await self._fold(conn, dev.gw_alarm, dev.id, now, effects)
                continue
            steps = self.rules.escalation_for("major")
            res = await repo.raise_alarm(
                conn,
                device_id=dev.id,
                alarm_type=DEVICE_SILENT,
                severity="major",
                ts=dev.last_seen,
                now=now,
                site_id=dev.site_id,
                gateway_id=dev.gateway_id,
                building=dev.building,
                floor=dev.floor,
                detail={"silent_since": dev.last_seen.isoformat(), "window_s": window.total_seconds()},
                next_escalation_at=now + steps[0].after if steps else None,
            )
            effects.changes.append(Change.alarm(res.alarm, "raised"))
        # Devices heard from again: clear their silence alarms.
        for alarm_id in await repo.heard_again(conn, DEVICE_SILENT):
            cleared = await repo.clear(conn, alarm_id, "engine", now, "device heard from again")
            effects.changes.append(Change.alarm(cleared, "cleared"))

    async def _flapping_clears(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        for alarm_id in await repo.pending_clears(conn, now):
            cleared = await repo.clear(conn, alarm_id, "engine", now, "stable after flapping")
            effects.changes.append(Change.alarm(cleared, "cleared"))

    async def _sla(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        await wo.sla_sweep(conn, self.rules, now, effects)

    async def _welfare(self, conn: AsyncConnection[Any], now: datetime, effects: Effects) -> None:
        rule = self.rules.welfare
        if not rule.door_profiles:
            return
        for unit in await repo.welfare_candidates(conn, rule.door_profiles):
            last = unit.last_activity
            if last is not None and last >= now - rule.quiet_for:
                continue
            since = last.isoformat() if last else "never"
            await wo.create_order(
                conn,
                self.rules,
                now,
                site_id=unit.site_id,
                building=unit.building,
                unit=unit.unit,
                order_type="welfare_check",
                title=f"welfare check: no door activity at {unit.building}-{unit.unit} since {since}",
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
        args: Mapping[str, Scalar],
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
        route = await repo.device_route(conn, device_id)
        if route is None or route.gateway_id is None or route.site_id is None:
            raise LookupError(f"device {device_id!r} is not registered to a gateway")
        spec = check_command(self.catalog, route.profile_id, command, args)
        if retry_safe is None:
            retry_safe = spec.safe_to_retry if spec is not None else False
        return await cmds.queue_command(
            conn,
            site_id=route.site_id,
            gateway_id=route.gateway_id,
            device_id=device_id,
            command=command,
            args=dict(args),
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
