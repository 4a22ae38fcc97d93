"""A paho MQTT 5 test client that reports CONNACK refusals, TLS errors and PUBACK reasons (for ACL tests)."""

from __future__ import annotations

import queue
import ssl
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WAIT = 10.0


class Client:
    """A paho MQTT 5 client that records the CONNACK, every message and every PUBACK reason."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None, *,
                 ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                 client_id: str | None = None) -> None:
        self.connack: queue.Queue[str] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subacks: queue.Queue[list[str]] = queue.Queue()
        self.pubacks: dict[int, str] = {}
        self._pub_done = threading.Condition()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
                             protocol=mqtt.MQTTv5)
        if username is not None:
            self.c.username_pw_set(username, password)
        if ca is not None:
            self.c.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None, keyfile=str(key) if key else None,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(str(rc))
        self.c.on_disconnect = lambda _c, _u, _f, rc, _p: self.connack.put(f"disconnected: {rc}")
        self.c.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.c.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put([str(r) for r in rcs])
        self.c.on_publish = self._on_publish
        self.port = port

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: mqtt.ReasonCode, _p: object) -> None:
        with self._pub_done:
            self.pubacks[mid] = "Success" if not rc.is_failure else str(rc)  # 'No matching subscribers' is OK
            self._pub_done.notify_all()

    def connect(self) -> str:
        """'Success', a refusal reason, or the TLS / socket error."""
        try:
            self.c.connect("127.0.0.1", self.port, keepalive=30)
        except (ssl.SSLError, OSError) as exc:
            return f"tls: {exc}"
        self.c.loop_start()
        try:
            return self.connack.get(timeout=WAIT)
        except queue.Empty:
            return "no answer"

    def subscribe(self, *filters: str) -> list[str]:
        self.c.subscribe([(f, 1) for f in filters])
        return self.subacks.get(timeout=WAIT)

    def publish(self, target: str, payload: bytes = b"{}", retain: bool = False) -> str:
        """Publish at QoS 1 and return the PUBACK reason ('Success' or 'Not authorized')."""
        info = self.c.publish(target, payload, qos=1, retain=retain)
        with self._pub_done:
            assert self._pub_done.wait_for(lambda: info.mid in self.pubacks, WAIT), f"no PUBACK for {target}"
            return self.pubacks[info.mid]

    def received_until(self, sentinel: str) -> list[str]:
        """Topics received up to and including ``sentinel`` (fails if it never comes)."""
        out: list[str] = []
        while True:
            msg = self.messages.get(timeout=WAIT)
            out.append(msg.topic)
            if msg.topic == sentinel:
                return out

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
