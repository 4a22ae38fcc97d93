"""Evidence files (snapshots, clips): gateways upload the bytes the event refers to; people view them."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud.api.deps import Conn, GridScope, Scope, State, principal_from_token, require
from cloud.auth.roles import allowed
from cloud.auth.security import Principal

router = APIRouter(prefix="/api/evidence", tags=["evidence"])
log = logging.getLogger(__name__)

REF_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
TYPES = {"image/jpeg", "image/png", "video/mp4"}
BINARY = {"schema": {"type": "string", "format": "binary"}}


class EvidenceInfo(BaseModel):
    """A stored evidence file (kept beside it as ``{ref}.meta.json``)."""

    model_config = ConfigDict(frozen=True)

    ref: str
    sha256: str = Field(description="hex sha256 of the bytes")
    size: int = Field(description="bytes")
    content_type: str
    uploaded_by: str = Field(description="'gateway' (X-Gateway-Token) or the uploading user")


def _meta(path: Path) -> EvidenceInfo | None:
    """The file's metadata, or None when there is none (or it cannot be read)."""
    if not path.exists():
        return None
    try:
        return EvidenceInfo.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        log.warning("%s: unreadable evidence metadata: %s", path, exc)
        return None


def _check_ref(ref: str) -> None:
    if not REF_RE.match(ref) or ref.startswith("."):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "ref must be 1-128 of letters, digits, _ . -")


def _authorise(request: Request, state: State, permission: str, gateway_token: str | None) -> str:
    token = state.config.gateway_upload_token
    if gateway_token is not None and token is not None and hmac.compare_digest(gateway_token, token):
        return "gateway"
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "bearer token or X-Gateway-Token required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = principal_from_token(auth[7:], state)
    if not allowed(user.role, permission):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role.value} may not {permission}")
    return user.username


@router.post("/{ref}", status_code=201, response_model=EvidenceInfo,
             summary="Upload evidence bytes (sha256 checked); the same bytes again are taken as done")
async def upload(
    ref: str,
    request: Request,
    state: State,
    x_content_sha256: Annotated[str, Header(description="hex sha256 of the body, as in the event's EvidenceRef")],
    content_type: Annotated[str, Header()] = "image/jpeg",
    x_gateway_token: Annotated[str | None, Header()] = None,
) -> EvidenceInfo:
    _check_ref(ref)
    who = _authorise(request, state, "evidence.upload", x_gateway_token)
    if content_type not in TYPES:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"content type must be one of {sorted(TYPES)}")
    body = await request.body()
    if len(body) > state.config.evidence_max_bytes:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "evidence too large")
    digest = hashlib.sha256(body).hexdigest()
    if digest != x_content_sha256.lower():
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"sha256 mismatch: body is {digest}, header says {x_content_sha256}"
        )
    directory = state.config.evidence_dir
    directory.mkdir(parents=True, exist_ok=True)
    path, meta = directory / ref, directory / f"{ref}.meta.json"
    if path.exists():
        old = _meta(meta)
        if old is None or old.sha256 != digest:
            raise HTTPException(status.HTTP_409_CONFLICT, f"evidence {ref!r} exists with other content")
        return old  # idempotent re-upload
    tmp = directory / f".{ref}.part"
    tmp.write_bytes(body)
    tmp.replace(path)
    info = EvidenceInfo(ref=ref, sha256=digest, size=len(body), content_type=content_type, uploaded_by=who)
    meta.write_text(info.model_dump_json())
    return info


async def _in_scope(conn: Conn, ref: str, scope: Scope, user: Principal) -> bool:
    """Evidence a grid worker may see: attached to an alarm in their grid, or to a work order they see."""
    clause, args = scope.sql()
    cur = await conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM alarms WHERE evidence @> %s::jsonb{clause}) "
        "OR EXISTS (SELECT 1 FROM work_orders WHERE (arrival_photo = %s OR evidence ? %s) "
        "AND (assignee = %s OR grid_id = %s))",
        (json.dumps([{"ref": ref}]), *args, ref, ref, user.username, user.grid_id),
    )
    row = await cur.fetchone()
    return bool(row and row[0])


@router.get(
    "/{ref}",
    summary="View evidence (grid workers: their grid's)",
    response_class=FileResponse,
    responses={200: {"description": "the evidence bytes", "content": {t: BINARY for t in sorted(TYPES)}}},
)
async def view(
    ref: str,
    conn: Conn,
    state: State,
    scope: GridScope,
    user: Annotated[Principal, Depends(require("evidence.read"))],
) -> FileResponse:
    _check_ref(ref)
    path, meta = state.config.evidence_dir / ref, state.config.evidence_dir / f"{ref}.meta.json"
    info = _meta(meta)
    uploader = info.uploaded_by if info else None
    if not scope.unrestricted and uploader != user.username and not await _in_scope(
        conn, ref, scope, user
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"evidence {ref!r} not found")  # as if it did not exist
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"evidence {ref!r} not found")
    return FileResponse(path, media_type=info.content_type if info else "application/octet-stream")
