"""Log in (OAuth2 password flow → JWT) and manage users."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import Field

from cloud.api.deps import Conn, CurrentUser, State, require
from cloud.auth.roles import Role
from cloud.auth.security import Principal, create_token
from cloud.auth.store import User, UserExists, add_user, audit, authenticate, list_users
from contract.base import StrictModel

router = APIRouter(prefix="/api", tags=["auth"])

UsersManage = Annotated[Principal, Depends(require("users.manage"))]


class Token(StrictModel):
    access_token: str
    token_type: str = "bearer"
    role: Role


class UserIn(StrictModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{2,64}$")
    password: str = Field(min_length=8)
    role: Role
    grid_id: str | None = None
    full_name: str | None = None


class Me(StrictModel):
    """The caller, from their token."""

    username: str
    role: Role
    grid_id: str | None


@router.post(
    "/auth/token",
    response_model=Token,
    summary="Log in with username and password",
    responses={429: {"description": "too many failed logins for this user or address; see Retry-After"}},
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, conn: Conn, state: State
) -> Token:
    address = request.client.host if request.client else "unknown"
    locked = state.throttle.check(form.username, address)
    if locked is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins for this {locked.scope}; try again in {locked.retry_after_s} s",
            headers={"Retry-After": str(locked.retry_after_s)},
        )
    user = await authenticate(conn, form.username, form.password)
    if user is None:
        state.throttle.failed(form.username, address)
        await audit(conn, form.username[:64], "auth.login_failed", "address", address)
        await conn.commit()  # kept although the request fails
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    state.throttle.succeeded(form.username)
    principal = Principal(user.username, user.role, user.grid_id)
    token = create_token(principal, state.config.jwt_secret, timedelta(minutes=state.config.token_ttl_minutes))
    return Token(access_token=token, role=user.role)


@router.get("/auth/me", response_model=Me, summary="Who am I")
async def me(user: CurrentUser) -> Me:
    return Me(username=user.username, role=user.role, grid_id=user.grid_id)


@router.get("/users", response_model=list[User], summary="List users (admin)")
async def users(conn: Conn, _: UsersManage) -> list[User]:
    return await list_users(conn)


@router.post("/users", response_model=User, status_code=201, summary="Create a user (admin)")
async def create_user(body: UserIn, conn: Conn, admin: UsersManage) -> User:
    async with conn.transaction():
        try:
            u = await add_user(conn, body.username, body.password, body.role, body.grid_id, body.full_name)
        except UserExists as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        await audit(conn, admin.username, "user.create", "user", u.username, {"role": u.role.value})
    return u
