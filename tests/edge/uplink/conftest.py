"""Fixtures for the outbox/uplink tests: a private Mosquitto we may kill, a recording subscriber, and a
receipter (the backend's side of the receipt protocol: it answers every event and command ack with a Receipt)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract.codec import encode
from contract.messages import Event, GatewayState, PointSample, Receipt, TelemetryBatch
from simulators.broker import MosquittoProcess

GW = "gw-t1"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A Mosquitto of the test's own that it may stop, kill, pause and restart."""
    # No queue limit: test subscribers must see every message even when the uplink outpaces them.
    broker = MosquittoProcess(persistence=False, extra=["max_queued_messages 0"], workdir=tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@dataclass
class Received:
    topic: str
    body: dict[str, Any]
    retain: bool


@dataclass
class Subscriber:
    """Records every message on ``filter`` (QoS 1); re-subscribes after a broker restart."""

    host: str
    port: int
    filter: str
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, clean_session=True)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        if not self.ready.wait(10):
            pytest.fail(f"subscriber on {self.host}:{self.port} never got its SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload) if message.payload else {}
        with self.lock:
            self.messages.append(Received(message.topic, body, bool(message.retain)))

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.messages)

    def ids(self) -> set[str]:
        return {m.body["id"] for m in self.snapshot() if "id" in m.body}

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Receipter:
    """Answers each event / command ack of ``site`` with a Receipt naming its id, as the backend does after
    its commit (the real backend's receipts are tested in tests/cloud/ingest). ``answering`` off = backend down."""

    host: str
    port: int
    site: str
    answering: bool = True
    seen: list[str] = field(default_factory=list)
    receipted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, clean_session=True)
        self.client.reconnect_delay_set(1, 1)
        topics = [(f"xq/v1/{self.site}/+/event", 1), (f"xq/v1/{self.site}/+/cmd/ack", 1)]
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        if not self.ready.wait(10):
            pytest.fail(f"receipter on {self.host}:{self.port} never got its SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload)
        with self.lock:
            self.seen.append(body["id"])
            if not self.answering:
                return
            self.receipted.append(body["id"])
        receipt = Receipt(gw=body["gw"], seq=len(self.receipted), ts=datetime.now(UTC), ids=[body["id"]])
        client.publish(f"xq/v1/{self.site}/{body['gw']}/receipt", encode(receipt), qos=1)

    def times_seen(self, msg_id: str) -> int:
        with self.lock:
            return self.seen.count(msg_id)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def receipter() -> Iterator[Callable[[str, int, str], Receipter]]:
    started: list[Receipter] = []

    def make(host: str, port: int, site: str) -> Receipter:
        r = Receipter(host, port, site)
        r.start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[[str, int, str], Subscriber]]:
    started: list[Subscriber] = []

    def make(host: str, port: int, filter: str) -> Subscriber:
        sub = Subscriber(host, port, filter)
        sub.start()
        started.append(sub)
        return sub

    yield make
    for sub in started:
        sub.stop()


def telemetry(seq: int, value: float = 1.0, gw: str = GW) -> TelemetryBatch:
    now = datetime.now(UTC)
    return TelemetryBatch(gw=gw, seq=seq, ts=now, points=[PointSample(device="em1", point="load", ts=now, value=value)])


def alarm(seq: int, gw: str = GW) -> Event:
    return Event(
        gw=gw,
        seq=seq,
        ts=datetime.now(UTC),
        device="fp1",
        event="fire.alarm", key="fire.alarm",
        severity="critical",
        active=True,
        life_safety=True,
    )


def event(seq: int, gw: str = GW) -> Event:
    return Event(gw=gw, seq=seq, ts=datetime.now(UTC), device="dc1", event="door.opened",
        key="door.opened", severity="info", active=True)


def online(seq: int, gw: str = GW) -> GatewayState:
    return GatewayState(gw=gw, seq=seq, ts=datetime.now(UTC), state="online", software="test")


def child_env() -> dict[str, str]:
    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def kit() -> Any:
    """The helpers above, for test modules (they cannot import this conftest by name)."""
    import types

    return types.SimpleNamespace(
        GW=GW,
        free_port=free_port,
        wait_for=wait_for,
        until=until,
        telemetry=telemetry,
        alarm=alarm,
        event=event,
        online=online,
        child_env=child_env,
    )


async def until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Like :func:`wait_for`, without blocking the event loop."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
