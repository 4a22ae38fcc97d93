"""Events raised before a gateway restart are cleared after it when their condition has ended (rules + store)."""

from __future__ import annotations

from pathlib import Path

from edge_agent_helpers import FakeClock, FakeOutbox

from contract.messages import Location
from device_profiles import CompiledProfile, load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig
from edge.rules import DeviceRules, Emitter, TelemetryBatcher
from edge.rules.active import FILE_NAME as ACTIVE_EVENTS_FILE
from edge.rules.active import ActiveEvent, ActiveEventStore

CATALOG = load_catalog()
ZONES = {5: Location(site="s1", building="B3", floor=5)}


def _gen(store: ActiveEventStore, profile_id: str, device: str, **kw: object) -> tuple[DeviceRules, FakeOutbox]:
    """One gateway process: fresh memory, a fresh clock and outbox, the same store file; seeded as the agent does."""
    outbox, clock = FakeOutbox(), FakeClock()
    emitter = Emitter(outbox, "gw1")
    emitter.active_store = store
    rules = DeviceRules(device, CompiledProfile(CATALOG.get(profile_id)), emitter, TelemetryBatcher(emitter, clock),
                        clock, **kw)  # type: ignore[arg-type]
    rules.restore(store.active(device))
    return rules, outbox


def _keys(store: ActiveEventStore) -> list[str]:
    return [a.key for a in store.active()]


def test_fire_zone_cleared_while_down_is_cleared_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "active_events.sqlite3"
    store = ActiveEventStore(path)
    rules, outbox = _gen(store, "gst-fp200", "fp", zones=ZONES, offline_after_s=10)
    rules.answered()
    rules.ingest({"zone3.fire": True, "zone5.fire": True, "zone7.fire": False})
    assert [(e.key, e.active) for e in outbox.events()] == [("fire.alarm#3", True), ("fire.alarm#5", True)]
    assert _keys(store) == ["fire.alarm#3", "fire.alarm#5"]
    stored = store.active("fp")[1]
    assert stored.life_safety and stored.severity == "critical" and stored.location == ZONES[5]
    store.close()

    store = ActiveEventStore(path)  # restart: zone 5 was reset while the gateway was down, zone 3 still burns
    rules, outbox = _gen(store, "gst-fp200", "fp", zones=ZONES, offline_after_s=10)
    rules.evaluate()
    assert outbox.events() == []  # nothing known yet: nothing raised, nothing cleared
    rules.answered()
    rules.ingest({"zone3.fire": True, "zone5.fire": False, "zone7.fire": False})
    (clear,) = outbox.events()
    assert (clear.key, clear.active, clear.life_safety, clear.location) == ("fire.alarm#5", False, True, ZONES[5])
    assert _keys(store) == ["fire.alarm#3"]
    # the panel goes silent: its alarm stays up (no clear on no data) and the offline event is kept too
    rules.clock.advance(11)  # type: ignore[attr-defined]
    rules.check_liveness()
    rules.evaluate()
    assert [(e.key, e.active) for e in outbox.events()][1:] == [("device.offline", True)]
    assert _keys(store) == ["device.offline", "fire.alarm#3"]
    store.close()

    store = ActiveEventStore(path)  # restart while the panel is down; it comes back with zone 3 reset
    rules, outbox = _gen(store, "gst-fp200", "fp", zones=ZONES, offline_after_s=10)
    rules.clock.advance(30)  # type: ignore[attr-defined]
    rules.check_liveness()  # still silent: offline is not raised a second time
    assert outbox.events() == []
    rules.answered()
    rules.ingest({"zone3.fire": False, "zone5.fire": False})
    assert [(e.key, e.active) for e in outbox.events()] == [("device.offline", False), ("fire.alarm#3", False)]
    assert _keys(store) == []


def test_clear_conditions_and_clear_for_still_apply_after_restart(tmp_path: Path) -> None:
    store = ActiveEventStore(tmp_path / "a.sqlite3")
    rules, outbox = _gen(store, "acme-sd10", "sd", debounce_s=3.0)  # debounce: clear_for 3 s for tamper
    rules.ingest({"tamper": True, "battery_pct": 15})
    rules.clock.advance(4)  # type: ignore[attr-defined]
    rules.evaluate()
    assert sorted(e.key for e in outbox.events()) == ["smoke.low_battery", "smoke.tamper"]

    rules, outbox = _gen(store, "acme-sd10", "sd", debounce_s=3.0)
    rules.ingest({"tamper": False, "battery_pct": 22})  # low battery clears at >= 25 only
    assert outbox.events() == []
    rules.clock.advance(4)  # type: ignore[attr-defined]
    rules.evaluate()
    assert [(e.key, e.active) for e in outbox.events()] == [("smoke.tamper", False)]
    assert _keys(store) == ["smoke.low_battery"]


def test_events_gone_from_the_profile_are_cleared_with_a_reason(tmp_path: Path) -> None:
    store = ActiveEventStore(tmp_path / "a.sqlite3")
    store.raised(ActiveEvent("fp", "fire.alarm#40", "fire.alarm", "critical", True, ZONES[5]))
    _, outbox = _gen(store, "gst-fp200", "fp")
    (clear,) = outbox.events()
    assert (clear.key, clear.event, clear.active, clear.life_safety, clear.location) == (
        "fire.alarm#40", "fire.alarm", False, True, ZONES[5])
    assert "no longer in profile gst-fp200" in str(clear.detail["reason"])
    assert _keys(store) == []


def test_momentary_events_are_not_tracked(tmp_path: Path) -> None:
    store = ActiveEventStore(tmp_path / "a.sqlite3")
    rules, outbox = _gen(store, "acme-dc100", "door")
    forced = next(e for e in rules.profile.events if e.on_message is not None and e.type == "door.forced_open")
    rules.momentary(forced, {})
    assert [e.key for e in outbox.events()] == [forced.key]
    assert _keys(store) == []


def test_agent_clears_events_of_devices_no_longer_configured(tmp_path: Path) -> None:
    store = ActiveEventStore(tmp_path / ACTIVE_EVENTS_FILE)
    store.raised(ActiveEvent("old-panel", "fire.alarm#2", "fire.alarm", "critical", True, None))
    store.raised(ActiveEvent("fp", "fire.alarm#4", "fire.alarm", "critical", True, None))
    store.close()
    config = GatewayConfig.model_validate({
        "gateway_id": "gw1", "site": "s1", "uplink": {"url": "mqtt://127.0.0.1:1"},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "devices": [{"id": "fp", "profile": "gst-fp200", "location": {"site": "s1", "building": "B1"},
                     "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 1, "unit": 1}}],
    })
    outbox = FakeOutbox()
    agent = GatewayAgent(config, CATALOG, outbox=outbox, with_uplink=False, with_video=False, use_last_good=False)
    (clear,) = outbox.events()
    assert (clear.device, clear.key, clear.active) == ("old-panel", "fire.alarm#2", False)
    assert "no longer configured" in str(clear.detail["reason"])
    assert [(a.device, a.key) for a in agent.active_events.active()] == [("fp", "fire.alarm#4")]
    assert [e.key for e in agent.rules["fp"].tracker.active()] == ["fire.alarm#4"]
    agent.store.close()
    agent.active_events.close()
