"""Publishes commands to the broker (QoS 1; returns once the broker has the message) over :mod:`contract.mqtt`."""

from __future__ import annotations

import logging

from pydantic import Field

from cloud.dispatch.commands import PublishError
from contract.mqtt import MqttClient, MqttError, MqttNotConnected, MqttSettings

log = logging.getLogger(__name__)


class PublisherConfig(MqttSettings):
    """The backend's broker connection (the ``mqtt`` section) and how long a publish may wait for its PUBACK."""

    client_id: str | None = Field(default="xiaoqu-decision", description="unique per backend process")
    publish_timeout_s: float = Field(default=5.0, gt=0)


class MqttPublisher:
    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        self._client = MqttClient(config)

    def start(self, timeout: float = 10.0) -> None:
        """Connect in the background (reconnecting after drops); wait up to ``timeout`` for the first CONNACK."""
        self._client.start()
        if not self._client.wait_connected_blocking(timeout):
            log.warning("broker %s not reachable yet; commands wait queued", self._client.address)

    def stop(self) -> None:
        self._client.close_blocking()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        try:
            await self._client.publish_wait(topic, payload, qos=qos, retain=retain,
                                            timeout=self.config.publish_timeout_s)
        except MqttNotConnected:
            raise PublishError("not connected to the broker") from None
        except MqttError as exc:
            raise PublishError(str(exc)) from None
