"""Devices replayed from samples (``simulators/replay_devices.py``): an installer's own device type simulated
from its profile alone — the profile's examples by default, in a loop, on the real broker and a real pymodbus
server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import AsyncModbusTcpClient

from device_profiles import load_catalog
from device_profiles.loader import load_profile
from simulators.compound import SimulatedCompound
from simulators.layout import LayoutError, load_layout
from simulators.replay_devices import ReplayMqttDevice, ReplaySpec, ReplayStep, resolve

MODBUS_PROFILE = (
    "id: t-replay-mb\nvendor: t\nmodel: t\ndevice_type: t_meter\nprotocol: modbus_tcp\npoints:\n"
    "  - {name: temp, unit: C, register: {table: input, address: 10, type: int16, scale: 0.1}}\n"
    "  - {name: mode, register: {table: holding, address: 0}, enum: {0: auto, 1: manual}}\n"
    "events:\n  - {type: temp.high, severity: major, when: {point: temp, gt: 50}}\n"
    "examples:\n"
    "  - {name: cool, registers: {input: {10: [215]}, holding: {0: [0]}}, expect: {values: {temp: 21.5}}}\n"
    "  - {name: hot, registers: {input: {10: [612]}, holding: {0: [1]}},\n"
    "     expect: {values: {temp: 61.2, mode: manual}, events: [temp.high]}}\n"
)


def _gv40() -> Any:
    return load_catalog().get("tianlan-gv40")


def test_the_profile_examples_are_the_default_samples() -> None:
    samples = resolve(_gv40(), ReplaySpec(period_s=2))
    assert [s.name for s in samples] == [e.name for e in _gv40().examples]
    assert all(s.hold_s == 2 and s.topic == "{prefix}/up" and isinstance(s.payload, dict) for s in samples)


def test_samples_by_name_or_of_their_own_and_what_does_not_fit() -> None:
    spec = ReplaySpec(steps=[ReplayStep(example="leak, the detector shut the valve itself", hold_s=30),
                             ReplayStep(topic="{prefix}/up", payload='{"data": [{"k": "gas", "v": "1.0"}]}')])
    leak, own = resolve(_gv40(), spec)
    assert leak.hold_s == 30 and leak.payload["seq"] == 102
    assert own.payload == {"data": [{"k": "gas", "v": "1.0"}]} and own.hold_s == 5.0
    with pytest.raises(ValueError, match="has no example 'nope'"):
        resolve(_gv40(), ReplaySpec(steps=[ReplayStep(example="nope")]))
    with pytest.raises(ValueError, match="replays a topic and a payload"):
        resolve(_gv40(), ReplaySpec(steps=[ReplayStep(registers={"holding": {0: [1]}})]))
    with pytest.raises(ValueError, match="no MQTT examples to replay"):
        resolve(load_catalog().get("acme-dc100").model_copy(update={"examples": []}), ReplaySpec())


def test_a_layout_replays_a_device_type_without_a_simulator_and_names_the_line_that_does_not_fit(
        tmp_path: Path) -> None:
    layout = tmp_path / "mine.yaml"
    layout.write_text(
        "site: {id: mine}\ngateways: [{id: gw1}]\n"
        "buildings: [{id: B3, floors: 20}]\n"
        "devices:\n"
        "  - {id: gas-1801, profile: tianlan-gv40, building: B3, floor: 18, unit: '1801', gateway: gw1}\n"
        "  - {id: gas-1802, profile: tianlan-gv40, building: B9, floor: 18, gateway: gw1,\n"
        "     replay: {period_s: 1, steps: [{example: 'normal report (keys in any order, every value a string)'}]}}\n"
        "  - {id: door, profile: acme-dc100, building: B3, floor: 1, gateway: gw1}\n",
        encoding="utf-8",
    )
    lay = load_layout(layout, load_catalog())
    first, second, door = lay.devices
    assert (first.building, first.floor, first.unit, first.gateway) == ("B3", 18, "1801", "gw1")
    assert first.replay == ReplaySpec()  # no firmware for a gas detector: its examples
    assert second.building == "B9" and second.replay is not None and second.replay.period_s == 1
    assert door.replay is None  # the door controller runs its reference firmware
    layout.write_text(layout.read_text(encoding="utf-8").replace("example: 'normal", "example: 'abnormal"),
                      encoding="utf-8")
    with pytest.raises(LayoutError) as err:
        load_layout(layout, load_catalog())
    (issue,) = err.value.issues
    assert issue.line == 7 and issue.field == "devices[1].replay" and "no example 'abnormal" in issue.message


@pytest.mark.integration
def test_an_mqtt_device_replays_its_samples_online_with_fresh_time_stamps(mqtt_broker: Any, site_id: str) -> None:
    dev_id = f"{site_id}-gas"
    got: list[tuple[str, bytes, bool]] = []
    seen = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{site_id}")

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, msg.payload, bool(msg.retain)))
        if sum(t.endswith("/up") for t, _, _ in got) >= 4:
            seen.set()

    sub.on_message = on_message
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.subscribe(f"tl/{dev_id}/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    device = ReplayMqttDevice(dev_id, _gv40(), ReplaySpec(period_s=0.2), mqtt_broker.host, mqtt_broker.port)
    started = time.time()
    try:
        device.start()
        assert seen.wait(10), got
        ups = [json.loads(p) for t, p, _ in got if t == f"tl/{dev_id}/up"]
        assert (ups[0]["seq"], ups[1]["seq"], "seq" in ups[2]) == (101, 102, False)  # the examples, in order
        assert all(abs(u["ts"] / 1000 - started) < 30 for u in ups), "the datasheet's time stamp was sent as is"
        assert ups[3]["seq"] == 101, "after the last sample it starts again"
        assert (f"tl/{dev_id}/will", b"online") in [(t, p) for t, p, _ in got]
        assert any(t == f"tl/{dev_id}/hb" for t, _, _ in got)
        got.clear()
        device.power_off()
        end = time.monotonic() + 30
        while (f"tl/{dev_id}/will", b"offline") not in [(t, p) for t, p, _ in got] and time.monotonic() < end:
            time.sleep(0.2)
        assert (f"tl/{dev_id}/will", b"offline") in [(t, p) for t, p, _ in got], "no last will"
    finally:
        device.stop()
        sub.publish(f"tl/{dev_id}/will", b"", retain=True)  # leave no retained status behind
        sub.loop_stop()
        sub.disconnect()


@pytest.mark.integration
async def test_a_modbus_device_holds_its_register_blocks_in_turn(tmp_path: Path) -> None:
    (tmp_path / "mb.yaml").write_text(MODBUS_PROFILE, encoding="utf-8")
    load_profile(tmp_path / "mb.yaml")
    catalog = load_catalog([tmp_path])
    layout = tmp_path / "layout.yaml"
    layout.write_text(
        "site: {id: mb}\ngateways: [{id: gw}]\n"
        "devices:\n  - {id: meter, profile: t-replay-mb, building: B1, gateway: gw, modbus: {unit: 3},\n"
        "     replay: {steps: [{example: cool, hold_s: 0.6}, {example: hot, hold_s: 0.6}]}}\n",
        encoding="utf-8",
    )
    lay = load_layout(layout, catalog)
    async with SimulatedCompound(lay, catalog=catalog, modbus_port_base=0, cameras=False) as sim:
        host, port, unit = sim.modbus_endpoint("meter")
        client = AsyncModbusTcpClient(host, port=port)
        await client.connect()
        try:
            temps: set[int] = set()
            end = time.monotonic() + 10
            while len(temps) < 2 and time.monotonic() < end:
                rr = await client.read_input_registers(10, count=1, device_id=unit)
                temps.add(rr.registers[0])
                await asyncio.sleep(0.1)
            assert temps == {215, 612}, "the server did not hold both samples in turn"
            assert sim.device("meter").get("temp") in (21.5, 61.2)
        finally:
            client.close()


def test_the_modbus_guide_examples_and_layout_load(tmp_path: Path) -> None:
    """docs/profile-modbus.md §8: its examples block, appended to the guide's profile, validates; its layout loads."""
    repo = Path(__file__).resolve().parents[2]
    guide = (repo / "docs" / "profile-modbus.md").read_text(encoding="utf-8")
    section = guide[guide.index("## 8. Run the demo with your own profile"):]
    blocks = [b.split("\n", 1)[1] for b in section.split("```yaml")[1:3]]
    examples, layout_text = (b[: b.index("```")] for b in blocks)
    profile = (repo / "docs" / "examples" / "profiles" / "acme-hp30.yaml").read_text(encoding="utf-8")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "acme-hp30.yaml").write_text(profile + examples, encoding="utf-8")
    catalog = load_catalog([tmp_path / "profiles"])
    names = [e.name for e in catalog.get("acme-hp30").examples]
    assert names == ["charged riser", "riser drained, the transmitter's own low-pressure bit set"]
    (tmp_path / "layout.yaml").write_text(layout_text, encoding="utf-8")
    (riser,) = load_layout(tmp_path / "layout.yaml", catalog).devices
    assert riser.replay is not None and [s.hold_s for s in resolve(catalog.get("acme-hp30"), riser.replay)] == [30, 60]
