"""An MQTT recorder on the real broker for tests: keeps every message with its arrival time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Msg:
    t: float
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)

    def has(self, **expected: Any) -> bool:
        """A JSON object payload with these key/values."""
        try:
            data = self.json()
        except ValueError:
            return False
        return isinstance(data, dict) and all(data.get(k) == v for k, v in expected.items())


class Recorder:
    """Subscribes to topics and keeps every message with its arrival time (monotonic)."""

    def __init__(self, url: str, topics: list[str]) -> None:
        u = urlparse(url)
        self.msgs: list[Msg] = []
        self._lock = threading.RLock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"xq-test-rec-{time.monotonic_ns()}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(u.hostname or "127.0.0.1", u.port or 1883)
        self.client.loop_start()
        self.client.subscribe([(t, 1) for t in topics])
        assert self._subscribed.wait(5), "subscription not acknowledged"

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.msgs.append(Msg(time.monotonic(), msg.topic, bytes(msg.payload), bool(msg.retain)))

    def all(self, topic: str | None = None) -> list[Msg]:
        with self._lock:
            return [m for m in self.msgs if topic is None or m.topic == topic]

    def wait_for(self, pred: Callable[[Msg], bool], timeout: float = 10.0) -> Msg:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for m in self.msgs:
                    if pred(m):
                        return m
            time.sleep(0.02)
        got = [(m.topic, m.payload[:80]) for m in self.all()]
        raise AssertionError(f"no matching message within {timeout}s; got {got}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
