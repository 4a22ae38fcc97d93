"""The door controller firmware itself, run through the shim against the real Mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.mqtt_devices import FirmwareDevice, FirmwareHost

pytestmark = pytest.mark.integration

CARD = "10000001"


@pytest.fixture
def door(mqtt_broker: Any, site_id: str) -> Iterator[FirmwareDevice]:
    host = FirmwareHost(step_s=0.02)
    dev = FirmwareDevice(f"{site_id}-door", "door_access",
                         {"server": mqtt_broker.host, "port": mqtt_broker.port, "cards": [CARD], "salt": "s1",
                          "heartbeat_s": 1})
    host.add(dev)
    host.start()
    assert host.wait_connected(10) == []
    yield dev
    host.stop()


def command(url_host: str, port: int, topic: str, payload: dict[str, Any] | bytes) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"xq-test-cmd-{uuid.uuid4().hex[:8]}")
    c.connect(url_host, port)
    c.loop_start()
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    c.publish(topic, data, qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def test_release_all_unlocks_and_answers_ok(door: FirmwareDevice, mqtt_broker: Any,
                                            mqtt_recorder: Callable[..., Any]) -> None:
    prefix = f"xqdev/{door.id}"
    rec = mqtt_recorder([f"{prefix}/#"])
    rec.wait_for(lambda m: m.topic == f"{prefix}/status" and m.payload == b"online")
    rec.wait_for(lambda m: m.topic == f"{prefix}/state" and m.has(locked=True, mode="normal"))
    command(mqtt_broker.host, mqtt_broker.port, f"{prefix}/cmd", {"id": "c1", "cmd": "release_all"})
    res = rec.wait_for(lambda m: m.topic == f"{prefix}/cmd/result" and m.has(id="c1"))
    assert res.json() == {"id": "c1", "ok": True, "reason": None}
    rec.wait_for(lambda m: m.topic == f"{prefix}/state" and m.has(locked=False, mode="released"))
    assert door.unlocked
    # released doors refuse a plain lock; restore locks them again
    command(mqtt_broker.host, mqtt_broker.port, f"{prefix}/cmd", {"id": "c2", "cmd": "lock"})
    res = rec.wait_for(lambda m: m.topic == f"{prefix}/cmd/result" and m.has(id="c2"))
    assert res.json()["ok"] is False and "restore" in res.json()["reason"]
    command(mqtt_broker.host, mqtt_broker.port, f"{prefix}/cmd", {"id": "c3", "cmd": "restore"})
    rec.wait_for(lambda m: m.topic == f"{prefix}/cmd/result" and m.has(id="c3", ok=True))
    rec.wait_for(lambda m: m.topic == f"{prefix}/state" and m.has(locked=True, mode="normal")
                 and m.t > res.t)


def test_unknown_and_malformed_commands_answer_not_ok(door: FirmwareDevice, mqtt_broker: Any,
                                                      mqtt_recorder: Callable[..., Any]) -> None:
    prefix = f"xqdev/{door.id}"
    rec = mqtt_recorder([f"{prefix}/cmd/result"])
    command(mqtt_broker.host, mqtt_broker.port, f"{prefix}/cmd", {"id": "u1", "cmd": "self_destruct"})
    res = rec.wait_for(lambda m: m.has(id="u1"))
    assert res.json()["ok"] is False and "unknown command" in res.json()["reason"]
    command(mqtt_broker.host, mqtt_broker.port, f"{prefix}/cmd", {"id": "u2", "cmd": "unlock", "duration_s": 0})
    assert rec.wait_for(lambda m: m.has(id="u2")).json()["ok"] is False
    command(mqtt_broker.host, mqtt_broker.port, f"{prefix}/cmd", b"{not json")
    assert rec.wait_for(lambda m: m.has(id=None)).json()["reason"] == "malformed JSON"
    # still alive: a valid unlock works and relocks after its duration
    command(mqtt_broker.host, mqtt_broker.port, f"{prefix}/cmd", {"id": "u3", "cmd": "unlock", "duration_s": 1})
    assert rec.wait_for(lambda m: m.has(id="u3")).json()["ok"] is True
    deadline = time.monotonic() + 5
    while door.unlocked and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not door.unlocked


def test_access_events_carry_a_salted_hash_never_the_card(door: FirmwareDevice, mqtt_recorder: Callable[..., Any]
                                                          ) -> None:
    prefix = f"xqdev/{door.id}"
    rec = mqtt_recorder([f"{prefix}/event", f"{prefix}/heartbeat"])
    door.present_card(CARD)
    granted = rec.wait_for(lambda m: m.has(type="access_granted"))
    door.present_card("55555555")
    denied = rec.wait_for(lambda m: m.has(type="access_denied"))
    for m in (granted, denied):
        assert CARD.encode() not in m.payload and b"55555555" not in m.payload
        assert len(m.json()["credential_hash"]) == 32
    assert granted.json()["credential_hash"] != denied.json()["credential_hash"]
    # the door opened while unlocked is not forced; once relocked, opening it is
    door.set_door_open(True)
    time.sleep(0.2)
    door.set_door_open(False)
    deadline = time.monotonic() + 8
    while door.unlocked and time.monotonic() < deadline:
        time.sleep(0.05)
    door.set_door_open(True)
    rec.wait_for(lambda m: m.has(type="forced_open"))
    assert [m.json()["type"] for m in rec.all(f"{prefix}/event")] == ["access_granted", "access_denied", "forced_open"]
    assert rec.wait_for(lambda m: m.topic.endswith("heartbeat")).json()["uptime_s"] >= 0


def test_last_will_fires_when_the_device_process_dies(mqtt_broker: Any, site_id: str,
                                                      mqtt_recorder: Callable[..., Any]) -> None:
    dev_id = f"{site_id}-door9"
    rec = mqtt_recorder([f"xqdev/{dev_id}/status"])
    proc = subprocess.Popen([sys.executable, "-m", "firmware_stubs.shim.run", "door_controller", "--device-id", dev_id,
                             "--server", mqtt_broker.host, "--port", str(mqtt_broker.port), "--keepalive", "5"])
    try:
        rec.wait_for(lambda m: m.payload == b"online", timeout=15)
        proc.kill()  # power cut: no DISCONNECT, the broker must publish the will
        proc.wait(5)
        offline = rec.wait_for(lambda m: m.payload == b"offline", timeout=15)
        assert offline.topic == f"xqdev/{dev_id}/status"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    command(mqtt_broker.host, mqtt_broker.port, f"xqdev/{dev_id}/status", b"")  # clear the retained will
