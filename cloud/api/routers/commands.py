"""Commands to devices: issue one (published on the gateway's cmd topic) and follow its status."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, status
from psycopg.rows import dict_row
from pydantic import Field

from cloud.api.deps import Conn, GridScope, Scope, State, not_found, require
from cloud.auth.security import Principal
from cloud.changes import json_row
from cloud.dispatch.validate import CommandRefused
from contract.base import StrictModel

router = APIRouter(prefix="/api/commands", tags=["commands"])


class CommandIn(StrictModel):
    device_id: str
    command: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    args: dict[str, bool | int | float | str] = Field(default_factory=dict)
    ack_timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="how long to wait for the gateway's answer; default: the device "
        "profile's command timeout plus a transit margin. An answer after it is still recorded (<outcome>_late)"
    )
    retry_safe: bool | None = Field(
        default=None, description="may be re-sent on no answer; default: the profile command's safe_to_retry")
    max_attempts: int = Field(default=1, ge=1, le=10)


@router.post("", status_code=202, summary="Issue a command (queued → sent → outcome)")
async def issue(
    body: CommandIn, conn: Conn, state: State, user: Annotated[Principal, Depends(require("commands.issue"))]
) -> dict[str, Any]:
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


@router.get("", summary="Recent commands")
async def list_commands(
    conn: Conn,
    scope: GridScope,
    _: Annotated[Principal, Depends(require("commands.read"))],
    device_id: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    clause, args = scope.sql("d.site_id", "d.building")
    located = f" AND device_id IN (SELECT d.id FROM devices d WHERE true{clause})" if clause else ""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT * FROM commands WHERE (%s::text IS NULL OR device_id = %s){located} "
            "ORDER BY created_at DESC LIMIT %s",
            (device_id, device_id, *args, min(max(limit, 1), 1000)),
        )
        return [json_row(r) for r in await cur.fetchall()]


@router.get("/{command_id}", summary="One command's status")
async def get_command(
    command_id: UUID, conn: Conn, scope: GridScope, _: Annotated[Principal, Depends(require("commands.read"))]
) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT c.*, d.site_id AS _site, d.building AS _building FROM commands c "
            "LEFT JOIN devices d ON d.id = c.device_id WHERE c.id = %s",
            (command_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise not_found(f"command {command_id}")
    scope.check(row.pop("_site"), row.pop("_building"), f"command {command_id}")
    return json_row(row)
