"""Play a scenario against a running compound and build the report.

Every step waits for its scenario time (``clock.sleep_until``), acts through the compound's API and is
recorded with its scheduled and actual scenario time and wall time. A step that cannot run in this
setup (no camera package, a broker the simulation did not start) is recorded as ``skipped`` with the
reason; a step that fails is recorded as ``error`` — the run goes on either way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from device_profiles.compiled import CompiledProfile
from device_profiles.modbus_codec import CodecError
from device_profiles.mqtt_mapping import fill_topic
from simulators.compound import UNKNOWN_CARD, DeviceNotFound, SimulatedCompound
from simulators.faults import MALFORMED_PAYLOADS, publish_raw
from simulators.modbus import UnknownPoint
from simulators.report import DeviceCounts, InjectedRecord, Outcome, Report
from simulators.scenario import (
    Broker,
    Camera,
    Door,
    GarbageModbus,
    MalformedMqtt,
    Mark,
    Scenario,
    SetPoint,
    Silent,
    Slow,
    Smoke,
    Step,
    Wan,
)

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, InjectedRecord | None], None]


class Skip(Exception):
    """This step cannot run in this setup; the message says why."""


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def check_scenario(scenario: Scenario, sim: SimulatedCompound) -> list[str]:
    """Problems found before the run: unknown devices, points a device's profile does not have."""
    problems: list[str] = []
    ids = {d.id for d in sim.layout.devices}
    for i, step in enumerate(scenario.steps):
        device = getattr(step, "device", None)
        if device is None:
            continue
        full = sim.layout.id_prefix + device
        if full not in ids:
            problems.append(f"steps[{i}] ({step.action} at {step.at}s): unknown device {device!r}")
            continue
        spec = sim.layout.device(full)
        if isinstance(step, SetPoint):
            known = CompiledProfile(sim.catalog.get(spec.profile)).points_by_name
            for name in step.as_dict():
                if name not in known:
                    problems.append(f"steps[{i}] (set at {step.at}s): {device} ({spec.profile}) has no point {name!r}")
    return problems


class ScenarioRunner:
    def __init__(self, sim: SimulatedCompound, scenario: Scenario | None, *, duration: float | None = None,
                 progress: ProgressFn | None = None) -> None:
        self.sim = sim
        self.scenario = scenario
        self.duration = duration if duration is not None else (scenario.end if scenario else 10.0)
        self.progress = progress
        self.records: list[InjectedRecord] = []
        self._followups: set[asyncio.Task[None]] = set()

    def _id(self, device: str) -> str:
        return self.sim.layout.id_prefix + device

    async def _until(self, sim_time: float, stop: asyncio.Event | None) -> bool:
        """Wait until scenario time ``sim_time``; False when ``stop`` was set first."""
        wait = self.sim.clock.wall_seconds(sim_time - self.sim.clock.now())
        if stop is None:
            await asyncio.sleep(max(0.0, wait) if math.isfinite(wait) else 1e9)
            return True
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, wait) if math.isfinite(wait) else None)
        except TimeoutError:
            return True
        return False

    async def run(self, stop: asyncio.Event | None = None) -> list[InjectedRecord]:
        clock = self.sim.clock
        steps = self.scenario.ordered() if self.scenario else []
        ticker = asyncio.get_running_loop().create_task(self._tick())
        try:
            for step in steps:
                if step.at > self.duration or not await self._until(step.at, stop):
                    break
                rec = await self._do(step)
                self.records.append(rec)
                if self.progress:
                    self.progress(clock.now(), rec)
            else:
                await self._until(self.duration, stop)
        finally:
            ticker.cancel()
            for t in list(self._followups):
                t.cancel()
        return self.records

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.progress:
                self.progress(self.sim.clock.now(), None)

    def _later(self, sim_seconds: float, fn: Callable[[], None]) -> None:
        async def go() -> None:
            await self.sim.clock.sleep(sim_seconds)
            fn()

        task = asyncio.get_running_loop().create_task(go())
        self._followups.add(task)
        task.add_done_callback(self._followups.discard)

    async def _do(self, step: Step) -> InjectedRecord:
        clock = self.sim.clock
        params: dict[str, Any] = step.model_dump(exclude={"at", "action", "device", "note"}, exclude_none=True)
        device = getattr(step, "device", None)
        outcome: Outcome = "ok"
        detail: str | None = step.note
        sim_time, wall = clock.now(), time.time()
        try:
            await self._apply(step)
        except Skip as exc:
            outcome, detail = "skipped", str(exc)
            logger.warning("step %s at %.1fs skipped: %s", step.action, step.at, exc)
        except (DeviceNotFound, UnknownPoint, CodecError, RuntimeError, OSError, ValueError) as exc:
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"
            logger.error("step %s at %.1fs on %s failed: %s", step.action, step.at, device, exc)
        return InjectedRecord(seq=len(self.records) + 1, at=step.at, sim_time=round(sim_time, 3), wall_time=_iso(wall),
                              wall_unix=wall, device=device, action=step.action, params=params,
                              outcome=outcome,
                              detail=detail)

    async def _apply(self, step: Step) -> None:
        sim = self.sim
        if isinstance(step, SetPoint):
            sim.device(self._id(step.device)).set_many(step.as_dict())
        elif isinstance(step, Smoke):
            sd = sim.mqtt_device(self._id(step.device))
            level = step.obscuration if step.obscuration is not None else (6.0 if step.alarm else 0.2)
            sd.set_obscuration(level)
        elif isinstance(step, Door):
            await self._door(step)
        elif isinstance(step, Silent):
            (sim.silence if step.action == "silent" else sim.restore)(self._id(step.device))
        elif isinstance(step, Slow):
            sim.slow(self._id(step.device), step.delay_ms)
        elif isinstance(step, GarbageModbus):
            dev_id = self._id(step.device)
            if step.frames:
                await sim.send_garbage(dev_id, step.frames)
            if step.junk_responses_s > 0:
                sim.junk_responses(dev_id, True)
                self._later(step.junk_responses_s, lambda: sim.junk_responses(dev_id, False))
        elif isinstance(step, MalformedMqtt):
            dev_id = self._id(step.device)
            sim.mqtt_device(dev_id)
            if sim.mqtt_url is None:
                raise Skip("no MQTT broker")
            topic = fill_topic("{prefix}/" + step.topic, prefix=f"xqdev/{dev_id}", device_id=dev_id)
            payloads = [MALFORMED_PAYLOADS[i % len(MALFORMED_PAYLOADS)] for i in range(step.count)]
            await asyncio.to_thread(publish_raw, sim.mqtt_url, topic, payloads, f"xq-sim-junk-{dev_id}")
        elif isinstance(step, Wan):
            if sim.proxy is None:
                raise Skip("no uplink proxy (run with an uplink proxy to cut the WAN)")
            (sim.wan_cut if step.state == "cut" else sim.wan_restore)()
        elif isinstance(step, Broker):
            if sim.broker is None:
                raise Skip("the broker was given with --mqtt, not started by the simulation")
            if step.op in ("stop", "restart"):
                await sim.broker_stop()
            if step.op in ("start", "restart"):
                await sim.broker_start()
        elif isinstance(step, Camera):
            dev_id = self._id(step.device)
            if dev_id not in sim.cameras:
                raise Skip(sim.camera_status if not sim.cameras else f"camera {step.device} is not running")
            sim.cameras[dev_id].set_scene(step.scene)
        elif isinstance(step, Mark):
            logger.info("mark at %.1fs: %s", step.at, step.message)

    async def _door(self, step: Door) -> None:
        dev = self.sim.mqtt_device(self._id(step.device))
        if step.event == "access_granted":
            cards = dev.cfg.get("cards") or []
            dev.present_card(step.card or (cards[0] if cards else "0"))

            async def walk_through() -> None:
                # the firmware's unlock window runs in real time, so the resident does too
                deadline = time.monotonic() + 2.0
                while not dev.unlocked and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                if dev.unlocked:
                    dev.set_door_open(True)
                    await asyncio.sleep(1.5)
                    dev.set_door_open(False)

            task = asyncio.get_running_loop().create_task(walk_through())
            self._followups.add(task)
            task.add_done_callback(self._followups.discard)
        elif step.event == "access_denied":
            dev.present_card(step.card or UNKNOWN_CARD)
        elif step.event == "forced_open":
            dev.set_door_open(True)
            if step.open_s > 0:
                self._later(step.open_s, lambda: dev.set_door_open(False))
        elif step.event == "door_closed":
            dev.set_door_open(False)
        elif step.event == "tamper":
            dev.set_tamper(True)


async def run_simulation(sim: SimulatedCompound, scenario: Scenario | None, *, duration: float | None = None,
                         progress: ProgressFn | None = None, scenario_name: str | None = None,
                         stop: asyncio.Event | None = None, on_started: Callable[[], None] | None = None) -> Report:
    """Start the compound, play the scenario, stop, and return the report."""
    problems = check_scenario(scenario, sim) if scenario else []
    if problems:
        raise ValueError("scenario does not fit the layout:\n" + "\n".join(problems))
    started = time.time()
    async with sim:
        if on_started is not None:
            on_started()
        runner = ScenarioRunner(sim, scenario, duration=duration, progress=progress)
        records = await runner.run(stop)
        connected = sum(1 for d in sim.firmware.devices.values() if d.connected)
        report = Report(
            site=sim.layout.site.id, layout=sim.layout.source,
            scenario=scenario_name or (scenario.name if scenario else None),
            seed=sim.seed, speed=sim.clock.speed, started_at=_iso(started), ended_at=_iso(time.time()),
            scenario_seconds=round(sim.clock.now(), 3), start_s=round(sim.start_s, 3),
            devices=DeviceCounts(modbus=len(sim.modbus), modbus_ports=len(sim.ports), mqtt=len(sim.firmware.devices),
                                 mqtt_connected=connected, cameras=len(sim.cameras)),
            camera_status=sim.camera_status, ports=sim.port_map(), injected=records,
            modbus_requests_served=sum(d.requests_served for d in sim.modbus.values()),
        )
    return report
