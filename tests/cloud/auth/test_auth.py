"""Roles, permissions, password hashing and tokens (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.auth.roles import PERMISSIONS, Role, allowed, is_grid_scoped
from cloud.auth.security import Principal, TokenError, create_token, decode_token, hash_password, verify_password

SECRET = "test-secret-0123456789abcdef-0123456789"


def test_admin_holds_every_permission():
    assert all(allowed(Role.ADMIN, p) for p in PERMISSIONS)


@pytest.mark.parametrize(
    ("role", "permission"),
    [
        ("grid_worker", "alarms.ack"),
        ("grid_worker", "commands.issue"),
        ("grid_worker", "orders.verify"),
        ("grid_worker", "audit.read"),
        ("grid_worker", "devices.register"),
        ("installer", "alarms.read"),
        ("installer", "commands.issue"),
        ("installer", "orders.read"),
        ("property_manager", "users.manage"),
        ("property_manager", "devices.register"),
        ("property_manager", "orders.work"),
        ("nobody", "sites.read"),
        ("admin", "no.such.permission"),
    ],
)
def test_refusals(role, permission):
    assert not allowed(role, permission)


def test_grid_scoping_only_for_workers():
    assert is_grid_scoped(Role.GRID_WORKER)
    assert not any(is_grid_scoped(r) for r in Role if r is not Role.GRID_WORKER)


def test_password_hash_roundtrip():
    h = hash_password("correct horse")
    assert h.startswith("$argon2")
    assert verify_password("correct horse", h)
    assert not verify_password("wrong", h)


def test_token_roundtrip_and_refusals():
    p = Principal("wang", Role.GRID_WORKER, "g1")
    token = create_token(p, SECRET, timedelta(minutes=5))
    assert decode_token(token, SECRET) == p
    with pytest.raises(TokenError):
        decode_token(token, SECRET + "x")
    old = create_token(p, SECRET, timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(TokenError, match="expired"):
        decode_token(old, SECRET)
    with pytest.raises(TokenError):
        decode_token("not-a-token", SECRET)


@pytest.mark.filterwarnings("ignore:The HMAC key")  # the HS512 token is signed with our (HS256-sized) key
def test_alg_none_and_tampered_tokens_refused():
    import base64
    import json

    import jwt

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    claims = {"sub": "root", "role": "admin", "exp": int(datetime.now(UTC).timestamp()) + 600}
    for alg in ("none", "None", "NONE"):
        with pytest.raises(TokenError):
            decode_token(f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}.", SECRET)
    # HS256 signed with the right key but a different algorithm name in the header is refused too.
    hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(TokenError):
        decode_token(hs512, SECRET)
    head, _, sig = create_token(Principal("wang", Role.GRID_WORKER, "g1"), SECRET, timedelta(minutes=5)).split(".")
    with pytest.raises(TokenError):
        decode_token(f"{head}.{b64(claims)}.{sig}", SECRET)

