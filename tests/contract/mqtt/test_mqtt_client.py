"""The MQTT adapter against the real Mosquitto: connect, subscribe, publish-to-PUBACK, manual ack, errors."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from typing import Any

import pytest

from contract.mqtt import (
    ConnectResult,
    Message,
    MqttClient,
    MqttConnectError,
    MqttNotConnected,
    MqttPublishError,
    MqttSettings,
    Will,
)

pytestmark = pytest.mark.timeout(60)


def _settings(broker: Any, **fields: Any) -> MqttSettings:
    return MqttSettings(host=broker.host, port=broker.port, **fields)


def _topic() -> str:
    return f"xqtest/mqtt/{uuid.uuid4().hex[:10]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_settings_from_url() -> None:
    s = MqttSettings.from_url("mqtts://gw:s3cret@broker.example:8884", keepalive_s=60, client_id=None)
    assert (s.host, s.port, s.tls, s.username, s.password, s.keepalive_s) == (
        "broker.example", 8884, True, "gw", "s3cret", 60)
    assert s.uses_tls and s.client_id is None
    assert MqttSettings.from_url("mqtts://b").port == 8883
    assert MqttSettings.from_url("mqtt://b").port == 1883
    with pytest.raises(ValueError, match="must look like"):
        MqttSettings.from_url("http://b")
    with pytest.raises(ValueError, match="hots"):
        MqttSettings.model_validate({"host": "b", "hots": "x"})  # extra="forbid"
    with pytest.raises(ValueError, match="key_file needs cert_file"):
        MqttSettings(key_file="k.pem")


def test_tls_setup_error_is_a_connect_error(tmp_path: Any) -> None:
    with pytest.raises(MqttConnectError, match="TLS setup"):
        MqttClient(MqttSettings(ca_file=tmp_path / "missing.pem"))


async def test_publish_subscribe_roundtrip_completes_on_puback(mqtt_broker: Any) -> None:
    topic = _topic()
    got: list[Message] = []
    loop_thread: list[bool] = []

    def on_message(m: Message) -> None:
        loop_thread.append(threading.current_thread() is threading.main_thread())
        got.append(m)

    sub = MqttClient(_settings(mqtt_broker), reconnect=False, on_message=on_message)
    pub = MqttClient(_settings(mqtt_broker), reconnect=False, max_inflight=0)
    try:
        result = await sub.connect()
        assert not result.session_present and sub.connected
        subscribed = asyncio.Event()
        sub._on_subscribed_hook = lambda failed: subscribed.set()
        sub.subscribe(topic)
        await asyncio.wait_for(subscribed.wait(), 5)
        await pub.connect()
        done_in: list[str] = []
        deliveries = [
            pub.publish(topic, f"m{i}".encode(), on_done=lambda d: done_in.append(threading.current_thread().name))
            for i in range(50)
        ]
        for d in deliveries:
            await d
            assert d.ok and d.accepted and d.error is None
        assert len(done_in) == 50 and all(name != threading.main_thread().name for name in done_in)
        assert pub.inflight() == 0
        await _until(lambda: len(got) == 50)
        assert [m.payload for m in got] == [f"m{i}".encode() for i in range(50)]
        assert all(m.topic == topic and m.qos == 1 and not m.retain for m in got)
        assert all(loop_thread), "on_message runs in the event loop"
    finally:
        await pub.close()
        await sub.close()


async def test_connect_refused_port_is_a_connect_error() -> None:
    client = MqttClient(MqttSettings(port=_free_port()), reconnect=False)
    with pytest.raises(MqttConnectError, match="unreachable"):
        await client.connect(timeout=2)
    await client.close()


async def test_reconnecting_client_times_out_but_keeps_trying() -> None:
    client = MqttClient(MqttSettings(port=_free_port()), reconnect=True)
    with pytest.raises(MqttConnectError, match="no CONNACK"):
        await client.connect(timeout=0.5)
    assert not await client.wait_connected(0.1)
    with pytest.raises(MqttNotConnected):
        await client.publish_wait("xqtest/x", b"1")
    await client.close()


async def test_close_fails_unacknowledged_deliveries() -> None:
    client = MqttClient(MqttSettings(port=_free_port()), reconnect=True)
    client.start()
    delivery = client.publish("xqtest/never", b"x")
    assert not delivery.accepted and not delivery.done()  # queued in paho for the connection that never comes
    seen: list[bool] = []
    delivery.add_done_callback(lambda d: seen.append(d.ok))
    await client.close()
    assert delivery.done() and not delivery.ok and seen == [False]
    with pytest.raises(MqttPublishError, match="closed"):
        await delivery


async def test_wait_times_out_as_publish_error() -> None:
    client = MqttClient(MqttSettings(port=_free_port()), reconnect=True)
    client.start()
    try:
        with pytest.raises(MqttPublishError, match="no PUBACK"):
            await client.publish("xqtest/never", b"x").wait(0.2)
    finally:
        await client.close()


async def test_invalid_topic_is_a_publish_error(mqtt_broker: Any) -> None:
    client = MqttClient(_settings(mqtt_broker), reconnect=False)
    await client.connect()
    try:
        with pytest.raises(MqttPublishError):
            client.publish("xqtest/+/bad", b"x")
    finally:
        await client.close()


async def test_resubscribes_after_reconnect(mqtt_broker: Any) -> None:
    topic = _topic()
    got: list[bytes] = []
    cid = f"xqtest-re-{uuid.uuid4().hex[:8]}"
    sub = MqttClient(_settings(mqtt_broker, client_id=cid), reconnect=True, reconnect_min_s=1, reconnect_max_s=1,
                     on_message=lambda m: got.append(m.payload))
    pub = MqttClient(_settings(mqtt_broker), reconnect=False)
    sub.subscribe(topic)
    await sub.connect()
    await pub.connect()
    try:
        await _until(lambda: _roundtrip(pub, topic, b"before", got))
        # A second client with the same id takes the session over: the broker drops the first one.
        thief = MqttClient(_settings(mqtt_broker, client_id=cid), reconnect=False)
        await thief.connect()
        await thief.close()
        await _until(lambda: not sub.connected)
        assert await sub.wait_connected(10)
        await _until(lambda: _roundtrip(pub, topic, b"after", got))
    finally:
        await pub.close()
        await sub.close()


def _roundtrip(pub: MqttClient, topic: str, payload: bytes, got: list[bytes]) -> bool:
    if payload in got:
        return True
    pub.publish(topic, payload)
    return False


async def test_will_is_sent_on_unclean_loss(mqtt_broker: Any) -> None:
    topic = _topic()
    got: list[Message] = []
    watcher = MqttClient(_settings(mqtt_broker), reconnect=False, on_message=got.append)
    await watcher.connect()
    watcher.subscribe(topic)
    cid = f"xqtest-will-{uuid.uuid4().hex[:8]}"
    dying = MqttClient(_settings(mqtt_broker, client_id=cid), reconnect=False,
                       will=Will(topic, b"gone", qos=1, retain=False))
    await dying.connect()
    try:
        await asyncio.sleep(0.2)
        # Taking the client id over ends the first connection without a DISCONNECT: the broker sends the will.
        thief = MqttClient(_settings(mqtt_broker, client_id=cid), reconnect=False)
        await thief.connect()
        await thief.close()
        await _until(lambda: any(m.payload == b"gone" for m in got))
    finally:
        await dying.close()
        await watcher.close()


def _persistent(broker: Any, cid: str, **kw: Any) -> MqttClient:
    return MqttClient(_settings(broker, client_id=cid, clean_start=False), protocol="5", reconnect=False,
                      manual_ack=True, session_expiry_s=60, receive_maximum=10, deliver="thread", **kw)


def test_manual_ack_redelivers_what_was_not_acknowledged(mqtt_broker: Any) -> None:
    """A QoS 1 message is redelivered to a persistent session until the client acks it (ack after commit)."""
    topic = _topic()
    cid = f"xqtest-ack-{uuid.uuid4().hex[:8]}"
    first: list[Message] = []
    arrived = threading.Event()
    subscribed = threading.Event()

    def on_first(m: Message) -> None:
        first.append(m)
        if len(first) == 3:
            arrived.set()

    consumer = _persistent(mqtt_broker, cid, on_message=on_first, on_subscribed=lambda failed: subscribed.set())
    assert consumer.connect_blocking().session_present is False
    consumer.subscribe(topic)
    assert subscribed.wait(5)

    async def publish_three() -> None:
        pub = MqttClient(_settings(mqtt_broker), reconnect=False)
        await pub.connect()
        for i in range(3):
            await pub.publish(topic, f"p{i}".encode())
        await pub.close()

    asyncio.run(publish_three())
    assert arrived.wait(5)
    consumer.ack(first[0].mid, first[0].qos)  # only the first is "committed"
    consumer.close_blocking()

    again: list[Message] = []
    two = threading.Event()

    def on_again(m: Message) -> None:
        again.append(m)
        consumer2.ack(m.mid, m.qos)
        if len(again) == 2:
            two.set()

    consumer2 = _persistent(mqtt_broker, cid, on_message=on_again)
    assert consumer2.connect_blocking().session_present is True
    try:
        assert two.wait(5), again
        assert sorted(m.payload for m in again) == [b"p1", b"p2"]
    finally:
        consumer2.close_blocking()

    # Everything acknowledged: a third session start gets nothing more.
    late: list[Message] = []
    consumer3 = _persistent(mqtt_broker, cid, on_message=late.append)
    consumer3.connect_blocking()
    threading.Event().wait(0.5)
    consumer3.close_blocking()
    assert late == []
    cleanup = MqttClient(_settings(mqtt_broker, client_id=cid), protocol="5", reconnect=False)
    cleanup.connect_blocking()  # clean start, expiry 0: the broker drops the session
    cleanup.close_blocking()


async def test_a_message_of_a_dropped_session_is_not_acknowledged(mqtt_broker: Any) -> None:
    """After the broker lost the session (taken over with a clean start), the old message ids belong to other
    messages: an ack for a message of the earlier session is not sent; one of the current session is."""
    topic = _topic()
    cid = f"xqtest-sess-{uuid.uuid4().hex[:8]}"
    got: list[Message] = []
    connects: list[ConnectResult] = []
    consumer = MqttClient(_settings(mqtt_broker, client_id=cid, clean_start=False), protocol="5", reconnect=True,
                          reconnect_min_s=1, reconnect_max_s=1, manual_ack=True, session_expiry_s=60,
                          on_message=got.append, on_connect=connects.append)
    consumer.subscribe(topic)
    pub = MqttClient(_settings(mqtt_broker), reconnect=False)
    await consumer.connect()
    await pub.connect()
    try:
        await _until(lambda: _roundtrip(pub, topic, b"first", [m.payload for m in got]))
        old = next(m for m in got if m.payload == b"first")
        # Same id, clean start and no expiry: the broker drops the session and the first connection.
        thief = MqttClient(_settings(mqtt_broker, client_id=cid), protocol="5", reconnect=False)
        await thief.connect()
        await thief.close()
        await _until(lambda: len(connects) == 2, 10)
        assert connects[1].session_present is False
        assert consumer.ack(old.mid, old.qos, old.session) is False
        await _until(lambda: _roundtrip(pub, topic, b"second", [m.payload for m in got]))
        new = next(m for m in got if m.payload == b"second")
        assert new.session == old.session + 1
        assert consumer.ack(new.mid, new.qos, new.session) is True
    finally:
        await pub.close()
        await consumer.close()
        cleanup = MqttClient(_settings(mqtt_broker, client_id=cid), protocol="5", reconnect=False)
        await cleanup.connect()  # clean start, expiry 0: the broker drops the session
        await cleanup.close()


def test_start_requires_reconnect_and_blocking_connect_refuses_it() -> None:
    with pytest.raises(ValueError, match="keeps retrying"):
        MqttClient(MqttSettings(), reconnect=False).start()
    with pytest.raises(ValueError, match="without reconnect"):
        MqttClient(MqttSettings(), reconnect=True).connect_blocking()
