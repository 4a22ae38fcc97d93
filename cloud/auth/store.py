"""Users and the audit log in PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import class_row, dict_row
from pydantic import BaseModel, ConfigDict, JsonValue

from cloud.auth.roles import Role
from cloud.auth.security import hash_password, verify_password

log = logging.getLogger(__name__)

_DUMMY_HASH = hash_password("no such user: this hash only spends the same time as a real check")


class UserExists(ValueError):
    pass


class User(BaseModel):
    """A user as the API shows them (never their password hash)."""

    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    role: Role
    grid_id: str | None
    full_name: str | None
    active: bool


class AuditEntry(BaseModel):
    """One line of the audit log."""

    model_config = ConfigDict(frozen=True)

    id: int
    ts: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, JsonValue]


_USER = "id, username, role, grid_id, full_name, active"


async def add_user(
    conn: AsyncConnection[Any],
    username: str,
    password: str,
    role: Role,
    grid_id: str | None = None,
    full_name: str | None = None,
) -> User:
    try:
        async with conn.cursor(row_factory=class_row(User)) as cur:
            await cur.execute(
                "INSERT INTO users (username, password_hash, role, grid_id, full_name) VALUES (%s, %s, %s, %s, %s) "
                f"RETURNING {_USER}",
                (username, hash_password(password), role.value, grid_id, full_name),
            )
            row = await cur.fetchone()
    except UniqueViolation:
        raise UserExists(f"user {username!r} already exists") from None
    assert row is not None
    return row


async def authenticate(conn: AsyncConnection[Any], username: str, password: str) -> User | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_USER}, password_hash FROM users WHERE username = %s AND active", (username,))
        row = await cur.fetchone()
    if row is None:
        verify_password(password, _DUMMY_HASH)  # same work as for a real user: no username oracle by timing
        return None
    if not verify_password(password, row["password_hash"]):
        return None
    return User.model_validate(row)  # the hash is not a field: left out


async def list_users(conn: AsyncConnection[Any]) -> list[User]:
    async with conn.cursor(row_factory=class_row(User)) as cur:
        await cur.execute(f"SELECT {_USER} FROM users ORDER BY id")
        return await cur.fetchall()


async def audit(
    conn: AsyncConnection[Any],
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int,
    detail: Mapping[str, object] | None = None,
    ts: datetime | None = None,
) -> None:
    """Append one line to the audit log (in the caller's transaction)."""
    await conn.execute(
        "INSERT INTO audit_log (ts, actor, action, target_type, target_id, detail) "
        "VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s)",
        (ts, actor, action, target_type, str(target_id), json.dumps(dict(detail or {}), default=str)),
    )


async def list_audit(
    conn: AsyncConnection[Any],
    *,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    """Audit lines matching every filter given, newest first."""
    async with conn.cursor(row_factory=class_row(AuditEntry)) as cur:
        await cur.execute(
            "SELECT id, ts, actor, action, target_type, target_id, detail FROM audit_log "
            "WHERE (%s::text IS NULL OR actor = %s) AND (%s::text IS NULL OR action = %s) "
            "AND (%s::text IS NULL OR target_type = %s) AND (%s::text IS NULL OR target_id = %s) "
            "ORDER BY id DESC LIMIT %s",
            (actor, actor, action, action, target_type, target_type, target_id, target_id, limit),
        )
        return await cur.fetchall()
