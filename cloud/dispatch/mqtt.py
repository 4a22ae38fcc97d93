"""Publishes commands to the broker with paho-mqtt (QoS 1; returns once the broker has the message)."""

from __future__ import annotations

import asyncio
import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import Field

from cloud.dispatch.commands import PublishError
from contract.base import StrictModel

log = logging.getLogger(__name__)


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = Field(default="xiaoqu-decision", description="unique per backend process")
    publish_timeout_s: float = 5.0


class MqttPublisher:
    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=True)
        if config.username:
            self._client.username_pw_set(config.username, config.password)
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if not getattr(rc, "is_failure", False):
            self._connected.set()
        else:
            log.warning("broker refused the connection: %s", rc)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        self._connected.clear()
        log.warning("disconnected from the broker (%s); paho reconnects", rc)

    def start(self, timeout: float = 10.0) -> None:
        self._client.connect_async(self.config.host, self.config.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            log.warning("broker %s:%d not reachable yet; commands wait queued", self.config.host, self.config.port)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if not self._connected.is_set():
            raise PublishError("not connected to the broker")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        try:
            await asyncio.to_thread(info.wait_for_publish, self.config.publish_timeout_s)
        except (ValueError, RuntimeError) as exc:
            raise PublishError(str(exc)) from None
        if not info.is_published():
            raise PublishError(f"no PUBACK within {self.config.publish_timeout_s} s")
