"""The audit log: every command, acknowledgement, assignment and closure, with who and when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from cloud.api.deps import Conn, require
from cloud.auth.security import Principal
from cloud.auth.store import AuditEntry
from cloud.auth.store import list_audit as read_audit

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntry], summary="Audit log, newest first")
async def list_audit(
    conn: Conn,
    _: Annotated[Principal, Depends(require("audit.read"))],
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    return await read_audit(
        conn, actor=actor, action=action, target_type=target_type, target_id=target_id,
        limit=min(max(limit, 1), 5000),
    )
