"""The gateway agent's composition root: builds every part from the config and runs them.

    pollers (Modbus) ─┐                                   ┌─▶ linkage ─▶ commands to local devices
    MQTT bridge      ─┼─▶ DeviceRules ─▶ Emitter ─▶ Outbox ┴─▶ Uplink ─▶ broker
    video analytics  ─┘      (events, telemetry by exception, batches)

Commands from the backend arrive through the uplink (``on_command``) and go to :class:`CommandService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from uuid import uuid4

from contract.messages import DeviceInfo, EvidenceRef, GatewayState
from device_profiles import Catalog, CompiledProfile
from device_profiles.read_plan import plan_reads
from edge.bridge import BridgedDevice, MqttBridge
from edge.commands import CommandExecutor, CommandService, ModbusTarget, MqttTarget, SeenStore
from edge.config import (
    CameraConnection,
    DeviceConfig,
    GatewayConfig,
    ModbusRtuConnection,
    ModbusTcpConnection,
    MqttConnection,
)
from edge.health import GatewayMetrics, HealthSources, build_health
from edge.linkage import LinkageDevice, LinkageEngine
from edge.modbus import BusPoller, PolledDevice, PollStats
from edge.modbus.registry import LINKS, bus_key
from edge.rules import Clock, DeviceRules, EmittedEvent, Emitter, OutboxLike, SystemClock, TelemetryBatcher

logger = logging.getLogger(__name__)

SOFTWARE = "xiaoqu-edge/0.1"

# A VideoEvent's kind that ends a condition → the kind that raised it (raise and clear share one event type).
VIDEO_CLEAR_OF = {
    "fire_lane.cleared": "fire_lane.blocked",
    "elevator.ebike_cleared": "elevator.ebike_detected",
    "intrusion.cleared": "intrusion.detected",
}

# Video alarms about fire safety: while active, their not-yet-uploaded snapshots are kept over other evidence
# (as are those of any critical event); see docs/edge.md, "Evidence".
VIDEO_EVIDENCE_PROTECTED = frozenset({"fire_lane.blocked", "elevator.ebike_detected"})


def video_key(event_type: str, rule: str) -> str:
    """The event key of a camera rule's alarm: ``fire_lane.blocked@fire-lane-north`` (raise and clear alike)."""
    return f"{event_type}@{rule}"


class GatewayAgent:
    def __init__(
        self,
        config: GatewayConfig,
        catalog: Catalog,
        *,
        outbox: OutboxLike | None = None,
        clock: Clock | None = None,
        with_uplink: bool = True,
        with_video: bool = True,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.clock: Clock = clock or SystemClock()
        self._own_outbox = outbox is None
        if outbox is None:
            from edge.uplink import Outbox

            outbox = Outbox(config.outbox, config.gateway_id)
        self.outbox = outbox
        self.emitter = Emitter(outbox, config.gateway_id)
        t = config.telemetry
        self.batcher = TelemetryBatcher(self.emitter, self.clock, max_points=t.max_points_per_batch, flush_s=t.flush_s)
        self.rules: dict[str, DeviceRules] = {}
        self.poll_stats = PollStats()
        self.pollers: list[BusPoller] = []
        self.bridges: list[MqttBridge] = []
        self.executor = CommandExecutor(config.command_timeout_s)
        self.cameras: list[Any] = []
        self._mqtt_rules: list[DeviceRules] = []
        self._build_devices(with_video)
        self.store = SeenStore(Path(config.outbox.path).parent / "commands_seen.sqlite3")
        self.commands = CommandService(self.executor, self.emitter, self.store, self.clock)
        self.linkage = LinkageEngine(config.linkage, self._linkage_devices(), self.executor, self.emitter, self.clock)
        self.linkage.attach()
        self.evidence: Any = None  # edge.evidence.EvidenceUploader when the config has an evidence section
        self._build_evidence()
        self.uplink: Any = None
        if with_uplink:
            from edge.uplink import Outbox, Uplink

            assert isinstance(outbox, Outbox), "the uplink drains a real Outbox"
            self.uplink = Uplink(config.uplink, site=config.site, gateway_id=config.gateway_id, outbox=outbox,
                                 birth=self.birth, on_command=self.commands.handle)
            self.emitter.set_wake(self.uplink.wake)
        self.metrics = GatewayMetrics(HealthSources(
            outbox=outbox,
            uplink_connected=lambda: bool(self.uplink is not None and self.uplink.connected),
            devices_online=self.devices_online,
            poll_latencies_s=lambda: list(self.poll_stats.latencies_s),
            modbus_requests=lambda: sum(p.link.requests_total for p in self.pollers),
        ))
        self.poll_stats.observers.append(self.metrics.poll_latency.observe)
        self.emitter.add_listener(self._count_event)
        self.commands.observers.append(lambda status: self.metrics.commands.labels(status).inc())
        self._stop = asyncio.Event()
        self.metrics_port: int | None = None

    # --- construction --------------------------------------------------------------------------------------
    def _device_rules(self, d: DeviceConfig, profile: CompiledProfile) -> DeviceRules:
        rules = DeviceRules(d.id, profile, self.emitter, self.batcher, self.clock,
                            offline_after_s=d.offline_after_s, debounce_s=self.config.telemetry.debounce_s,
                            zones=d.zone_locations())
        self.rules[d.id] = rules
        return rules

    def _build_devices(self, with_video: bool) -> None:
        buses: dict[str, tuple[ModbusTcpConnection | ModbusRtuConnection, list[PolledDevice], float]] = {}
        mqtt: dict[str, list[BridgedDevice]] = {}
        for d in self.config.devices:
            profile = CompiledProfile(self.catalog.get(d.profile))
            rules = self._device_rules(d, profile)
            conn = d.connection
            if isinstance(conn, ModbusTcpConnection | ModbusRtuConnection):
                settings = profile.profile.modbus
                interval = d.poll_interval_s or (settings.poll_interval_s if settings else 1.0)
                timeout = settings.timeout_s if settings else 1.0
                polled = PolledDevice(d.id, conn.unit, plan_reads(profile.points, settings), interval, rules)
                key = bus_key(conn)
                first, devices, t_max = buses.get(key, (conn, [], 0.0))
                devices.append(polled)
                buses[key] = (first, devices, max(t_max, timeout))
            elif isinstance(conn, MqttConnection):
                url = conn.broker or self.config.uplink.url
                mqtt.setdefault(url, []).append(BridgedDevice(d.id, profile, rules))
                self._mqtt_rules.append(rules)
            elif isinstance(conn, CameraConnection):
                self.executor.add(d.id, profile, None)
                if with_video:
                    self._add_camera(d.id, profile, conn)
        p = self.config.polling
        for key, (conn, devices, timeout) in buses.items():
            link = LINKS[conn.kind](conn, timeout)
            poller = BusPoller(link, devices, self.clock, backoff_initial_s=p.backoff_initial_s,
                               backoff_max_s=p.backoff_max_s, stats=self.poll_stats)
            self.pollers.append(poller)
            for dev in devices:
                self.executor.add(dev.device_id, dev.rules.profile, ModbusTarget(poller, dev.unit))
            logger.info("poller %s: %d device(s)", key, len(devices))
        for url, bridged in mqtt.items():
            same = url == self.config.uplink.url
            bridge = MqttBridge(url, bridged, self.clock,
                                client_id=f"xq-gw-{self.config.gateway_id}-dev{len(self.bridges)}",
                                username=self.config.uplink.username if same else None,
                                password=self.config.uplink.password if same else None)
            self.bridges.append(bridge)
            bridge.on_late_result = lambda dev, cid, out: self.commands.late_result(dev, cid, out.status, out.reason)
            for b in bridged:
                self.executor.add(b.device_id, b.profile, MqttTarget(bridge))

    def _add_camera(self, device_id: str, profile: CompiledProfile, conn: CameraConnection) -> None:
        from edge.video import VideoAnalytics

        spec = profile.profile.camera
        assert spec is not None
        if conn.source_url:
            spec = spec.model_copy(update={"source": spec.source.model_copy(update={"url": conn.source_url})})
        snapshots = self.config.snapshot_dir or Path(self.config.outbox.path).parent / "snapshots"
        self.cameras.append(VideoAnalytics(device_id, spec, self._on_video_event, snapshots / device_id))

    def _build_evidence(self) -> None:
        ev = self.config.evidence
        if ev is None:
            if self.cameras:
                logger.info("no evidence section: snapshots stay on the gateway, evidence uploads are off")
            return
        from edge.evidence import EvidenceQueue, EvidenceUploader

        spool = ev.spool_dir or Path(self.config.outbox.path).parent / "evidence"
        queue = EvidenceQueue(spool, budget_bytes=ev.budget_bytes, cap_bytes=ev.cap_bytes)
        self.evidence = EvidenceUploader(ev, queue)

    def _queue_evidence(self, path: Path, device: str, event: str, protected: bool) -> list[EvidenceRef]:
        """Queue a snapshot for upload; the returned reference goes in the Event (none when uploads are off)."""
        if self.evidence is None:
            return []
        ref = f"{self.config.gateway_id}-{uuid4().hex}{path.suffix.lower()}"
        try:
            evidence_ref: EvidenceRef = self.evidence.queue.add(path, ref=ref, device=device, event=event,
                                                                protected=protected)
        except (OSError, ValueError, sqlite3.Error) as exc:  # the event goes out without its picture
            logger.error("evidence for %s %s: cannot queue %s: %s", device, event, path, exc)
            return []
        self.evidence.wake()
        return [evidence_ref]

    def _linkage_devices(self) -> list[LinkageDevice]:
        return [
            LinkageDevice(d.id, self.catalog.get(d.profile).device_type, d.location.building, d.watches)
            for d in self.config.devices
        ]

    # --- state ---------------------------------------------------------------------------------------------
    def birth(self) -> GatewayState:
        devices = [DeviceInfo(device=d.id, profile=d.profile, location=d.location, name=d.name)
                   for d in self.config.devices]
        return GatewayState(gw=self.config.gateway_id, epoch=self.outbox.epoch, seq=self.outbox.next_seq(),
                            ts=self.clock.now(),
                            state="online", software=SOFTWARE, devices=devices)

    def devices_online(self) -> tuple[int, int]:
        """(online, offline); a device not yet heard from (e.g. a camera before its first frame) is neither."""
        online = sum(1 for r in self.rules.values() if r.online is True)
        offline = sum(1 for r in self.rules.values() if r.online is False)
        return online, offline

    def _count_event(self, ev: EmittedEvent) -> None:
        self.metrics.events.labels(ev.severity).inc()

    def _on_video_event(self, ev: Any) -> None:
        """edge.video.VideoEvent → contract Event (raise and clear share the raising kind)."""
        rules = self.rules.get(ev.camera_id)
        if ev.kind in ("camera.offline", "camera.online"):
            if rules is not None:
                rules.set_status(ev.kind == "camera.online", f"camera {ev.kind.split('.')[1]}")
            return
        detail: dict[str, bool | int | float | str] = {"rule": ev.rule, **ev.detail}
        event_type = VIDEO_CLEAR_OF.get(ev.kind, ev.kind)
        evidence: list[EvidenceRef] = []
        if not ev.active and self.evidence is not None:
            self.evidence.queue.release(ev.camera_id, event_type)
        if ev.snapshot_path is not None:
            detail["snapshot"] = Path(ev.snapshot_path).name
            protected = ev.active and (ev.severity == "critical" or event_type in VIDEO_EVIDENCE_PROTECTED)
            evidence = self._queue_evidence(Path(ev.snapshot_path), ev.camera_id, event_type, protected)
        if ev.linkage:
            detail["linkage"] = ",".join(ev.linkage)
        # One camera rule watches one zone with one dwell alarm: its key is the event type at that rule.
        self.emitter.event(ev.camera_id, event_type, key=video_key(event_type, ev.rule), severity=ev.severity,
                           active=ev.active, ts=ev.observed_at, detail=detail, evidence=evidence)

    # --- running -------------------------------------------------------------------------------------------
    async def _ticker(self) -> None:
        """Once a second: liveness of MQTT devices, ``for`` durations; periodic full report and health."""
        last_full = last_health = self.clock.monotonic()
        while True:
            await self.clock.sleep(1.0)
            now = self.clock.monotonic()
            for r in self._mqtt_rules:
                r.check_liveness()
            for r in self.rules.values():
                r.evaluate()
            if now - last_full >= self.config.telemetry.full_report_interval_s:
                last_full = now
                for r in self.rules.values():
                    r.full_report()
            if now - last_health >= self.config.health_interval_s:
                last_health = now
                self.report_health()

    def report_health(self) -> None:
        self.emitter.health(build_health(self.metrics.src), self.clock.now())

    async def run(self) -> None:
        """Run until :meth:`stop` (or cancellation); every part in its own task."""
        if self.config.metrics_port is not None:
            try:
                self.metrics_port = self.metrics.serve(self.config.metrics_port)
            except OSError as exc:
                logger.error("cannot serve /metrics on 127.0.0.1:%s: %s", self.config.metrics_port, exc)
        coros: list[Coroutine[Any, Any, None]] = [p.run() for p in self.pollers]
        coros += [b.run() for b in self.bridges]
        coros += [c.run() for c in self.cameras]
        coros += [self.batcher.run(), self._ticker()]
        if self.evidence is not None:
            coros.append(self.evidence.run())
        tasks = [asyncio.create_task(c) for c in coros]
        uplink_task = asyncio.create_task(self.uplink.run()) if self.uplink is not None else None
        logger.info("gateway %s (site %s): %d devices, %d pollers, %d bridges, %d cameras", self.config.gateway_id,
                    self.config.site, len(self.config.devices), len(self.pollers), len(self.bridges),
                    len(self.cameras))
        try:
            stop = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop and t.exception() is not None:
                    logger.error("a gateway task ended: %r", t.exception())
            stop.cancel()
        finally:
            for c in self.cameras:
                with contextlib.suppress(RuntimeError):
                    await c.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.linkage.drain()
            self.batcher.flush()
            if self.uplink is not None and uplink_task is not None:
                await self.uplink.stop()
                await asyncio.gather(uplink_task, return_exceptions=True)
            self.metrics.close()
            self.store.close()
            if self.evidence is not None:
                self.evidence.queue.close()
            if self._own_outbox:
                close = getattr(self.outbox, "close", None)
                if close is not None:
                    close()

    def stop(self) -> None:
        self._stop.set()
