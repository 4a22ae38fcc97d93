"""Notification channels: the signed webhook (HMAC-SHA256) and the explicit registry."""

from __future__ import annotations

import json

import httpx

from cloud.auth.roles import Role
from cloud.dispatch.notify import (
    CHANNELS,
    LogConfig,
    Notification,
    Notifier,
    WebhookChannel,
    WebhookConfig,
    build_channel,
    verify,
)

SECRET = "webhook-secret-123"


async def test_webhook_is_signed_and_verifiable():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    channel = WebhookChannel(WebhookConfig(url="http://hook.invalid/x", secret=SECRET), httpx.MockTransport(handler))
    note = Notification(subject="fire in B1", body={"incident": 7}, role=Role.PROPERTY_MANAGER)
    errors = await Notifier([channel]).send(note)
    assert errors == []
    (req,) = seen
    body = req.content
    assert json.loads(body) == {"subject": "fire in B1", "role": "property_manager", "body": {"incident": 7}}
    ts, sig = req.headers["X-Xiaoqu-Timestamp"], req.headers["X-Xiaoqu-Signature"]
    assert sig.startswith("sha256=")
    assert verify(SECRET, ts, body, sig)
    assert not verify(SECRET, ts, body + b" ", sig)
    assert not verify("other-secret", ts, body, sig)


async def test_failures_are_reported_not_raised_and_roles_filter():
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(500)

    admins_only = WebhookChannel(
        WebhookConfig(url="http://hook.invalid/admins", secret=SECRET, roles=["admin"]), httpx.MockTransport(handler)
    )
    notifier = Notifier([admins_only, build_channel(LogConfig())])
    assert await notifier.send(Notification(subject="x", body={}, role=Role.PROPERTY_MANAGER)) == []
    assert calls == []
    errors = await notifier.send(Notification(subject="y", body={}, role=Role.ADMIN))
    assert calls == ["/admins"]
    assert errors and "HTTP 500" in errors[0]


def test_registry_is_explicit():
    assert set(CHANNELS) == {"webhook", "log"}
