"""The audit log: every command, acknowledgement, assignment and closure, with who and when."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from psycopg.rows import dict_row

from cloud.api.deps import Conn, require
from cloud.auth.security import Principal
from cloud.changes import json_row

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", summary="Audit log, newest first")
async def list_audit(
    conn: Conn,
    _: Annotated[Principal, Depends(require("audit.read"))],
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM audit_log WHERE (%s::text IS NULL OR actor = %s) AND (%s::text IS NULL OR action = %s) "
            "AND (%s::text IS NULL OR target_type = %s) AND (%s::text IS NULL OR target_id = %s) "
            "ORDER BY id DESC LIMIT %s",
            (actor, actor, action, action, target_type, target_type, target_id, target_id, min(max(limit, 1), 5000)),
        )
        return [json_row(r) for r in await cur.fetchall()]
