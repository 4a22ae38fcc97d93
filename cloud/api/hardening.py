"""HTTP hardening in front of every route: request size limits (413) and security headers.

A plain ASGI middleware (no response buffering, WebSockets pass through untouched):

* a body larger than the limit is refused with 413 — from ``Content-Length`` before anything is read, or
  as soon as a chunked body goes past it. Evidence uploads (``/api/evidence/…``) and gateway config
  documents (``/api/gateways/…``) have their own, larger limits.
* every HTTP response gets ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
  ``Referrer-Policy: no-referrer`` and a Content-Security-Policy. The web UI (cloud/web) has no inline script
  or style, so its policy is strict (``script-src 'self'``, ``frame-ancestors 'none'``); only the Swagger UI
  at ``/api/docs`` (inline bootstrap, assets from jsDelivr) gets a looser one. API answers are ``no-store``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WEB_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/api/docs", "/api/redoc")
EVIDENCE_PREFIX = "/api/evidence/"


class BodyTooLarge(HTTPException):
    """Raised inside ``receive`` when a streamed body passes the limit (an HTTPException: FastAPI answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class HardeningMiddleware:
    """``large_bodies``: path prefix → its own body limit (evidence uploads, gateway config documents)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, large_bodies: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.large = sorted((large_bodies or {}).items(), key=lambda kv: -len(kv[0]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = next((n for prefix, n in self.large if path.startswith(prefix)), self.max_body)
        headers = _security_headers(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit, headers)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def secured_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in headers if k not in present
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, secured_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit, headers)


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _security_headers(path: str) -> list[tuple[bytes, bytes]]:
    csp = DOCS_CSP if path.startswith(DOCS_PATHS) else WEB_CSP
    out = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", csp.encode()),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if path.startswith("/api/") and not path.startswith(DOCS_PATHS):
        out.append((b"cache-control", b"no-store"))
    return out


async def _too_large(send: Send, limit: int, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
