"""``/api/ws?token=…``: a live stream of alarm, incident, command and work-order changes (grid-scoped)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect, status
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, JsonValue

from cloud.alarms.repository import note_shown
from cloud.api.deps import AppState, scope_for
from cloud.auth.roles import allowed, is_grid_scoped
from cloud.auth.security import TokenError, decode_token
from cloud.changes import Change

router = APIRouter(tags=["stream"])
log = logging.getLogger(__name__)

STREAM_DESCRIPTION = """A WebSocket: open `ws(s)://host/api/ws?token=…` with an access token
(from `POST /api/auth/token`).

After the upgrade (101) the server sends one JSON text message per committed change, shaped as the
`Change` schema: `kind` (alarm, incident, work_order, command) and `op` say what happened, `id`,
`site_id`, `building`, `grid_id` whom it concerns, `data` the changed record as JSON.
Grid workers receive their grid's alarms and incidents and their work orders, never commands.
The client may send any text (a ping); the server ignores it. A token that is invalid, or a role that may
not subscribe, closes the socket with code 1008 and the reason.

A plain GET (no upgrade) is answered 426 Upgrade Required."""


class UpgradeRequired(BaseModel):
    detail: str


def inline_schema(model: type[BaseModel]) -> dict[str, JsonValue]:
    """``model``'s JSON schema with its own definitions written in place (for a response that has no body
    in OpenAPI's sense, such as the messages after a 101, where FastAPI takes no model)."""
    schema: dict[str, JsonValue] = model.model_json_schema(mode="serialization")
    defs = schema.pop("$defs", None)

    def resolve(node: JsonValue) -> JsonValue:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, dict):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved = resolve(schema)
    assert isinstance(resolved, dict)
    return resolved


@router.get(
    "/api/ws",
    status_code=status.HTTP_426_UPGRADE_REQUIRED,
    response_model=UpgradeRequired,
    summary="Live changes over a WebSocket (alarms, incidents, work orders, commands)",
    description=STREAM_DESCRIPTION,
    responses={
        status.HTTP_101_SWITCHING_PROTOCOLS: {
            "description": "WebSocket upgrade; then each message is one Change (JSON text)",
            "content": {"application/json": {"schema": inline_schema(Change)}},
        },
        status.HTTP_426_UPGRADE_REQUIRED: {"description": "a plain HTTP request: this route is a WebSocket"},
    },
)
async def stream_info(
    token: Annotated[str | None, Query(description="an access token (POST /api/auth/token)")] = None,
) -> JSONResponse:
    return JSONResponse(
        UpgradeRequired(detail="/api/ws is a WebSocket: connect with ws(s)://…/api/ws?token=…").model_dump(),
        status_code=status.HTTP_426_UPGRADE_REQUIRED,
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


async def _note_shown(state: AppState, change: Change, username: str) -> None:
    """The first push of an alarm's raise to a console goes into its timeline (the drill report's "shown")."""
    try:
        async with state.pool.connection() as conn:
            await note_shown(conn, int(change.id), state.clock.now(), username)
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("alarm %s: the time it was shown could not be recorded: %s", change.id, exc)


@router.websocket("/api/ws")
async def stream(ws: WebSocket, token: str) -> None:
    state: AppState = ws.app.state.xq
    try:
        user = decode_token(token, state.config.jwt_secret)
    except TokenError:
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason="invalid token")
        return
    if not allowed(user.role, "stream.subscribe"):
        await ws.close(code=status.WS_1008_POLICY_VIOLATION, reason=f"role {user.role.value} may not subscribe")
        return
    async with state.pool.connection() as conn:
        scope = await scope_for(conn, user)
    await ws.accept()
    queue = state.bus.subscribe()

    def visible(change: Change) -> bool:
        if change.kind == "command" and is_grid_scoped(user.role):
            return False
        if change.kind == "work_order" and is_grid_scoped(user.role):
            return change.data.get("assignee") == user.username or change.grid_id == user.grid_id
        return scope.allows(change.site_id, change.building)

    async def pump() -> None:
        while True:
            change = await queue.get()
            if visible(change):
                await ws.send_json(change.model_dump(mode="json"))
                if change.kind == "alarm" and change.op == "raised":
                    await _note_shown(state, change, user.username)

    sender = asyncio.create_task(pump())
    try:
        while True:
            await ws.receive_text()  # pings from the client; returns on disconnect via exception
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await sender
        state.bus.unsubscribe(queue)
