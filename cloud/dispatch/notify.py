"""Notifications through pluggable channels, chosen by an explicit registry.

``webhook`` posts JSON signed with HMAC-SHA256: header ``X-Xiaoqu-Signature: sha256=<hex>`` over
``<timestamp>.<body>`` with the timestamp in ``X-Xiaoqu-Timestamp`` (receivers reject stale stamps).
WeChat Work / DingTalk / SMS adapters implement :class:`Channel` and are added to ``CHANNELS``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Annotated, Literal, Protocol

import httpx
from pydantic import Discriminator, Field, Tag

from cloud.auth.roles import Role
from cloud.dispatch.models import Notification as Notification
from contract.base import StrictModel

log = logging.getLogger(__name__)


class ChannelError(RuntimeError):
    """A channel could not deliver a notification."""


class Channel(Protocol):
    name: str

    async def send(self, notification: Notification) -> None: ...


class WebhookConfig(StrictModel):
    type: Literal["webhook"] = "webhook"
    url: str
    secret: str = Field(min_length=8)
    timeout_s: float = 5.0
    roles: list[Role] = Field(default_factory=list, description="only these roles' notifications; empty = all")


class LogConfig(StrictModel):
    type: Literal["log"] = "log"
    roles: list[Role] = Field(default_factory=list, description="only these roles' notifications; empty = all")


def _channel_type(value: object) -> str:
    """A channel entry's ``type`` (``webhook`` when left out), so a bad field is reported on its own line."""
    kind = value.get("type", "webhook") if isinstance(value, dict) else getattr(value, "type", "webhook")
    return str(kind)


ChannelConfig = Annotated[
    Annotated[WebhookConfig, Tag("webhook")] | Annotated[LogConfig, Tag("log")], Discriminator(_channel_type)
]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel:
    name = "webhook"

    def __init__(self, config: WebhookConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport

    async def send(self, notification: Notification) -> None:
        body = json.dumps(
            {"subject": notification.subject, "role": notification.role, "body": notification.body},
            ensure_ascii=False,
            default=str,
        ).encode()
        ts = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "X-Xiaoqu-Timestamp": ts,
            "X-Xiaoqu-Signature": sign(self.config.secret, ts, body),
        }
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout_s, transport=self._transport) as client:
                resp = await client.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(f"webhook {self.config.url}: {exc}") from None
        if resp.status_code >= 300:
            raise ChannelError(f"webhook {self.config.url}: HTTP {resp.status_code}")


class LogChannel:
    name = "log"

    def __init__(self, config: LogConfig) -> None:
        self.config = config

    async def send(self, notification: Notification) -> None:
        log.info("notify %s: %s %s", notification.role or "-", notification.subject, notification.body)


def _webhook(config: ChannelConfig) -> Channel:
    if not isinstance(config, WebhookConfig):
        raise TypeError(f"webhook channel given a {config.type} config")
    return WebhookChannel(config)


def _log(config: ChannelConfig) -> Channel:
    if not isinstance(config, LogConfig):
        raise TypeError(f"log channel given a {config.type} config")
    return LogChannel(config)


CHANNELS: dict[str, Callable[[ChannelConfig], Channel]] = {"webhook": _webhook, "log": _log}


def build_channel(config: ChannelConfig) -> Channel:
    return CHANNELS[config.type](config)


class Notifier:
    """Sends each notification through every channel configured for its role; failures are logged."""

    def __init__(self, channels: list[Channel] | None = None) -> None:
        self.channels = channels or []
        self.sent: list[Notification] = []  # recent history (tests, diagnostics)

    async def send(self, notification: Notification) -> list[str]:
        errors: list[str] = []
        for channel in self.channels:
            roles = getattr(getattr(channel, "config", None), "roles", [])
            if roles and notification.role not in roles:
                continue
            try:
                await channel.send(notification)
            except ChannelError as exc:
                log.warning("notification %r via %s failed: %s", notification.subject, channel.name, exc)
                errors.append(str(exc))
        self.sent.append(notification)
        del self.sent[:-500]
        return errors
