"""The whole agent against the real Mosquitto and simulated devices (pymodbus servers, MQTT doors)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import free_port
from edge_agent_helpers import ModbusTestServer, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from contract.codec import decode_as, encode
from contract.messages import Command, CommandAck, Event, GatewayState, HealthReport, TelemetryBatch
from contract.topics import TopicKind, topic
from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig

pytestmark = pytest.mark.integration

GW = "gw1"


class Observer:
    """A stand-in for the backend: records what arrives on xq/v1/<site>/<gw>/#, can publish commands."""

    def __init__(self, url_host: str, port: int, site: str) -> None:
        self.site = site
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.connect(url_host, port)
        self.client.subscribe(f"xq/v1/{site}/{GW}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def of(self, kind: TopicKind, model: type) -> list[Any]:
        t = topic(self.site, GW, kind)
        with self.lock:
            return [decode_as(model, p) for tt, p in self.messages if tt == t]

    def events(self, event: str) -> list[Event]:
        return [e for e in self.of(TopicKind.EVENT, Event) if e.event == event]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class FakeDoors:
    """MQTT door controllers: answer every command on {prefix}/cmd with ok on {prefix}/cmd/result."""

    host: str
    port: int
    ids: list[str]
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def start(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"doors-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port)
        for d in self.ids:
            self.client.subscribe(f"xqdev/{d}/cmd", qos=1)
            self.client.publish(f"xqdev/{d}/status", "online", qos=1, retain=False)
            self.client.publish(f"xqdev/{d}/state", json.dumps(
                {"door_open": False, "locked": True, "mode": "normal", "tamper": False}), qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[1]
        body = json.loads(msg.payload)
        self.received.append((device, body))
        self.client.publish(f"xqdev/{device}/cmd/result", json.dumps({"id": body["id"], "ok": True}), qos=1)
        if body.get("cmd") == "release_all":
            self.client.publish(f"xqdev/{device}/state", json.dumps(
                {"door_open": False, "locked": False, "mode": "released", "tamper": False}), qos=1)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class Rig:
    agent: GatewayAgent
    observer: Observer
    doors: FakeDoors
    panel: ModbusTestServer
    lifts: ModbusTestServer
    site: str
    door_ids: list[str]


@pytest.fixture
async def rig(tmp_path: Path, mqtt_broker: Any, site_id: str) -> AsyncIterator[Rig]:
    panel = await ModbusTestServer(free_port(), {1: {"ir": [0b1]}}).start()
    lifts = await ModbusTestServer(free_port(), {1: {"ir": [5]}, 2: {"ir": [9]}}).start()
    door_ids = [f"{site_id}-door1", f"{site_id}-door2"]
    loc = {"site": site_id, "building": "B1"}
    config = GatewayConfig.model_validate({
        "gateway_id": GW, "site": site_id,
        "uplink": {"url": mqtt_broker.url},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "metrics_port": 0, "health_interval_s": 1,
        "devices": [
            {"id": "panel", "profile": "gst-fp200", "location": loc,
             "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": panel.port, "unit": 1},
             "poll_interval_s": 0.2},
            *[{"id": f"lift{u}", "profile": "acme-em200", "location": loc, "poll_interval_s": 0.2,
               "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": lifts.port, "unit": u}}
              for u in (1, 2)],
            *[{"id": d, "profile": "acme-dc100", "location": loc, "connection": {"kind": "mqtt"}} for d in door_ids],
            {"id": "lift-other", "profile": "acme-em200", "location": {"site": site_id, "building": "B2"},
             "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": lifts.port, "unit": 7}},
        ],
        "linkage": {"base_floor": 1, "rules": [
            {"name": "doors", "triggers": ["fire.alarm", "smoke.alarm"], "target_type": "door_access",
             "command": "release_all", "restore_command": "restore", "require_signals": 2, "window_s": 60},
            {"name": "lifts", "triggers": ["fire.alarm", "smoke.alarm"], "target_type": "elevator",
             "command": "fire_recall", "base_floor_arg": "floor", "require_signals": 2, "window_s": 60},
        ]},
    })
    observer = Observer(mqtt_broker.host, mqtt_broker.port, site_id)
    doors = FakeDoors(mqtt_broker.host, mqtt_broker.port, door_ids)
    doors.start()
    agent = GatewayAgent(config, load_catalog(), with_video=False)
    task = asyncio.create_task(agent.run())
    try:
        await wait_for(lambda: agent.uplink.connected and all(b.connected for b in agent.bridges), what="connected")
        yield Rig(agent, observer, doors, panel, lifts, site_id, door_ids)
    finally:
        agent.stop()
        await asyncio.wait_for(task, 20)
        observer.close()
        doors.stop()
        await panel.stop()
        await lifts.stop()


async def test_fire_alarm_goes_up_and_local_linkage_releases_doors_and_recalls_lifts(rig: Rig) -> None:
    obs = rig.observer
    await wait_for(lambda: obs.of(TopicKind.STATE, GatewayState), what="birth")
    birth = obs.of(TopicKind.STATE, GatewayState)[0]
    assert birth.state == "online" and {d.device for d in birth.devices} >= {"panel", "lift1", *rig.door_ids}
    await wait_for(lambda: rig.agent.rules["panel"].online, what="panel polled")
    # one zone in fire: the alarm goes up at once, life-safety; linkage waits for a second signal
    await rig.panel.set(1, "ir", 100, [0b10])
    await wait_for(lambda: obs.events("fire.alarm"), what="fire alarm on the broker")
    alarm = obs.events("fire.alarm")[0]
    assert alarm.life_safety and alarm.active and alarm.device == "panel" and alarm.detail["zone"] == 1
    await asyncio.sleep(0.5)
    assert rig.doors.received == []
    assert await rig.lifts.get(1, "hr", 100) == [0]
    # a second zone: two independent signals → doors released, lifts recalled to the base floor
    await rig.panel.set(1, "ir", 104, [0b10])
    await wait_for(lambda: len(rig.doors.received) == 2, what="doors released")
    assert {(d, b["cmd"]) for d, b in rig.doors.received} == {(d, "release_all") for d in rig.door_ids}
    await wait_for(lambda: len(obs.events("linkage.action")) == 4, what="4 linkage actions reported")
    assert await rig.lifts.get(1, "hr", 100, 3) == [1, 0, 1]
    assert await rig.lifts.get(2, "hr", 100, 3) == [1, 0, 1]
    actions = obs.events("linkage.action")
    assert {(a.device, a.detail["outcome"]) for a in actions} == {
        (d, "succeeded") for d in ["lift1", "lift2", *rig.door_ids]}
    assert "lift-other" not in {a.device for a in actions}  # another building
    # the released state comes back as telemetry
    await wait_for(lambda: any(p.device == rig.door_ids[0] and p.point == "lock.mode" and p.value == "released"
                               for b in obs.of(TopicKind.TELEMETRY, TelemetryBatch) for p in b.points),
                   what="door telemetry")
    await wait_for(lambda: obs.of(TopicKind.HEALTH, HealthReport), what="health report")
    health = obs.of(TopicKind.HEALTH, HealthReport)[-1].health
    assert health.uplink_connected and health.devices_online >= 3
    assert rig.agent.metrics_port is not None
    text = urllib.request.urlopen(f"http://127.0.0.1:{rig.agent.metrics_port}/metrics", timeout=5).read().decode()
    assert "xq_outbox_depth" in text and "xq_poll_latency_seconds_count" in text and "xq_events_total" in text


async def test_commands_round_trip_with_outcomes(rig: Rig, mqtt_broker: Any) -> None:
    obs = rig.observer
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"backend-{uuid.uuid4().hex[:8]}")
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()
    cmd_topic = topic(rig.site, GW, TopicKind.CMD)

    def send(device: str, command: str, **kw: Any) -> Command:
        cmd = Command(gw=GW, seq=1, ts=rig.agent.clock.now(), device=device, command=command, **kw)
        pub.publish(cmd_topic, encode(cmd), qos=1).wait_for_publish(5)
        return cmd

    def ack(cmd: Command) -> list[CommandAck]:
        return [a for a in obs.of(TopicKind.CMD_ACK, CommandAck) if a.command_id == cmd.id]

    try:
        recall = send("lift2", "hold_doors", args={"duration_s": 30})
        unlock = send(rig.door_ids[0], "unlock", args={"duration_s": 3})
        bad = send("lift1", "hold_doors", args={"duration_s": 6000})
        await wait_for(lambda: ack(recall) and ack(unlock) and ack(bad), what="three acks")
        assert ack(recall)[0].status == "succeeded"
        assert await rig.lifts.get(2, "hr", 100, 2) == [2, 30]
        assert ack(unlock)[0].status == "succeeded"
        assert (rig.door_ids[0], {"id": str(unlock.id), "cmd": "unlock", "duration_s": 3}) in rig.doors.received
        assert ack(bad)[0].status == "rejected" and "maximum" in (ack(bad)[0].reason or "")
        # a duplicate delivery: the stored ack again, no second execution
        pub.publish(cmd_topic, encode(unlock), qos=1).wait_for_publish(5)
        await wait_for(lambda: len(ack(unlock)) == 2, what="duplicate ack")
        assert sum(1 for _, b in rig.doors.received if b["id"] == str(unlock.id)) == 1
        url = f"http://127.0.0.1:{rig.agent.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        assert 'xq_commands_total{status="rejected"} 1.0' in text
    finally:
        pub.loop_stop()
        pub.disconnect()


@pytest.mark.parametrize("reset_while_down", [True, False], ids=["zone-reset-while-down", "still-in-alarm"])
async def test_alarm_raised_before_a_restart_is_cleared_once_after_it(
        tmp_path: Path, mqtt_broker: Any, site_id: str, reset_while_down: bool) -> None:
    """Fire zone in alarm → raised → gateway stopped → (zone reset on the panel) → a new gateway on the same
    state clears it exactly once, or, still in alarm, does not raise it a second time."""
    panel = await ModbusTestServer(free_port(), {1: {"ir": [0b1]}}).start()
    config = GatewayConfig.model_validate({
        "gateway_id": GW, "site": site_id, "uplink": {"url": mqtt_broker.url},
        "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite3")},
        "devices": [{"id": "panel", "profile": "gst-fp200", "location": {"site": site_id, "building": "B1"},
                     "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": panel.port, "unit": 1},
                     "poll_interval_s": 0.2}],
    })
    obs = Observer(mqtt_broker.host, mqtt_broker.port, site_id)

    def alarms() -> list[tuple[bool, str]]:  # distinct messages (an unreceipted event may be sent again)
        seen: dict[uuid.UUID, tuple[bool, str]] = {}
        for e in obs.events("fire.alarm"):
            seen.setdefault(e.id, (e.active, e.key))
        return list(seen.values())

    async def run_agent() -> tuple[GatewayAgent, asyncio.Task[None]]:
        agent = GatewayAgent(config, load_catalog(), with_video=False)
        return agent, asyncio.create_task(agent.run())

    try:
        agent, task = await run_agent()
        await panel.set(1, "ir", 102, [0b10])  # zone 3 in fire
        await wait_for(lambda: alarms() == [(True, "fire.alarm#3")], what="the raise on the broker")
        agent.stop()
        await asyncio.wait_for(task, 20)

        if reset_while_down:
            await panel.set(1, "ir", 102, [0])
        agent, task = await run_agent()
        try:
            await wait_for(lambda: agent.rules["panel"].values.get("zone3.fire") is (not reset_while_down),
                           what="the new gateway polled the panel")
            if not reset_while_down:  # still burning: the new gateway raises nothing; the later reset clears
                await panel.set(1, "ir", 102, [0])
            await wait_for(lambda: len(alarms()) >= 2, what="the clear on the broker")
            await asyncio.sleep(0.5)  # polls go on: anything else would show up in the list
            assert alarms() == [(True, "fire.alarm#3"), (False, "fire.alarm#3")]
            assert agent.active_events.active() == []
        finally:
            agent.stop()
            await asyncio.wait_for(task, 20)
    finally:
        obs.close()
        await panel.stop()
