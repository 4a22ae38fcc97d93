"""Shared dependencies: app state, a database connection, the caller and permission checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from cloud.alarms.bus import ChangeBus
from cloud.alarms.engine import DecisionEngine
from cloud.api.config import ApiConfig
from cloud.auth.roles import allowed, is_grid_scoped
from cloud.auth.security import Principal, TokenError, decode_token
from cloud.auth.throttle import LoginThrottle
from contract.clock import Clock
from device_profiles import SHIPPED_DIR, Catalog, load_catalog


@dataclass
class AppState:
    config: ApiConfig
    pool: AsyncConnectionPool[Any]
    engine: DecisionEngine
    bus: ChangeBus
    clock: Clock
    throttle: LoginThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = LoginThrottle(self.config.login_throttle)


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
    """What part of the compound the caller sees: everything (None) or their grid's buildings.

    Every read route that returns located things (site / building) takes ``scope: GridScope`` and filters
    with :meth:`sql` (lists) or :meth:`check` (one item): grid workers see their grid, others everything.
    """

    grid_id: str | None
    buildings: list[tuple[str, str]] | None  # (site_id, building) pairs; None = unrestricted

    @property
    def unrestricted(self) -> bool:
        return self.buildings is None

    @property
    def sites(self) -> set[str] | None:
        """Sites the caller sees anything of (None = all)."""
        return None if self.buildings is None else {s for s, _ in self.buildings}

    def allows(self, site_id: str | None, building: str | None) -> bool:
        return self.buildings is None or (site_id, building) in self.buildings

    def check(self, site_id: str | None, building: str | None, what: str) -> None:
        """404 (as if it did not exist) when the item is outside the caller's grid."""
        if not self.allows(site_id, building):
            raise not_found(what)

    def sql(self, site_col: str = "site_id", building_col: str = "building") -> tuple[str, list[Any]]:
        """An ``AND …`` clause and its arguments restricting rows to the caller's buildings ('' when unrestricted).

        ``site_col`` / ``building_col`` are column expressions of the caller's query (trusted code, never input).
        """
        if self.buildings is None:
            return "", []
        clause = (
            f" AND ({site_col}, {building_col}) IN "
            "(SELECT s, b FROM unnest(%s::text[], %s::text[]) AS t(s, b))"
        )
        return clause, [[s for s, _ in self.buildings], [b for _, b in self.buildings]]


async def scope_for(conn: AsyncConnection[Any], user: Principal) -> Scope:
    if not is_grid_scoped(user.role):
        return Scope(None, None)
    if not user.grid_id:
        return Scope(None, [])
    cur = await conn.execute("SELECT site_id, unnest(buildings) FROM grids WHERE id = %s", (user.grid_id,))
    return Scope(user.grid_id, [(str(s), str(b)) for s, b in await cur.fetchall()])


async def grid_scope(conn: Conn, user: CurrentUser) -> Scope:
    return await scope_for(conn, user)


GridScope = Annotated[Scope, Depends(grid_scope)]
"""The caller's :class:`Scope` as a dependency: ``scope: GridScope`` in any route (shares the request's connection)."""


@cache
def shipped_catalog() -> Catalog:
    """The shipped device profiles, read once per process (they are package data, not configuration)."""
    return load_catalog([SHIPPED_DIR])


def loaded_catalog(state: State) -> Catalog:
    """The profiles the backend loaded once at its entry point — the shipped ones plus ``decision.profiles`` —
    which the engine checks commands against (the shipped ones when the app runs without an engine)."""
    engine: DecisionEngine | None = state.engine
    return engine.catalog if engine is not None else shipped_catalog()


ShippedProfiles = Annotated[Catalog, Depends(loaded_catalog)]
"""The backend's device profiles as a dependency (labels, the points a device should report): the shipped
ones plus the folders of ``decision.profiles``."""


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")
