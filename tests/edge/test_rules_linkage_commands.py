"""Pure-logic tests of the rules, the linkage engine, the command service and the bridge's message handling."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent_helpers import FakeClock, FakeOutbox

from contract.messages import Command, Location
from contract.mqtt import MqttSettings
from device_profiles import CompiledProfile, load_catalog
from edge.bridge import BridgedDevice, MqttBridge, parse_status
from edge.commands import CommandExecutor, CommandService, ExecResult, SeenStore
from edge.config import LinkageConfig, LinkageRule
from edge.linkage import LinkageDevice, LinkageEngine
from edge.rules import DeviceRules, Emitter, TelemetryBatcher

CATALOG = load_catalog()


def _rules(profile_id: str, clock: FakeClock, outbox: FakeOutbox, device: str = "d1",
           **kw: float) -> tuple[DeviceRules, TelemetryBatcher]:
    emitter = Emitter(outbox, "gw1")
    batcher = TelemetryBatcher(emitter, clock, max_points=3)
    return DeviceRules(device, CompiledProfile(CATALOG.get(profile_id)), emitter, batcher, clock, **kw), batcher


def test_report_by_exception_with_deadband_and_full_report() -> None:
    clock, outbox = FakeClock(), FakeOutbox()
    rules, batcher = _rules("acme-sd10", clock, outbox)
    rules.ingest({"smoke.obscuration": 1.0, "smoke.alarm": False})
    rules.ingest({"smoke.obscuration": 1.3, "smoke.alarm": False})  # within deadband 0.5, unchanged bool
    rules.ingest({"smoke.obscuration": 1.6})  # 0.6 from the last *reported* value
    batcher.flush()
    assert [(p, v) for _, p, v, _ in outbox.samples()] == [
        ("smoke.obscuration", 1.0), ("smoke.alarm", False), ("smoke.obscuration", 1.6)]
    # batches hold at most max_points (3)
    rules.full_report()
    batcher.flush()
    assert len(outbox.samples()) == 5
    assert all(len(m.points) <= 3 for m in outbox.messages if m.kind == "telemetry")
    # a point that cannot be read is reported once with bad quality
    rules.ingest({"smoke.obscuration": None})
    rules.ingest({"smoke.obscuration": None})
    batcher.flush()
    assert outbox.samples()[-1] == ("d1", "smoke.obscuration", 1.6, "bad")
    assert sum(1 for s in outbox.samples() if s[3] == "bad") == 1


def test_for_duration_and_life_safety_events() -> None:
    clock, outbox = FakeClock(), FakeOutbox()
    rules, _ = _rules("acme-sd10", clock, outbox)
    rules.ingest({"fault": True})
    clock.advance(5)
    rules.evaluate()
    assert not outbox.events("smoke.fault")  # for: 10
    clock.advance(6)
    rules.evaluate()
    assert [e.active for e in outbox.events("smoke.fault")] == [True]
    rules.ingest({"smoke.alarm": True})
    alarm = outbox.events("smoke.alarm")[0]
    assert alarm.life_safety and alarm.severity == "critical" and alarm.active
    rules.ingest({"smoke.alarm": False})
    assert [e.active for e in outbox.events("smoke.alarm")] == [True, False]


def test_debounce_holds_ordinary_events_but_never_life_safety() -> None:
    clock, outbox = FakeClock(), FakeOutbox()
    rules, _ = _rules("acme-sd10", clock, outbox, debounce_s=3.0)
    rules.ingest({"tamper": True, "smoke.alarm": True})
    assert outbox.events("smoke.alarm") and not outbox.events("smoke.tamper")
    rules.ingest({"tamper": False})
    clock.advance(5)
    rules.ingest({"tamper": False})
    assert not outbox.events("smoke.tamper")  # a 0 s blip never raised


def test_offline_once_and_back() -> None:
    clock, outbox = FakeClock(), FakeOutbox()
    rules, batcher = _rules("acme-em200", clock, outbox, offline_after_s=10)
    rules.answered()
    rules.ingest({"car.floor": 3})
    for _ in range(30):
        clock.advance(1)
        rules.check_liveness()
    rules.answered()
    rules.ingest({"car.floor": 3})
    ev = outbox.events("device.offline")
    assert [e.active for e in ev] == [True, False]
    assert ev[0].severity == "major" and not ev[0].life_safety
    batcher.flush()
    assert [q for _, p, _, q in outbox.samples() if p == "car.floor"] == ["good", "bad", "good"]


def test_panel_zones_are_keyed_and_located_by_the_zone_map() -> None:
    clock, outbox = FakeClock(), FakeOutbox()
    zones = {12: Location(site="s1", building="B3", floor=12),
             13: Location(site="s1", building="B3", floor=13, area="东侧走廊")}
    rules, _ = _rules("gst-fp200", clock, outbox, device="fp", zones=zones)  # type: ignore[arg-type]
    rules.ingest({"zone12.fire": True, "zone13.fire": False, "zone14.fire": False})
    rules.ingest({"zone13.fire": True})
    rules.ingest({"zone12.fire": False, "zone14.fire": True})
    clock.advance(6)
    rules.ingest({"panel.main_power_fault": True})
    clock.advance(6)
    rules.evaluate()
    got = [(e.key, e.active, e.location.floor if e.location else None, e.location.area if e.location else None)
           for e in outbox.events()]
    assert got == [
        ("fire.alarm#12", True, 12, None), ("fire.alarm#13", True, 13, "东侧走廊"),
        ("fire.alarm#12", False, 12, None),  # the clear of zone 12 names zone 12 only
        ("fire.alarm#14", True, None, None),  # not in the map: the panel's own location
        ("fire.power_fault", True, None, None),  # not about a zone
    ]
    assert outbox.events()[0].location is not None and outbox.events()[0].location.building == "B3"


def test_gateway_events_have_keys() -> None:
    clock, outbox = FakeClock(), FakeOutbox()
    rules, _ = _rules("acme-em200", clock, outbox, offline_after_s=5)
    clock.advance(6)
    rules.check_liveness()
    rules.answered()
    rules.ingest({"fault.trapped_between_floors": True})
    clock.advance(3)
    rules.evaluate()
    assert [(e.event, e.key) for e in outbox.events()] == [
        ("device.offline", "device.offline"), ("device.offline", "device.offline"),
        ("elevator.entrapment", "elevator.entrapment.between_floors")]


# --- linkage ----------------------------------------------------------------------------------------------

def _linkage(rules: list[LinkageRule], base_floor: int = 1) -> tuple[LinkageEngine, FakeOutbox, list[tuple]]:
    clock, outbox = FakeClock(), FakeOutbox()
    emitter = Emitter(outbox, "gw1")
    calls: list[tuple] = []

    async def execute(device: str, command: str, args: dict, command_id: str) -> ExecResult:
        calls.append((device, command, args))
        return ExecResult("succeeded")

    devices = [
        LinkageDevice("panel", "fire_panel", "B1"), LinkageDevice("smoke1", "smoke_detector", "B1"),
        LinkageDevice("door1", "door_access", "B1"), LinkageDevice("door2", "door_access", "B1"),
        LinkageDevice("door9", "door_access", "B9"), LinkageDevice("lift1", "elevator", "B1"),
        LinkageDevice("cam1", "camera", "B1", watches="lift1"),
    ]
    engine = LinkageEngine(LinkageConfig(base_floor=base_floor, rules=rules), devices, execute, emitter, clock)
    engine.attach()
    engine.clock = clock
    return engine, outbox, calls


DOORS = LinkageRule(name="doors", triggers=["fire.alarm", "smoke.alarm"], target_type="door_access",
                    command="release_all", restore_command="restore", require_signals=2, window_s=60)
LIFTS = LinkageRule(name="lifts", triggers=["fire.alarm", "smoke.alarm"], target_type="elevator",
                    command="fire_recall", base_floor_arg="floor")


def _fire(em: Emitter, device: str, zone: int | None, active: bool = True) -> None:
    """A panel zone's fire.alarm (key fire.alarm#<zone>) or a detector's smoke.alarm, as DeviceRules emits them."""
    ts = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    if zone is None:
        em.event(device, "smoke.alarm", key="smoke.alarm", severity="critical", active=active, life_safety=True, ts=ts)
    else:
        em.event(device, "fire.alarm", key=f"fire.alarm#{zone}", severity="critical", active=active, life_safety=True,
                 ts=ts, detail={"zone": zone})


async def test_two_signal_rule_and_interlock() -> None:
    engine, outbox, calls = _linkage([DOORS, LIFTS], base_floor=-1)
    em = engine.emitter
    _fire(em, "panel", 3)
    await engine.drain()
    assert calls == [("lift1", "fire_recall", {"floor": -1})]  # one signal: lifts (require 1), doors not yet
    # the same zone again is not a second independent signal
    _fire(em, "panel", 3)
    await engine.drain()
    assert len(calls) == 1
    _fire(em, "panel", 4)  # another zone of the same panel is (GB 50116 §4.1.6)
    await engine.drain()
    assert sorted(calls[1:]) == [("door1", "release_all", {}), ("door2", "release_all", {})]  # not door9 (B9)
    _fire(em, "smoke1", None)
    await engine.drain()
    assert len(calls) == 3  # interlock: no double action while engaged
    actions = outbox.events("linkage.action")
    assert {(a.device, a.key, a.detail["command"], a.detail["outcome"]) for a in actions} == {
        ("lift1", "linkage.action@lifts", "fire_recall", "succeeded"),
        ("door1", "linkage.action@doors", "release_all", "succeeded"),
        ("door2", "linkage.action@doors", "release_all", "succeeded")}
    assert actions[-1].detail["signals"] == "panel/fire.alarm#3,panel/fire.alarm#4"
    for dev, zone in (("panel", 3), ("panel", 4), ("smoke1", None)):
        _fire(em, dev, zone, active=False)
    await engine.drain()
    assert sorted(calls[3:]) == [("door1", "restore", {}), ("door2", "restore", {})]  # lifts: no restore set


async def test_two_signals_outside_the_window_do_not_engage() -> None:
    engine, _, calls = _linkage([DOORS])
    _fire(engine.emitter, "panel", 1)
    engine.clock.advance(120)  # type: ignore[attr-defined]
    _fire(engine.emitter, "smoke1", None)
    await engine.drain()
    assert calls == []


async def test_ebike_holds_the_watched_elevator() -> None:
    rule = LinkageRule(name="ebike", triggers=["elevator.ebike_detected"], scope="watched_device",
                       target_type="elevator", command="hold_doors", args={"duration_s": 30})
    engine, _, calls = _linkage([rule])
    engine.emitter.event("cam1", "elevator.ebike_detected", key="elevator.ebike_detected@car", severity="major",
                         active=True, ts=engine.clock.now())
    await engine.drain()
    assert calls == [("lift1", "hold_doors", {"duration_s": 30})]


# --- commands ---------------------------------------------------------------------------------------------

class _Target:
    """Stands in for a poller: records writes, optionally hangs."""

    def __init__(self, hang: bool = False) -> None:
        self.writes: list = []
        self.hang = hang

    async def write(self, unit: int, writes: list) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        self.writes.append((unit, writes))


def _service(tmp_path: Path, hang: bool = False, timeout: float | None = None):
    from edge.commands import ModbusTarget

    clock, outbox = FakeClock(), FakeOutbox()
    executor = CommandExecutor(timeout)
    target = _Target(hang)
    executor.add("lift1", CompiledProfile(CATALOG.get("acme-em200")), ModbusTarget(target, 3))  # type: ignore[arg-type]
    store = SeenStore(tmp_path / "commands_seen.sqlite3")
    return CommandService(executor, Emitter(outbox, "gw1"), store, clock), outbox, target, clock, store


def _cmd(clock: FakeClock, command: str = "fire_recall", **kw) -> Command:
    return Command(gw="gw1", seq=1, ts=clock.now(), device=kw.pop("device", "lift1"), command=command, **kw)


async def test_command_outcomes_and_idempotency(tmp_path: Path) -> None:
    service, outbox, target, clock, store = _service(tmp_path)
    ok = _cmd(clock, args={"floor": 2})
    await service.handle(ok)
    await service.handle(ok)  # duplicate delivery
    assert len(target.writes) == 1
    assert [a.status for a in outbox.acks()] == ["succeeded", "succeeded"]
    assert outbox.acks()[1].detail.get("duplicate") is True
    await service.handle(_cmd(clock, args={"floor": 200}))
    await service.handle(_cmd(clock, command="fly"))
    await service.handle(_cmd(clock, device="nope"))
    await service.handle(_cmd(clock, expires_at=clock.now() - timedelta(seconds=1)))
    statuses = [(a.status, a.reason) for a in outbox.acks()[2:]]
    assert [s for s, _ in statuses] == ["rejected", "rejected", "rejected", "expired"]
    assert "above the maximum" in (statuses[0][1] or "")
    assert len(target.writes) == 1
    store.close()
    # the outcome survives a restart: a new service on the same store re-sends the stored ack
    service2, outbox2, target2, _, store2 = _service(tmp_path)
    await service2.handle(ok)
    assert [a.status for a in outbox2.acks()] == ["succeeded"] and target2.writes == []
    store2.close()


async def test_command_times_out(tmp_path: Path) -> None:
    service, outbox, _, clock, store = _service(tmp_path, hang=True, timeout=0.2)
    await service.handle(_cmd(clock))
    assert outbox.acks()[0].status == "timed_out"
    store.close()


# --- bridge message handling (no broker needed) -----------------------------------------------------------

def test_bridge_decodes_points_momentary_events_status_and_bad_payloads() -> None:
    clock, outbox = FakeClock(), FakeOutbox()
    rules, batcher = _rules("acme-dc100", clock, outbox, device="door1")
    profile = rules.profile
    bridge = MqttBridge(MqttSettings.from_url("mqtt://127.0.0.1:1"), [BridgedDevice("door1", profile, rules)], clock)
    bridge.handle("xqdev/door1/state", b'{"door_open": false, "locked": true, "mode": "normal", "tamper": false}')
    bridge.handle("xqdev/door1/event", b'{"type": "access_granted", "credential_hash": "ab12", "method": "card"}')
    bridge.handle("xqdev/door1/event", b'{"type": "forced_open"}')
    bridge.handle("xqdev/door1/state", b"{not json")
    bridge.handle("xqdev/door1/state", b"[1, 2]")
    bridge.handle("xqdev/door1/status", b"offline")
    batcher.flush()
    assert ("door1", "lock.locked", True, "good") in outbox.samples()
    granted = outbox.events("door.access_granted")[0]
    assert granted.detail == {"credential": "ab12", "method": "card"}
    assert outbox.events("door.forced_open")
    assert len(outbox.events("device.bad_payload")) == 1  # at most once a minute
    assert bridge.bad_payloads_total == 2
    assert [e.active for e in outbox.events("device.offline")] == [True]
    clock.advance(61)
    bridge.handle("xqdev/door1/status", b'{"state": "online"}')
    bridge.handle("xqdev/door1/state", b'"just a string"')
    assert len(outbox.events("device.bad_payload")) == 2
    assert [e.active for e in outbox.events("device.offline")] == [True, False]
    assert parse_status(b"garbage") is None and parse_status(b'{"online": false}') is False


def test_command_ids_are_uuids() -> None:
    assert uuid.UUID(str(_cmd(FakeClock()).id))
