"""The config message: a retained ``GatewayConfigPush`` on ``xq/v1/{site}/{gw}/config``, sent after the commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from cloud.gateways.store import ConfigVersion
from contract.codec import encode
from contract.messages import GatewayConfigPush
from contract.topics import TopicKind, topic


class RetainingPublisher(Protocol):
    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None: ...


def config_message(cfg: ConfigVersion) -> tuple[str, bytes]:
    push = GatewayConfigPush(gw=cfg.gateway_id, seq=cfg.version, ts=datetime.now(UTC), version=cfg.version,
                             document=cfg.document, sha256=cfg.sha256)
    return topic(cfg.site_id, cfg.gateway_id, TopicKind.CONFIG), encode(push)


async def publish_config(publisher: RetainingPublisher, cfg: ConfigVersion) -> None:
    """Retained, QoS 1: a gateway that is offline now gets it when it connects (raises PublishError)."""
    target, payload = config_message(cfg)
    await publisher.publish(target, payload, qos=1, retain=True)
