"""``/api/ws?token=…``: a live stream of alarm, incident, command and work-order changes (grid-scoped)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from psycopg_pool import PoolTimeout

from cloud.alarms.repository import note_shown
from cloud.api.deps import AppState, scope_for
from cloud.auth.roles import allowed, is_grid_scoped
from cloud.auth.security import TokenError, decode_token
from cloud.changes import Change

router = APIRouter(tags=["stream"])
log = logging.getLogger(__name__)


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
