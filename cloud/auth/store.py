"""Users and the audit log in PostgreSQL."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row

from cloud.auth.roles import Role
from cloud.auth.security import hash_password, verify_password

log = logging.getLogger(__name__)

_DUMMY_HASH = hash_password("no such user: this hash only spends the same time as a real check")


class UserExists(ValueError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    grid_id: str | None
    full_name: str | None
    active: bool


def _user(row: dict[str, Any]) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        grid_id=row["grid_id"],
        full_name=row["full_name"],
        active=row["active"],
    )


async def add_user(
    conn: AsyncConnection[Any],
    username: str,
    password: str,
    role: Role,
    grid_id: str | None = None,
    full_name: str | None = None,
) -> User:
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "INSERT INTO users (username, password_hash, role, grid_id, full_name) VALUES (%s, %s, %s, %s, %s) "
                "RETURNING *",
                (username, hash_password(password), role.value, grid_id, full_name),
            )
            row = await cur.fetchone()
    except UniqueViolation:
        raise UserExists(f"user {username!r} already exists") from None
    assert row is not None
    return _user(row)


async def authenticate(conn: AsyncConnection[Any], username: str, password: str) -> User | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM users WHERE username = %s AND active", (username,))
        row = await cur.fetchone()
    if row is None:
        verify_password(password, _DUMMY_HASH)  # same work as for a real user: no username oracle by timing
        return None
    if not verify_password(password, row["password_hash"]):
        return None
    return _user(row)


async def list_users(conn: AsyncConnection[Any]) -> list[User]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM users ORDER BY id")
        return [_user(r) for r in await cur.fetchall()]


async def audit(
    conn: AsyncConnection[Any],
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int,
    detail: dict[str, Any] | None = None,
    ts: datetime | None = None,
) -> None:
    """Append one line to the audit log (in the caller's transaction)."""
    await conn.execute(
        "INSERT INTO audit_log (ts, actor, action, target_type, target_id, detail) "
        "VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s)",
        (ts, actor, action, target_type, str(target_id), json.dumps(detail or {}, default=str)),
    )
