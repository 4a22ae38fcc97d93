"""The whole mini compound on the real broker: scenario events appear on the wire (MQTT) and in the
registers (Modbus) in order and near their scheduled scenario times; faults act on the real links."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import AsyncModbusTcpClient

from device_profiles.loader import load_catalog
from simulators.broker import MosquittoProcess
from simulators.compound import SimulatedCompound
from simulators.layout import load_layout
from simulators.runner import run_simulation
from simulators.scenario import load_scenario

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2] / "simulators"
CATALOG = load_catalog()
SPEED = 10.0
TOLERANCE_S = 3.0  # scenario seconds: generous (2 cores shared with other runs)

SCENARIO = """\
name: mini drill
steps:
  - {at: 2, action: smoke, device: b1-f2-sd1, alarm: true}
  - {at: 6, action: smoke, device: b1-f2-sd2, alarm: true}
  - {at: 10, action: set, device: b1-fp, point: zone2.fire, value: true}
  - {at: 14, action: door, device: b1-door, event: access_denied}
  - {at: 18, action: door, device: b1-door, event: forced_open, open_s: 2}
  - {at: 22, action: silent, device: b1-el2}
  - {at: 24, action: malformed_mqtt, device: b1-door, topic: cmd, count: 2}
  - {at: 26, action: door, device: b1-door, event: access_granted}
  - {at: 26, action: camera, device: b1-el1-cam, scene: ebike}
  - {at: 28, action: broker, op: restart}
"""


def mini(site_id: str) -> Any:
    return load_layout(ROOT / "layouts" / "mini.yaml", CATALOG).with_id_prefix(f"{site_id}-")


async def test_scenario_on_the_wire_in_order_and_on_time(tmp_path: Path, site_id: str, mqtt_broker: Any,
                                                         mqtt_recorder: Callable[..., Any]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    p = f"{site_id}-"
    rec = mqtt_recorder([f"xqdev/{p}b1-f2-sd1/state", f"xqdev/{p}b1-f2-sd2/state", f"xqdev/{p}b1-door/event",
                         f"xqdev/{p}b1-door/cmd/result", f"xqdev/{p}b1-door/state"])
    sim = SimulatedCompound(mini(site_id), catalog=CATALOG, seed=3, mqtt=mqtt_broker.url, speed=SPEED, cameras=False)
    panel_fire_at: list[float] = []
    el2_silent_at: list[float] = []

    async def watch_modbus() -> None:
        while not sim._started:
            await asyncio.sleep(0.05)
        fp = sim.modbus_endpoint(f"{p}b1-fp")
        el2 = sim.modbus_endpoint(f"{p}b1-el2")
        fpc = AsyncModbusTcpClient(fp[0], port=fp[1], timeout=0.5, retries=0)
        elc = AsyncModbusTcpClient(el2[0], port=el2[1], timeout=0.3, retries=0)
        await fpc.connect()
        await elc.connect()
        try:
            while not (panel_fire_at and el2_silent_at):
                r = await fpc.read_input_registers(0, count=1, device_id=fp[2])
                if not panel_fire_at and r.registers[0] & 0b10:  # panel.fire
                    panel_fire_at.append(sim.clock.now())
                asked = sim.clock.now()
                try:
                    await elc.read_input_registers(0, count=1, device_id=el2[2])
                except Exception:  # noqa: BLE001 - a timeout is what we wait for
                    el2_silent_at.append(asked)  # the first request that got no answer
                    if not elc.connected:
                        await elc.connect()
                await asyncio.sleep(0.05)
        finally:
            fpc.close()
            elc.close()

    watcher = asyncio.create_task(watch_modbus())
    report = await run_simulation(sim, scenario, duration=31)
    await asyncio.wait_for(watcher, 5)

    def sim_time(wall_mono: float) -> float:
        # message arrival (monotonic) → scenario time, anchored on the report's first record
        first = report.injected[0]
        return first.sim_time + (wall_mono - anchor_mono) * SPEED

    anchor_mono = time.monotonic() - (time.time() - report.injected[0].wall_unix)
    sd1 = rec.wait_for(lambda m: m.topic.endswith("sd1/state") and m.has(alarm=True))
    sd2 = rec.wait_for(lambda m: m.topic.endswith("sd2/state") and m.has(alarm=True))
    denied = rec.wait_for(lambda m: m.topic.endswith("/event") and m.has(type="access_denied"))
    forced = rec.wait_for(lambda m: m.topic.endswith("/event") and m.has(type="forced_open"))
    junk = rec.wait_for(lambda m: m.topic.endswith("cmd/result") and m.has(ok=False))
    granted = rec.wait_for(lambda m: m.topic.endswith("/event") and m.has(type="access_granted"))
    assert sd1.t < sd2.t < denied.t < forced.t < junk.t < granted.t
    # the resident walked through the unlocked door: no second forced_open
    rec.wait_for(lambda m: m.topic.endswith("door/state") and m.has(door_open=True, locked=False) and m.t > granted.t)
    assert [m.json()["type"] for m in rec.all(f"xqdev/{p}b1-door/event")] == ["access_denied", "forced_open",
                                                                             "access_granted"]
    for msg, at in ((sd1, 2), (sd2, 6), (denied, 14), (forced, 18), (junk, 24), (granted, 26)):
        assert abs(sim_time(msg.t) - at) < TOLERANCE_S, (msg.topic, sim_time(msg.t), at)
    assert abs(panel_fire_at[0] - 10) < TOLERANCE_S and abs(el2_silent_at[0] - 22) < TOLERANCE_S
    # the report says what was injected, when, and what could not be done here
    actions = [(r.action, r.outcome) for r in report.injected]
    assert actions == [("smoke", "ok"), ("smoke", "ok"), ("set", "ok"), ("door", "ok"), ("door", "ok"),
                       ("silent", "ok"), ("malformed_mqtt", "ok"), ("door", "ok"), ("camera", "skipped"),
                       ("broker", "skipped")]
    assert all(abs(r.sim_time - r.at) < TOLERANCE_S for r in report.injected)
    assert report.devices.modbus == 3 and report.devices.modbus_ports == 2 and report.devices.mqtt == 7
    assert report.ports["modbus"][f"{p}b1-el2"]["unit"] == 2
    assert "t=    10.0s" in report.summary()


async def test_broker_restart_and_wan_cut(site_id: str, mqtt_recorder: Callable[..., Any]) -> None:
    uplink = MosquittoProcess()
    uplink.start()
    try:
        sim = SimulatedCompound(mini(site_id), catalog=CATALOG, cameras=False, uplink=uplink.url)
        async with sim:
            assert sim.broker is not None and sim.proxy is not None
            sd = f"xqdev/{site_id}-b1-f1-sd1/status"
            rec = mqtt_recorder([sd], url=sim.broker.url)
            rec.wait_for(lambda m: m.payload == b"online")
            fds_before = len(os.listdir("/proc/self/fd"))
            await sim.broker_stop()
            await asyncio.sleep(2.0)  # several refused reconnects per device
            await sim.broker_start()  # the firmware reconnects with backoff and says it is online again
            await asyncio.to_thread(rec.close)
            devices = list(sim.firmware.devices.values())
            deadline = time.monotonic() + 30
            while not all(d.fw.S["connects"] >= 2 for d in devices) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert all(d.fw.S["connects"] >= 2 and d.connected for d in devices)
            assert len(os.listdir("/proc/self/fd")) <= fds_before + 5  # failed attempts leak no sockets
            rec2 = mqtt_recorder([sd], url=sim.broker.url)
            await asyncio.to_thread(rec2.wait_for, lambda m: m.payload == b"online", 10)
            # WAN: a client through the proxy loses its connection on cut and cannot come back until restore
            host, port = "127.0.0.1", sim.proxy.port
            lost = asyncio.Event()
            loop = asyncio.get_running_loop()
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{site_id}-gw")
            def on_disconnect(*_a: Any) -> None:
                loop.call_soon_threadsafe(lost.set)

            c.on_disconnect = on_disconnect
            c.connect(host, port, keepalive=5)
            c.loop_start()
            try:
                await asyncio.sleep(0.3)
                assert c.is_connected()
                sim.wan_cut()
                await asyncio.wait_for(lost.wait(), 10)
                probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{site_id}-probe")
                try:  # the proxy accepts then closes at once: no CONNACK ever arrives
                    probe.connect(host, port, keepalive=5)
                    for _ in range(10):
                        probe.loop(timeout=0.1)
                    assert not probe.is_connected()
                except OSError:
                    pass
                sim.wan_restore()
                c2 = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{site_id}-gw2")
                c2.connect(host, port, keepalive=5)
                assert c2.loop(timeout=2) == 0
                c2.disconnect()
            finally:
                c.loop_stop()
    finally:
        uplink.cleanup()


async def test_api_silence_restore_and_endpoints(site_id: str, mqtt_broker: Any, mqtt_recorder: Callable[..., Any]
                                                 ) -> None:
    async with SimulatedCompound(mini(site_id), catalog=CATALOG, mqtt=mqtt_broker.url, cameras=False) as sim:
        sd = f"{site_id}-b1-f3-sd2"
        rec = mqtt_recorder([f"xqdev/{sd}/status"])
        rec.wait_for(lambda m: m.payload == b"online")
        sim.silence(sd)  # power cut → the broker publishes the last will
        offline = rec.wait_for(lambda m: m.payload == b"offline", timeout=15)
        sim.restore(sd)  # boots again: online
        rec.wait_for(lambda m: m.payload == b"online" and m.t > offline.t, timeout=15)
        host, port, unit = sim.modbus_endpoint(f"{site_id}-b1-el1")
        assert (host, unit) == ("127.0.0.1", 1) and port == sim.modbus_endpoint(f"{site_id}-b1-el2")[1]
        door = sim.mqtt_device(f"{site_id}-b1-door")
        assert door.state["locked"] is True
        with pytest.raises(KeyError, match="MQTT device"):
            sim.device(f"{site_id}-b1-door")


async def test_a_failed_start_leaves_nothing_behind(site_id: str) -> None:
    import socket

    blocker = socket.socket()
    for _ in range(20):  # find two free consecutive ports: base for the panel, base + 1 taken by us
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        try:
            blocker.bind(("127.0.0.1", base + 1))
            break
        except OSError:
            continue
    blocker.listen()
    try:
        sim = SimulatedCompound(mini(site_id), catalog=CATALOG, cameras=False, mqtt_devices=False,
                                modbus_port_base=base)
        with pytest.raises((OSError, RuntimeError)):
            await sim.start()
        with socket.socket() as s:  # the first port was released again
            s.bind(("127.0.0.1", base))
    finally:
        blocker.close()
