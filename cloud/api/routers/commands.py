"""Commands to devices: issue one (published on the gateway's cmd topic) and follow its status."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, status

from cloud.api.deps import Conn, GridScope, Scope, State, not_found, require
from cloud.auth.security import Principal
from cloud.dispatch import repository as repo
from cloud.dispatch.models import Command, CommandIn
from cloud.dispatch.validate import CommandRefused

__all__ = ["CommandIn", "router"]

router = APIRouter(prefix="/api/commands", tags=["commands"])


@router.post("", status_code=202, response_model=Command, summary="Issue a command (queued → sent → outcome)")
async def issue(
    body: CommandIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("commands.issue"))]
) -> Command:
    try:
        async with conn.transaction():
            cid = await state.engine.issue_command(
                conn,
                device_id=body.device_id,
                command=body.command,
                args=dict(body.args),
                actor=user.username,
                ack_timeout=timedelta(seconds=body.ack_timeout_s) if body.ack_timeout_s is not None else None,
                retry_safe=body.retry_safe,
                max_attempts=body.max_attempts,
            )
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except CommandRefused as exc:  # refused at once, with the field and what is allowed (no gateway round trip)
        detail = [{"loc": ["body", *exc.field], "msg": str(exc), "type": "command_refused", "ctx": exc.ctx}]
        raise HTTPException(422, detail) from None
    await state.engine.send([cid])
    return await get_command(cid, conn, Scope(None, None), user)


@router.get("", response_model=list[Command], summary="Recent commands")
async def list_commands(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("commands.read"))],
    device_id: str | None = None,
    limit: int = 200,
) -> list[Command]:
    return await repo.list_commands(
        conn, device_id=device_id, located=scope.sql("d.site_id", "d.building"), limit=min(max(limit, 1), 1000)
    )


@router.get("/{command_id}", response_model=Command, summary="One command's status")
async def get_command(
    command_id: UUID, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("commands.read"))]
) -> Command:
    found = await repo.command_with_place(conn, command_id)
    if found is None:
        raise not_found(f"command {command_id}")
    command, site_id, building = found
    scope.check(site_id, building, f"command {command_id}")
    return command
