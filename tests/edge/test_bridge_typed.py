"""The bridge on a vendor JSON device: typed values, a value that does not convert (quality bad + the reason),
device time stamps checked against the gateway clock."""

from __future__ import annotations

import json
from datetime import timedelta

from edge_agent_helpers import FakeClock, FakeOutbox

from contract.mqtt import MqttSettings
from device_profiles import CompiledProfile, load_catalog
from edge.bridge import BridgedDevice, MqttBridge
from edge.rules import DeviceRules, Emitter, TelemetryBatcher

PROFILE = CompiledProfile(load_catalog().get("tianlan-gv40"))


def _bridge() -> tuple[MqttBridge, FakeOutbox, TelemetryBatcher, FakeClock]:
    clock, outbox = FakeClock(), FakeOutbox()
    emitter = Emitter(outbox, "gw1")
    batcher = TelemetryBatcher(emitter, clock, max_points=100)
    rules = DeviceRules("gas1", PROFILE, emitter, batcher, clock)
    bridge = MqttBridge(MqttSettings.from_url("mqtt://127.0.0.1:1"), [BridgedDevice("gas1", PROFILE, rules)], clock)
    return bridge, outbox, batcher, clock


def _up(clock: FakeClock, gas: str, *, skew_s: float = 0.0, **more: str) -> bytes:
    kv = {"gas": gas, "valve": "on", "alm": "0", "fault": "0", "bat": "88", "csq": "23", **more}
    ts = int((clock.now() + timedelta(seconds=skew_s)).timestamp() * 1000)
    return json.dumps({"ts": ts, "data": [{"k": k, "v": v} for k, v in kv.items()]}).encode()


def test_typed_values_and_the_life_safety_alarm() -> None:
    bridge, outbox, batcher, clock = _bridge()
    bridge.handle("tl/gas1/up", _up(clock, "3.5", skew_s=-2))
    batcher.flush()
    samples = {(p, v, q) for _, p, v, q in outbox.samples()}
    assert {("gas.concentration", 3.5, "good"), ("valve.state", "open", "good"), ("battery_pct", 88, "good"),
            ("rssi_dbm", -67, "good"), ("fault", False, "good"), ("gas.level", "normal", "good")} == samples
    batch = outbox.messages[-1]
    assert batch.points[0].ts == clock.now() - timedelta(seconds=2, microseconds=0)  # the device's own time
    bridge.handle("tl/gas1/up", _up(clock, "31.0", alm="2"))
    (alarm,) = outbox.events("gas.alarm")
    assert alarm.active and alarm.life_safety and alarm.severity == "critical"
    bridge.handle("tl/gas1/up", _up(clock, "12"))
    assert [e.active for e in outbox.events("gas.alarm")] == [True, False]


def test_a_value_that_does_not_convert_is_bad_with_the_reason_once() -> None:
    bridge, outbox, batcher, clock = _bridge()
    bridge.handle("tl/gas1/up", _up(clock, "4"))
    bridge.handle("tl/gas1/up", _up(clock, "E1"))
    bridge.handle("tl/gas1/up", _up(clock, "E1"))
    batcher.flush()
    gas = [(v, q) for _, p, v, q in outbox.samples() if p == "gas.concentration"]
    assert gas == [(4.0, "good"), ("E1", "bad")]  # never a silent string: flagged bad
    (bad,) = outbox.events("device.bad_value")
    assert bad.active and bad.key == "device.bad_value#gas.concentration"
    assert bad.detail["value"] == "E1" and "not a number" in str(bad.detail["reason"])
    bridge.handle("tl/gas1/up", _up(clock, "5"))
    assert [e.active for e in outbox.events("device.bad_value")] == [True, False]


def test_device_clock_outside_the_window_uses_gateway_time_and_is_flagged() -> None:
    bridge, outbox, batcher, clock = _bridge()
    bridge.handle("tl/gas1/up", _up(clock, "4", skew_s=-3600))
    batcher.flush()
    assert all(p.ts == clock.now() for p in outbox.messages[-1].points)
    (skew,) = outbox.events("device.clock_skew")
    assert skew.active and "-3600 s off" in str(skew.detail["reason"])
    bridge.handle("tl/gas1/up", _up(clock, "6", skew_s=-3600))
    assert len(outbox.events("device.clock_skew")) == 1
    bridge.handle("tl/gas1/up", _up(clock, "8", skew_s=1))
    assert [e.active for e in outbox.events("device.clock_skew")] == [True, False]


def test_after_the_last_will_only_the_device_itself_brings_it_back() -> None:
    bridge, outbox, batcher, clock = _bridge()
    bridge.handle("tl/gas1/will", b"online", True)
    bridge.handle("tl/gas1/up", _up(clock, "4"))
    bridge.handle("tl/gas1/will", b"offline")  # the broker publishes its last will
    assert [e.active for e in outbox.events("device.offline")] == [True]
    bridge.handle("tl/gas1/up", _up(clock, "4"), True)  # a retained report, e.g. on the bridge's reconnect
    bridge.handle("tl/gas1/hb", b"{}", True)
    rules = bridge.devices["gas1"].rules
    assert rules.online is False and rules.quality["gas.concentration"] == "bad"
    rules.full_report()  # the periodic full report carries the stale values as bad
    batcher.flush()
    assert outbox.samples()[-1][3] == "bad"
    bridge.handle("tl/gas1/up", _up(clock, "5"))  # live traffic from the device
    assert rules.online is True and [e.active for e in outbox.events("device.offline")] == [True, False]


def test_commands_correlate_by_a_device_side_integer_and_result_codes_map_to_outcomes(caplog) -> None:
    from device_profiles.commands import render_mqtt, validate_args
    from edge.bridge.mqtt_bridge import result_outcome

    bridge, *_ = _bridge()
    spec = PROFILE.command("close_valve")
    assert spec is not None
    first = bridge.wire_id("gas1", "0190f3a4-0000-7000-8000-000000000001")
    second = bridge.wire_id("gas1", "0190f3a4-0000-7000-8000-000000000002")
    assert (first, second) == (1, 2)  # uint16 counter, not the UUID
    assert bridge.wire_id("gas1", "0190f3a4-0000-7000-8000-000000000001") == 1  # stable while it runs
    publish = render_mqtt(spec, validate_args(spec, {}), prefix="tl/gas1", device_id="gas1", command_id=first)
    assert publish.topic == "tl/gas1/down" and publish.payload == {"seq": 1, "cmd": "valve", "v": "off"}
    result = PROFILE.profile.mqtt.command_result
    assert result is not None
    assert result_outcome(result, {"seq": 1, "ret": 0}).status == "succeeded"
    refused = result_outcome(result, {"seq": 1, "ret": "1", "msg": "gas alarm active"})
    assert (refused.status, refused.reason) == ("refused", "gas alarm active")
    assert result_outcome(result, {"seq": 1, "ret": 1}).reason == "refused by the device"
    assert result_outcome(result, {"seq": 1, "ret": 2}).status == "failed"
    assert result_outcome(result, {"seq": 1, "ret": 9}).reason == "unknown result code 9"
    with caplog.at_level("WARNING"):
        bridge.handle("tl/gas1/reply", b'{"seq": 17, "ret": 0}')
    assert "gas1" in caplog.text and "id 17 matches no command" in caplog.text
