"""Shared dependencies: app state, a database connection, the caller and permission checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from cloud.alarms.bus import ChangeBus
from cloud.alarms.clock import Clock
from cloud.alarms.engine import DecisionEngine
from cloud.api.config import ApiConfig
from cloud.auth.roles import allowed, is_grid_scoped
from cloud.auth.security import Principal, TokenError, decode_token


@dataclass
class AppState:
    config: ApiConfig
    pool: AsyncConnectionPool[Any]
    engine: DecisionEngine
    bus: ChangeBus
    clock: Clock


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.xq
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_conn(state: State) -> AsyncIterator[AsyncConnection[Any]]:
    async with state.pool.connection() as conn:
        yield conn


Conn = Annotated[AsyncConnection[Any], Depends(get_conn)]

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token")


def principal_from_token(token: str, state: AppState) -> Principal:
    try:
        return decode_token(token, state.config.jwt_secret)
    except TokenError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}
        ) from None


async def current_principal(token: Annotated[str, Depends(oauth2)], state: State) -> Principal:
    return principal_from_token(token, state)


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the caller through only with ``permission`` (403 otherwise)."""

    async def check(user: CurrentUser) -> Principal:
        if not allowed(user.role, permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role.value} may not {permission}")
        return user

    check.__name__ = f"require_{permission.replace('.', '_')}"
    return check


@dataclass(frozen=True)
class Scope:
    """What part of the compound the caller sees: everything (None) or their grid's buildings."""

    grid_id: str | None
    buildings: list[tuple[str, str]] | None  # (site_id, building) pairs; None = unrestricted

    def allows(self, site_id: str | None, building: str | None) -> bool:
        return self.buildings is None or (site_id, building) in self.buildings


async def scope_for(conn: AsyncConnection[Any], user: Principal) -> Scope:
    if not is_grid_scoped(user.role):
        return Scope(None, None)
    if not user.grid_id:
        return Scope(None, [])
    cur = await conn.execute("SELECT site_id, unnest(buildings) FROM grids WHERE id = %s", (user.grid_id,))
    return Scope(user.grid_id, [(str(s), str(b)) for s, b in await cur.fetchall()])


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")
