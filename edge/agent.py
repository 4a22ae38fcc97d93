"""The gateway agent's composition root: builds every part from the config and runs them.

    pollers (Modbus) ─┐                                   ┌─▶ linkage ─▶ commands to local devices
    MQTT bridge      ─┼─▶ DeviceRules ─▶ Emitter ─▶ Outbox ┴─▶ Uplink ─▶ broker
    video analytics  ─┘      (events, telemetry by exception, batches)

Commands from the backend arrive through the uplink (``on_command``) and go to :class:`CommandService`;
config pushed by the backend (``on_config``) is validated and applied while running (:meth:`apply_config`):
pollers, bridges and cameras whose devices changed are rebuilt, the rest runs on (docs/edge.md).
Under systemd the agent announces READY=1 and pings the watchdog while every part makes progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

from contract.messages import DeviceInfo, EvidenceRef, GatewayConfigPush, GatewayState
from contract.mqtt import MqttSettings
from device_profiles import Catalog, CompiledProfile, ProfileError
from device_profiles.read_plan import plan_reads
from device_profiles.schema import Profile
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
from edge.remote_config import LastGood, label, load_last_good, parse_document, sha256_text
from edge.rules import Clock, DeviceRules, EmittedEvent, Emitter, OutboxLike, SystemClock, TelemetryBatcher
from edge.rules.active import FILE_NAME as ACTIVE_EVENTS_FILE
from edge.rules.active import ActiveEventStore
from edge.watchdog import Heartbeat, Notifier

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


# What identifies a device's running state: its config entry, its profile and the rules' debounce. A device
# whose signature is unchanged by a new config keeps its DeviceRules (values, active alarms, liveness).
_DeviceSig = tuple[DeviceConfig, Profile, float]


@dataclass(eq=False)
class _Part:
    """One running unit built from the config: a Modbus bus poller, an MQTT bridge or a camera."""

    key: str
    runner: Any  # BusPoller | MqttBridge | edge.video.VideoAnalytics
    signature: tuple[Any, ...]
    task: asyncio.Task[None] | None = None
    retired: bool = False


@dataclass
class _UplinkProgress:
    acked: int = -1
    since: float = 0.0


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
        notifier: Notifier | None = None,
        watchdog_grace_s: float = 10.0,
        use_last_good: bool = True,
    ) -> None:
        self.base_config = config  # the local file: what a pushed document is merged over
        self.base_catalog = catalog
        self.config_version: int | None = None
        self.config_error: str | None = None
        self.last_good = LastGood(Path(config.outbox.path).parent / "remote-config")
        if use_last_good:
            loaded = load_last_good(self.last_good, config, catalog)
            if loaded is not None:
                config, catalog, self.config_version = loaded
                logger.info("running the last good pushed config v%d (%d devices)", self.config_version,
                            len(config.devices))
        self.config = config
        self.catalog = catalog
        self.clock: Clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.watchdog_grace_s = watchdog_grace_s
        self._with_video = with_video
        self._own_outbox = outbox is None
        if outbox is None:
            from edge.uplink import Outbox

            outbox = Outbox(config.outbox, config.gateway_id)
        self.outbox = outbox
        self.emitter = Emitter(outbox, config.gateway_id)
        # Raised events survive a restart here, so a condition that ends meanwhile is still cleared.
        self.active_events = ActiveEventStore(Path(config.outbox.path).parent / ACTIVE_EVENTS_FILE)
        self.emitter.active_store = self.active_events
        t = config.telemetry
        self.batcher = TelemetryBatcher(self.emitter, self.clock, max_points=t.max_points_per_batch, flush_s=t.flush_s)
        self.rules: dict[str, DeviceRules] = {}
        self._device_sigs: dict[str, _DeviceSig] = {}
        self.poll_stats = PollStats()
        self.parts: dict[str, _Part] = {}
        self.executor = CommandExecutor(config.command_timeout_s)
        self._mqtt_rules: list[DeviceRules] = []
        self._retired_requests = 0
        self._bridge_seq = 0
        self._running = False
        self._build_parts()
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
                                 birth=self.birth, on_command=self.commands.handle, on_config=self.on_config_push)
            self.emitter.set_wake(self.uplink.wake)
        self.metrics = GatewayMetrics(HealthSources(
            outbox=outbox,
            uplink_connected=lambda: bool(self.uplink is not None and self.uplink.connected),
            devices_online=self.devices_online,
            poll_latencies_s=lambda: list(self.poll_stats.latencies_s),
            modbus_requests=lambda: self._retired_requests + sum(p.link.requests_total for p in self.pollers),
            awaiting_receipt=lambda: self.uplink.awaiting_receipt() if self.uplink is not None else {},
            config_version=lambda: self.config_version,
        ))
        self.poll_stats.observers.append(self.metrics.poll_latency.observe)
        self.emitter.add_listener(self._count_event)
        self.commands.observers.append(lambda status: self.metrics.commands.labels(status).inc())
        self._stop = asyncio.Event()
        self.metrics_port: int | None = None
        self.ticker_heartbeat = Heartbeat("rules ticker", self.clock.monotonic)
        self._core_tasks: dict[str, asyncio.Task[None]] = {}
        self._uplink_task: asyncio.Task[None] | None = None
        self._config_lock = asyncio.Lock()
        self._config_tasks: set[asyncio.Task[bool]] = set()
        self._uplink_progress = _UplinkProgress()
        self.ready = False
        self.wedged_parts: list[str] = []

    # --- construction --------------------------------------------------------------------------------------
    @property
    def pollers(self) -> list[BusPoller]:
        return [p.runner for p in self.parts.values() if isinstance(p.runner, BusPoller)]

    @property
    def bridges(self) -> list[MqttBridge]:
        return [p.runner for p in self.parts.values() if isinstance(p.runner, MqttBridge)]

    @property
    def cameras(self) -> list[Any]:
        return [p.runner for p in self.parts.values() if p.key.startswith("camera:")]

    def _device_sig(self, d: DeviceConfig) -> _DeviceSig:
        return (d, self.catalog.get(d.profile), self.config.telemetry.debounce_s)

    def _rules_for(self, d: DeviceConfig) -> DeviceRules:
        """The device's rules: kept when its signature is unchanged (state and active alarms survive)."""
        old = self.rules.get(d.id)
        if old is not None and self._device_sigs.get(d.id) == self._device_sig(d):
            return old
        rules = DeviceRules(d.id, CompiledProfile(self.catalog.get(d.profile)), self.emitter, self.batcher, self.clock,
                            offline_after_s=d.offline_after_s, debounce_s=self.config.telemetry.debounce_s,
                            zones=d.zone_locations())
        rules.restore(self.active_events.active(d.id))  # what it (or its previous config) raised stays tracked
        return rules

    def _clear_unconfigured(self) -> None:
        """Clear the events still active for devices the config no longer has (nothing else would)."""
        configured = {d.id for d in self.config.devices}
        for a in self.active_events.active():
            if a.device in configured:
                continue
            logger.warning("device %s is no longer configured: clearing its active event %s", a.device, a.key)
            self.emitter.event(a.device, a.event, key=a.key, severity=a.severity, active=False,
                               life_safety=a.life_safety, ts=self.clock.now(), location=a.location,
                               detail={"reason": "cleared by the gateway: the device is no longer configured"})

    def _desired_parts(self) -> dict[str, list[DeviceConfig]]:
        """Devices grouped into parts: one poller per Modbus connection/bus, one bridge per broker, cameras."""
        parts: dict[str, list[DeviceConfig]] = {}
        for d in self.config.devices:
            conn = d.connection
            if isinstance(conn, ModbusTcpConnection | ModbusRtuConnection):
                key = f"modbus:{bus_key(conn)}"
            elif isinstance(conn, MqttConnection):
                key = f"mqtt:{conn.broker or self.config.uplink.url}"
            else:
                key = f"camera:{d.id}"
            parts.setdefault(key, []).append(d)
        return parts

    def _part_signature(self, key: str, devices: list[DeviceConfig]) -> tuple[Any, ...]:
        sig: tuple[Any, ...] = tuple(self._device_sig(d) for d in devices)
        if key.startswith("modbus:"):
            sig += (self.config.polling,)
        elif key.startswith("mqtt:"):
            u = self.config.uplink  # the bridge on the gateway's broker connects as the uplink does
            sig += (u.username, u.password, u.ca_file, u.cert_file, u.key_file)
        return sig

    def _build_parts(self) -> tuple[list[_Part], list[_Part]]:
        """Bring ``self.parts`` in line with ``self.config``; return (new parts, retired parts).

        A part whose devices, profiles and settings are all unchanged keeps running untouched; a device whose
        own entry and profile are unchanged keeps its rules even when its part is rebuilt.
        """
        self.rules = {d.id: self._rules_for(d) for d in self.config.devices}
        self._device_sigs = {d.id: self._device_sig(d) for d in self.config.devices}
        self._clear_unconfigured()
        self.executor.devices.clear()
        added: list[_Part] = []
        kept: dict[str, _Part] = {}
        for key, devices in self._desired_parts().items():
            signature = self._part_signature(key, devices)
            part = self.parts.get(key)
            if part is None or part.signature != signature:
                part = self._new_part(key, devices, signature)
                if part is None:
                    continue
                added.append(part)
            kept[key] = part
        retired = [p for k, p in self.parts.items() if kept.get(k) is not p]
        self._mqtt_rules = []
        for part in kept.values():
            runner = part.runner
            if isinstance(runner, BusPoller):
                for dev in runner.devices:
                    self.executor.add(dev.device_id, dev.rules.profile, ModbusTarget(runner, dev.unit))
            elif isinstance(runner, MqttBridge):
                for b in runner.devices.values():
                    self._mqtt_rules.append(b.rules)
                    self.executor.add(b.device_id, b.profile, MqttTarget(runner))
        for d in self.config.devices:  # cameras (also when video is off) take no commands
            if isinstance(d.connection, CameraConnection):
                self.executor.add(d.id, self.rules[d.id].profile, None)
        self.parts = kept
        return added, retired

    def _new_part(self, key: str, devices: list[DeviceConfig], signature: tuple[Any, ...]) -> _Part | None:
        conn = devices[0].connection
        if isinstance(conn, ModbusTcpConnection | ModbusRtuConnection):
            polled: list[PolledDevice] = []
            t_max = 0.0
            for d in devices:
                rules = self.rules[d.id]
                settings = rules.profile.profile.modbus
                interval = d.poll_interval_s or (settings.poll_interval_s if settings else 1.0)
                t_max = max(t_max, settings.timeout_s if settings else 1.0)
                assert isinstance(d.connection, ModbusTcpConnection | ModbusRtuConnection)
                polled.append(PolledDevice(d.id, d.connection.unit, plan_reads(rules.profile.points, settings),
                                           interval, rules))
            p = self.config.polling
            poller = BusPoller(LINKS[conn.kind](conn, t_max), polled, self.clock, backoff_initial_s=p.backoff_initial_s,
                               backoff_max_s=p.backoff_max_s, stats=self.poll_stats, request_timeout_s=t_max)
            logger.info("poller %s: %d device(s)", key.removeprefix("modbus:"), len(polled))
            return _Part(key, poller, signature)
        if isinstance(conn, MqttConnection):
            url = conn.broker or self.config.uplink.url
            same = url == self.config.uplink.url
            bridged = [BridgedDevice(d.id, self.rules[d.id].profile, self.rules[d.id]) for d in devices]
            client_id = f"xq-gw-{self.config.gateway_id}-dev{self._bridge_seq}"
            # The gateway's own broker: the uplink's whole connection (credentials and TLS files), without
            # its persistent session; another broker: what its URL says.
            broker = (self.config.uplink.mqtt_settings(client_id).model_copy(update={"clean_start": True})
                      if same else MqttSettings.from_url(url, client_id=client_id))
            bridge = MqttBridge(broker, bridged, self.clock)
            bridge.on_late_result = lambda dev, cid, out: self.commands.late_result(dev, cid, out.status, out.reason)
            self._bridge_seq += 1
            return _Part(key, bridge, signature)
        assert isinstance(conn, CameraConnection)
        if not self._with_video:
            return None
        camera = self._add_camera(devices[0].id, self.rules[devices[0].id].profile, conn)
        return _Part(key, camera, signature)

    def _add_camera(self, device_id: str, profile: CompiledProfile, conn: CameraConnection) -> Any:
        from edge.video import VideoAnalytics

        spec = profile.profile.camera
        assert spec is not None
        if conn.source_url:
            spec = spec.model_copy(update={"source": spec.source.model_copy(update={"url": conn.source_url})})
        snapshots = self.config.snapshot_dir or Path(self.config.outbox.path).parent / "snapshots"
        return VideoAnalytics(device_id, spec, self._on_video_event, snapshots / device_id)

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
                            ts=self.clock.now(), state="online", software=SOFTWARE, devices=devices,
                            config_version=self.config_version, config_error=self.config_error)

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
            self.ticker_heartbeat.expect(1.0)
            await self.clock.sleep(1.0)
            now = self.clock.monotonic()
            for r in self._mqtt_rules:
                r.check_liveness()
            for r in list(self.rules.values()):
                r.evaluate()
            if now - last_full >= self.config.telemetry.full_report_interval_s:
                last_full = now
                for r in list(self.rules.values()):
                    r.full_report()
            if now - last_health >= self.config.health_interval_s:
                last_health = now
                self.report_health()

    def report_health(self) -> None:
        self.emitter.health(build_health(self.metrics.src), self.clock.now())

    def _task_ended(self, name: str, task: asyncio.Task[None], part: _Part | None) -> None:
        """A part or core task ended on its own: that is a failure (as before, the agent stops)."""
        if task.cancelled() or self._stop.is_set() or (part is not None and part.retired):
            return
        logger.error("a gateway task ended: %s: %r", name, task.exception())
        self._stop.set()

    def _start(self, name: str, coro: Coroutine[Any, Any, None], part: _Part | None = None) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(lambda t: self._task_ended(name, t, part))
        return task

    def _start_part(self, part: _Part) -> None:
        part.task = self._start(part.key, part.runner.run(), part)

    async def _stop_part(self, part: _Part) -> None:
        part.retired = True
        if isinstance(part.runner, BusPoller):
            self._retired_requests += part.runner.link.requests_total
        if part.key.startswith("camera:"):
            with contextlib.suppress(RuntimeError):
                await part.runner.stop()
        if part.task is not None:
            part.task.cancel()
            await asyncio.gather(part.task, return_exceptions=True)

    async def run(self) -> None:
        """Run until :meth:`stop` (or cancellation); every part in its own task."""
        if self.config.metrics_port is not None:
            try:
                self.metrics_port = self.metrics.serve(self.config.metrics_port)
            except OSError as exc:
                logger.error("cannot serve /metrics on 127.0.0.1:%s: %s", self.config.metrics_port, exc)
        self._running = True
        for part in self.parts.values():
            self._start_part(part)
        core: dict[str, Coroutine[Any, Any, None]] = {"batcher": self.batcher.run(), "ticker": self._ticker()}
        if self.evidence is not None:
            core["evidence"] = self.evidence.run()
        self._core_tasks = {name: self._start(name, c) for name, c in core.items()}
        if self.uplink is not None:
            self._uplink_task = self._start("uplink", self.uplink.run())
        supervisor = asyncio.create_task(self._supervise())
        logger.info("gateway %s (site %s): %d devices, %d pollers, %d bridges, %d cameras%s", self.config.gateway_id,
                    self.config.site, len(self.config.devices), len(self.pollers), len(self.bridges),
                    len(self.cameras), "" if self.config_version is None else f", pushed config v{self.config_version}")
        try:
            await self._stop.wait()
        finally:
            self.notifier.send("STOPPING=1")
            supervisor.cancel()
            for config_task in list(self._config_tasks):
                config_task.cancel()
            await asyncio.gather(supervisor, *self._config_tasks, return_exceptions=True)
            for part in list(self.parts.values()):
                await self._stop_part(part)
            for t in self._core_tasks.values():
                t.cancel()
            await asyncio.gather(*self._core_tasks.values(), return_exceptions=True)
            await self.linkage.drain()
            self.batcher.flush()
            if self.uplink is not None and self._uplink_task is not None:
                await self.uplink.stop()
                await asyncio.gather(self._uplink_task, return_exceptions=True)
            self.metrics.close()
            self.store.close()
            self.active_events.close()
            if self.evidence is not None:
                self.evidence.queue.close()
            if self._own_outbox:
                close = getattr(self.outbox, "close", None)
                if close is not None:
                    close()
            self._running = False

    def stop(self) -> None:
        self._stop.set()

    # --- supervision (systemd) -----------------------------------------------------------------------------
    def is_up(self) -> bool:
        """Every poller has made its first attempt and the uplink its first connect (or has none)."""
        if any(p.steps == 0 for p in self.pollers):
            return False
        return self.uplink is None or self.uplink.state in ("connected", "backoff")

    def wedged(self) -> list[str]:
        """The parts that stopped making progress (empty = all well). A device offline is not a wedge."""
        grace = self.watchdog_grace_s
        out: list[str] = []
        for part in self.parts.values():
            if part.task is not None and part.task.done():
                out.append(f"{part.key} ended")
            elif isinstance(part.runner, BusPoller) and part.runner.heartbeat.overdue_s(grace) > 0:
                out.append(f"{part.key} stuck for {part.runner.heartbeat.overdue_s(0):.0f} s")
        for name, task in self._core_tasks.items():
            if task.done():
                out.append(f"{name} ended")
        if self.ticker_heartbeat.overdue_s(grace) > 0:
            out.append(f"rules ticker stuck for {self.ticker_heartbeat.overdue_s(0):.0f} s")
        if self.uplink is not None and self._uplink_task is not None:
            if self._uplink_task.done():
                out.append("uplink ended")
            else:
                stalled = self._uplink_stalled_s()
                limit = max(30.0, 3.0 * self.config.uplink.keepalive_s) + grace
                if stalled > limit:
                    out.append(f"uplink connected but nothing acknowledged for {stalled:.0f} s")
        return out

    def _uplink_stalled_s(self) -> float:
        """How long the uplink has been connected with rows waiting and no PUBACK (0 when draining or offline)."""
        now = self.clock.monotonic()
        progress = self._uplink_progress
        acked = sum(self.uplink.acked_total().values())
        waiting = sum(self.outbox.depth().values()) > 0
        if acked != progress.acked or not waiting or not self.uplink.connected:
            progress.acked, progress.since = acked, now
        return now - progress.since

    def _status(self) -> str:
        online, offline = self.devices_online()
        uplink = "none" if self.uplink is None else self.uplink.state
        version = "local file" if self.config_version is None else f"config v{self.config_version}"
        return (f"STATUS=uplink {uplink}, {len(self.pollers)} pollers, {online} devices online, {offline} offline, "
                f"{version}")

    async def _supervise(self) -> None:
        """READY=1 once up; then WATCHDOG=1 every half watchdog period while no part is wedged."""
        while not self.is_up():
            await asyncio.sleep(0.1)
        self.ready = True
        self.notifier.send("READY=1", self._status())
        logger.info("gateway up: %s", self._status().removeprefix("STATUS="))
        period = self.notifier.watchdog_period_s
        if period is None:
            return
        while True:
            wedged = self.wedged()
            if wedged != self.wedged_parts:
                if wedged:
                    logger.error("watchdog pings stopped (systemd will restart the gateway): %s", "; ".join(wedged))
                else:
                    logger.info("watchdog pings resumed")
            self.wedged_parts = wedged
            if wedged:
                self.notifier.send("STATUS=wedged: " + "; ".join(wedged))
            else:
                self.notifier.send("WATCHDOG=1", self._status())
            await asyncio.sleep(period)

    # --- configuration pushed by the backend ---------------------------------------------------------------
    def on_config_push(self, push: GatewayConfigPush) -> None:
        """Called in the event loop by the uplink for each config message (retained: again on every connect)."""
        task = asyncio.get_running_loop().create_task(self.apply_config(push))
        self._config_tasks.add(task)
        task.add_done_callback(self._config_tasks.discard)

    async def apply_config(self, push: GatewayConfigPush) -> bool:
        """Validate and apply a pushed config; False (reason on the state) when refused. The old one runs on."""
        async with self._config_lock:
            if push.version == self.config_version and self.config_error is None:
                return True  # the retained copy of what is in force, seen again after a reconnect
            name = label(push.version)
            reason: str | None = None
            if sha256_text(push.document) != push.sha256:
                reason = f"{name}: sha256 does not match the document"
            else:
                try:
                    path = self.last_good.incoming(push.document)
                    config, catalog = parse_document(path, push.version, self.base_config, self.base_catalog)
                except ProfileError as exc:  # ConfigError too: one problem per line, file = "config v<N>"
                    reason = str(exc)
                except OSError as exc:
                    reason = f"{name}: cannot store the document on the gateway: {exc}"
            if reason is not None:
                logger.error("pushed config refused; keeping %s:\n%s",
                             "the local file" if self.config_version is None else label(self.config_version), reason)
                self.config_error = reason[:2000]
                self._publish_state()
                return False
            await self._reconfigure(config, catalog)
            try:
                self.last_good.save(push.version, push.document)
            except OSError as exc:
                logger.error("%s applied but not stored as last good (the next start uses the previous one): %s",
                             name, exc)
            self.config_version, self.config_error = push.version, None
            logger.info("%s applied: %d devices, %d pollers, %d bridges, %d cameras", name, len(config.devices),
                        len(self.pollers), len(self.bridges), len(self.cameras))
            self._publish_state()
            self.report_health()
            return True

    async def _reconfigure(self, config: GatewayConfig, catalog: Catalog) -> None:
        """Swap in a new config: changed parts restart, unchanged ones run on; outbox, uplink and alarms stay."""
        self.config, self.catalog = config, catalog
        self.batcher.max_points = config.telemetry.max_points_per_batch
        self.batcher.flush_s = config.telemetry.flush_s
        added, retired = self._build_parts()
        for part in retired:
            await self._stop_part(part)
        self.linkage.config = config.linkage
        self.linkage.devices = {d.id: d for d in self._linkage_devices()}
        if self._running:
            for part in added:
                self._start_part(part)

    def _publish_state(self) -> None:
        """Re-publish the birth (retained state) with the config version or error and the device list."""
        self.outbox.put(self.birth())
        if self.uplink is not None:
            self.uplink.wake()
