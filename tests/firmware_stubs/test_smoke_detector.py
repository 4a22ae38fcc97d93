"""The smoke detector firmware itself, run through the shim against the real Mosquitto."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.mqtt_devices import FirmwareDevice, FirmwareHost

pytestmark = pytest.mark.integration


@pytest.fixture
def detector(mqtt_broker: Any, site_id: str) -> Iterator[FirmwareDevice]:
    host = FirmwareHost(step_s=0.02)
    dev = FirmwareDevice(f"{site_id}-sd", "smoke_detector",
                         {"server": mqtt_broker.host, "port": mqtt_broker.port, "battery": 80, "heartbeat_s": 1})
    host.add(dev)
    host.start()
    assert host.wait_connected(10) == []
    yield dev
    host.stop()


def send(broker: Any, topic: str, payload: dict[str, Any]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"xq-test-cmd-{uuid.uuid4().hex[:8]}")
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def test_alarm_silence_and_clear(detector: FirmwareDevice, mqtt_broker: Any, mqtt_recorder: Callable[..., Any]
                                 ) -> None:
    prefix = f"xqdev/{detector.id}"
    rec = mqtt_recorder([f"{prefix}/#"])
    rec.wait_for(lambda m: m.topic == f"{prefix}/state" and m.has(alarm=False))
    hb = rec.wait_for(lambda m: m.topic == f"{prefix}/heartbeat")
    assert hb.json()["battery"] in (79, 80) and hb.json()["rssi"] == -70
    detector.set_obscuration(6.0)
    alarm = rec.wait_for(lambda m: m.topic == f"{prefix}/state" and m.has(alarm=True))
    assert alarm.json()["obscuration"] == 6.0 and alarm.retain is False
    assert detector.sounding
    send(mqtt_broker, f"{prefix}/cmd", {"id": "s1", "cmd": "silence"})
    assert rec.wait_for(lambda m: m.topic.endswith("cmd/result") and m.has(id="s1")).json()["ok"] is True
    send(mqtt_broker, f"{prefix}/cmd", {"id": "s2", "cmd": "self_test"})
    res = rec.wait_for(lambda m: m.topic.endswith("cmd/result") and m.has(id="s2")).json()
    assert res["ok"] is False and "alarm" in res["reason"]  # no self-test during an alarm
    detector.set_obscuration(0.2)
    rec.wait_for(lambda m: m.topic == f"{prefix}/state" and m.has(alarm=False) and m.t > alarm.t)
    assert not detector.sounding


def test_self_test_and_unknown_command(detector: FirmwareDevice, mqtt_broker: Any,
                                       mqtt_recorder: Callable[..., Any]) -> None:
    prefix = f"xqdev/{detector.id}"
    rec = mqtt_recorder([f"{prefix}/state", f"{prefix}/cmd/result"])
    send(mqtt_broker, f"{prefix}/cmd", {"id": "t1", "cmd": "self_test"})
    assert rec.wait_for(lambda m: m.has(id="t1")).json()["ok"] is True
    on = rec.wait_for(lambda m: m.has(test=True))
    rec.wait_for(lambda m: m.has(test=False) and m.t > on.t, timeout=10)
    send(mqtt_broker, f"{prefix}/cmd", {"id": "t2", "cmd": "dance"})
    res = rec.wait_for(lambda m: m.has(id="t2")).json()
    assert res == {"id": "t2", "ok": False, "reason": "unknown command 'dance'"}
