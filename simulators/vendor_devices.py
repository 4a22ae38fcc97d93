"""A vendor MQTT device that speaks its own JSON, not ours: the Tianlan GV-40 gas detector with a shut-off
valve (profile ``device_profiles/gas_detector/tianlan-gv40.yaml``), as such devices are in the field:

- uplink ``tl/<id>/up``: ``{"ts": <ms>, "seq": <int>, "data": [{"k": "gas", "v": "3.5"}, …]}`` — a key/value
  list in a random order on every report, every value a string;
- heartbeat ``tl/<id>/hb``; ``tl/<id>/will`` is ``online`` (retained) at connect and ``offline`` as the MQTT
  last will, which the broker publishes when the device's connection drops (:meth:`power_off`);
- commands on ``tl/<id>/down``: ``{"seq": <int>, "cmd": "valve", "v": "on"|"off"}``, answered on
  ``tl/<id>/reply`` with the same integer ``seq`` and a result code ``ret`` (0 done, 1 refused — the valve
  is not opened while the gas alarm is on, 2 valve motor fault) and a text ``msg``.

Nothing here is shared with the gateway: the gateway knows this device only through its profile.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

logger = logging.getLogger(__name__)

ALARM_LOW_PCT = 10.0
ALARM_HIGH_PCT = 25.0


class TianlanGasDetector:
    """One simulated GV-40; reports every ``report_s`` seconds from its own thread (paho's network loop)."""

    def __init__(self, device_id: str, host: str, port: int, *, report_s: float = 1.0, heartbeat_s: float = 5.0,
                 reply_delay_s: float = 0.2, seed: int = 0) -> None:
        self.id = device_id
        self.prefix = f"tl/{device_id}"
        self.host, self.port = host, port
        self.report_s = report_s
        self.heartbeat_s = heartbeat_s
        self.reply_delay_s = reply_delay_s
        self.rng = random.Random(seed)
        self.gas_pct = 3.5
        self.valve_open = True
        self.valve_fault = False
        self.sensor_fault = False
        self.battery_pct = 88
        self.csq = 23
        self.gas_text: str | None = None  # e.g. "E1": the sensor's error text where the number belongs
        self.seq = 0
        self.commands: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tl-{self.id}-{uuid.uuid4().hex[:6]}")
        client.will_set(f"{self.prefix}/will", "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return client

    # --------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.client.connect(self.host, self.port, keepalive=5)
        self.client.loop_start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"tl-{self.id}", daemon=True)
        self._thread.start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        client.subscribe(f"{self.prefix}/down", qos=1)
        client.publish(f"{self.prefix}/will", "online", qos=1, retain=True)

    def _run(self) -> None:
        next_hb = 0.0
        while not self._stop.is_set():
            self.report()
            now = time.monotonic()
            if now >= next_hb:
                self.client.publish(f"{self.prefix}/hb", json.dumps({"seq": self._next_seq()}), qos=0)
                next_hb = now + self.heartbeat_s
            self._stop.wait(self.report_s)

    def power_off(self) -> None:
        """The power goes: the connection drops without a DISCONNECT, so the broker publishes the last will."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()

    # --------------------------------------------------------------------------------- what it sends
    def _next_seq(self) -> int:
        with self._lock:
            self.seq += 1
            return self.seq

    @property
    def alarm_level(self) -> int:
        return 2 if self.gas_pct >= ALARM_HIGH_PCT else 1 if self.gas_pct >= ALARM_LOW_PCT else 0

    def report(self) -> None:
        """One uplink report: the key/value list in a fresh random order, every value a string."""
        with self._lock:
            items = [
                {"k": "gas", "v": self.gas_text if self.gas_text is not None else f"{self.gas_pct:.1f}"},
                {"k": "alm", "v": str(self.alarm_level)},
                {"k": "valve", "v": "err" if self.valve_fault else ("on" if self.valve_open else "off")},
                {"k": "fault", "v": "1" if self.sensor_fault else "0"},
                {"k": "bat", "v": str(self.battery_pct)},
                {"k": "csq", "v": str(self.csq)},
            ]
            self.rng.shuffle(items)
        body = {"ts": int(time.time() * 1000), "seq": self._next_seq(), "data": items}
        self.client.publish(f"{self.prefix}/up", json.dumps(body), qos=1)

    def set_gas(self, pct: float) -> None:
        with self._lock:
            self.gas_pct = pct
        self.report()

    # --------------------------------------------------------------------------------- commands
    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
            seq = int(body["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s: unreadable command %r: %s", self.id, msg.payload[:100], exc)
            return
        self.commands.append(body)
        threading.Timer(self.reply_delay_s, self._execute, args=(seq, body)).start()

    def _execute(self, seq: int, body: dict[str, Any]) -> None:
        if body.get("cmd") != "valve" or body.get("v") not in ("on", "off"):
            reply = {"seq": seq, "ret": 3, "msg": f"unknown command {body.get('cmd')!r}"}
        elif self.valve_fault:
            reply = {"seq": seq, "ret": 2, "msg": "valve motor fault"}
        elif body["v"] == "on" and self.alarm_level > 0:
            reply = {"seq": seq, "ret": 1, "msg": "gas alarm active: the valve stays shut"}
        else:
            with self._lock:
                self.valve_open = body["v"] == "on"
            reply = {"seq": seq, "ret": 0, "msg": ""}
        self.replies.append(reply)
        self.client.publish(f"{self.prefix}/reply", json.dumps(reply), qos=1)
        self.report()
