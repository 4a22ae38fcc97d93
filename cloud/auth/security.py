"""Password hashing (pwdlib, argon2) and JWT access tokens (PyJWT, HS256)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash

from cloud.auth.roles import Role

_hasher = PasswordHash.recommended()
ALGORITHM = "HS256"


class TokenError(ValueError):
    """A token that is missing, malformed, expired or signed with another key."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    return _hasher.verify(password, password_hash)


@dataclass(frozen=True)
class Principal:
    """Who is calling: from a verified token."""

    username: str
    role: Role
    grid_id: str | None = None


def create_token(principal: Principal, secret: str, ttl: timedelta, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, str | int | None] = {
        "sub": principal.username,
        "role": principal.role.value,
        "grid": principal.grid_id,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "role"]})
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from None
    try:
        role = Role(claims["role"])
    except ValueError:
        raise TokenError(f"unknown role {claims['role']!r}") from None
    grid = claims.get("grid")
    return Principal(username=str(claims["sub"]), role=role, grid_id=str(grid) if grid else None)
