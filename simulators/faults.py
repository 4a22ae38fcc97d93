"""Fault injectors that act from outside a device: junk Modbus frames, malformed MQTT payloads."""

from __future__ import annotations

import asyncio
import logging
import random
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

logger = logging.getLogger(__name__)


def parse_mqtt_url(url: str) -> tuple[str, int]:
    u = urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"unsupported MQTT URL scheme {u.scheme!r} (use mqtt://host:port)")
    return u.hostname or "127.0.0.1", u.port or 1883


def junk_frames(rng: random.Random, count: int) -> list[bytes]:
    """Garbage a broken client might send: random bytes, a truncated MBAP header, a wrong protocol id,
    an absurd length field, and a valid header announcing more data than follows."""
    frames: list[bytes] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            frames.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))))
        elif kind == 1:
            frames.append(bytes([0, 1, 0]))
        elif kind == 2:
            frames.append(bytes([0, 2, 0x12, 0x34, 0, 6, 1, 3, 0, 0, 0, 1]))
        elif kind == 3:
            frames.append(bytes([0, 3, 0, 0, 0xFF, 0xFF, 1, 3]))
        else:
            frames.append(bytes([0, 4, 0, 0, 0, 20, 1, 16, 0, 0]))
    return frames


async def send_garbage(host: str, port: int, rng: random.Random, count: int = 10, timeout: float = 1.0) -> int:
    """Open a raw TCP connection to a Modbus port and write junk frames; returns the bytes the server sent
    back (pymodbus may answer some with exception responses, or just drop the connection)."""
    received = 0
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        for frame in junk_frames(rng, count):
            writer.write(frame)
            await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(256), 0.05)
            except TimeoutError:
                continue
            if not data:
                break
            received += len(data)
    except (ConnectionError, OSError) as exc:
        logger.info("garbage client: server closed the connection: %s", exc)
    finally:
        writer.close()
    return received


MALFORMED_PAYLOADS: list[bytes] = [
    b"{not json",
    b"\xff\xfe\x00garbage",
    b"[]",
    b'{"alarm": "maybe", "obscuration": "lots"}',
    b"",
    b'{"id": 1, "cmd": 42}',
    b"null",
    b"9" * 4096,
]


def publish_raw(url: str, topic: str, payloads: list[bytes], client_id: str, retain: bool = False) -> None:
    """Publish each payload on ``topic`` from a throw-away client (blocking; QoS 1, waits for PUBACK)."""
    host, port = parse_mqtt_url(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.connect(host, port, keepalive=10)
    c.loop_start()
    try:
        for p in payloads:
            c.publish(topic, p, qos=1, retain=retain).wait_for_publish(timeout=5)
    finally:
        c.disconnect()
        c.loop_stop()
