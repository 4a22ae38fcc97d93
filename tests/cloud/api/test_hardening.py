"""API hardening against the real server: login throttling, tokens, body limits, headers, grid-scoped reads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from cloud.alarms.testkit import insert_event
from cloud.auth.roles import Role
from cloud.auth.security import Principal, create_token
from cloud.web import __file__ as web_init

pytestmark = pytest.mark.integration

SECRET = "api-test-secret-0123456789abcdefghijkl"  # as in conftest.py
GATEWAY_TOKEN = "gw-upload-token-0123456789"
PASSWORD = "password-123"


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/token", data={"username": name, "password": password})


async def bearer(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await login(client, name)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_failed_logins_lock_the_user_then_the_address(backend, db):
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        for _ in range(5):
            assert (await login(client, "pm", "wrong-password")).status_code == 401
        r = await login(client, "pm")  # even the right password: locked
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        assert "too many failed logins for this user" in r.json()["detail"]
        assert (await login(client, "PM ", "x")).status_code == 429  # case / spaces do not reset the count
        assert (await login(client, "admin")).status_code == 200  # other users from this address: fine
        # Per address (20 failures): many names, each below its own limit; locked attempts do not count.
        for i in range(15):
            assert (await login(client, f"nobody{i}", "guess")).status_code == 401
        r = await login(client, "admin")
        assert r.status_code == 429 and "address" in r.json()["detail"]
    with psycopg.connect(db) as conn:
        failed = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed'").fetchone()
    assert failed is not None and failed[0] == 5 + 15  # every wrong password is in the audit log


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_and_expired_tokens_refused(backend):
    now = datetime.now(UTC)
    admin = Principal("admin", Role.ADMIN)
    claims = {"sub": "admin", "role": "admin", "grid": None, "iat": int(now.timestamp()),
              "exp": int((now + timedelta(hours=1)).timestamp())}
    good = create_token(admin, SECRET, timedelta(minutes=5))
    header, _payload, signature = good.split(".")
    forged = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "alg None": f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{_b64(claims)}.",
        "wrong key": create_token(admin, SECRET[::-1], timedelta(minutes=5)),
        "expired": create_token(admin, SECRET, timedelta(minutes=5), now=now - timedelta(hours=2)),
        "payload swapped": f"{header}.{_b64({**claims, 'sub': 'root'})}.{signature}",
        "unknown role": _hs256({**claims, "role": "superuser"}),
        "no exp": _hs256({k: v for k, v in claims.items() if k != "exp"}),
        "garbage": "a.b.c",
    }
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        assert (await client.get("/api/users", headers={"Authorization": f"Bearer {good}"})).status_code == 200
        for what, token in forged.items():
            r = await client.get("/api/users", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, f"{what}: {r.status_code} {r.text}"
            assert r.headers.get("WWW-Authenticate") == "Bearer"


def _hs256(claims: dict) -> str:
    import jwt

    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_request_size_limits(backend, db):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_event(conn, "door1", "door.forced_open", severity="major")
    async with httpx.AsyncClient(base_url=backend.base_url, timeout=30) as client:
        pm = await bearer(client, "pm")
        big = {"text": "x" * (300 * 1024)}
        r = await client.post("/api/alarms/1/comments", json=big, headers=pm)
        assert r.status_code == 413 and "larger than" in r.json()["detail"]

        async def chunks():  # no Content-Length: the limit is counted as the body streams in
            for _ in range(40):
                yield b"x" * 10_000

        r = await client.post("/api/alarms/1/comments", content=chunks(),
                              headers={**pm, "Content-Type": "application/json"})
        assert r.status_code == 413
        # A gateway config document has its own limit (up to 1,000,000 characters): 300 KB is not "too large".
        admin = await bearer(client, "admin")
        r = await client.put("/api/gateways/gw1/config", json={"document": "# " + "x" * 300_000 + "\n"}, headers=admin)
        assert r.status_code != 413, r.text
        r = await client.post("/api/auth/token", content=b"username=" + b"a" * 400_000,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413
        # Evidence has its own (larger) limit: a 1 MB photo passes, a declared 30 MB one does not.
        photo = b"\xff\xd8" + b"p" * 1_000_000
        r = await client.post("/api/evidence/big-ok.jpg", content=photo,
                              headers={**pm, "X-Content-SHA256": hashlib.sha256(photo).hexdigest()})
        assert r.status_code == 201, r.text
        host, port = backend.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /api/evidence/too-big.jpg HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: {pm['Authorization']}\r\nX-Content-SHA256: {'0' * 64}\r\n"
                     f"Content-Length: {30 * 1024 * 1024}\r\n\r\nxx".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)  # answered before the body is sent
        writer.close()
        assert status_line.split()[1] == b"413", status_line


async def test_security_headers_and_no_inline_script(backend):
    web = Path(web_init).parent
    pages = sorted(web.glob("*.html"))
    assert len(pages) >= 2
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{page} has an inline script"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page} has an inline event handler"
        assert "style=" not in html, f"{page} has an inline style"
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        for path in ("/", "/worker", "/style.css", "/api/health", "/api/alarms"):
            r = await client.get(path)
            h = r.headers
            assert h["X-Content-Type-Options"] == "nosniff", path
            assert h["X-Frame-Options"] == "DENY", path
            assert h["Referrer-Policy"] == "no-referrer", path
            csp = h["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp, path
            assert "unsafe-inline" not in csp, path
        assert (await client.get("/api/alarms")).headers["Cache-Control"] == "no-store"
        docs = await client.get("/api/docs")
        assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["Content-Security-Policy"]


async def test_grid_worker_reads_are_scoped(backend, db):
    photo = b"\xff\xd8 evidence of a forced door"
    digest = hashlib.sha256(photo).hexdigest()
    with psycopg.connect(db, autocommit=True) as conn:
        insert_event(conn, "door1", "door.forced_open", severity="major")  # B1 → grid g1
        insert_event(conn, "door9", "door.forced_open", severity="major")  # B2 → grid g2
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        admin = await bearer(client, "admin")

        async def two_alarms() -> bool:
            return len((await client.get("/api/alarms", headers=admin)).json()) == 2

        for _ in range(200):
            if await two_alarms():
                break
            await asyncio.sleep(0.05)
        assert await two_alarms()
        r = await client.post("/api/evidence/b2-snap.jpg", content=photo,
                              headers={"X-Gateway-Token": GATEWAY_TOKEN, "X-Content-SHA256": digest})
        assert r.status_code == 201
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE alarms SET evidence = %s WHERE device_id = 'door9'",
                         (json.dumps([{"ref": "b2-snap.jpg", "sha256": digest, "size": len(photo)}]),))
        w1, w2, pm = [await bearer(client, n) for n in ("worker1", "worker2", "pm")]
        assert (await client.get("/api/evidence/b2-snap.jpg", headers=w2)).content == photo
        assert (await client.get("/api/evidence/b2-snap.jpg", headers=pm)).status_code == 200
        r = await client.get("/api/evidence/b2-snap.jpg", headers=w1)
        assert r.status_code == 404  # another grid's evidence: as if it did not exist
        assert (await client.get("/api/evidence/no-such.jpg", headers=w1)).status_code == 404
        assert (await client.get("/api/evidence/b2-snap.jpg")).status_code == 401
        # A worker sees their own upload (a check-in photo before it is attached), not another worker's.
        mine = b"\xff\xd8 check-in"
        r = await client.post("/api/evidence/w1-photo.jpg", content=mine,
                              headers={**w1, "X-Content-SHA256": hashlib.sha256(mine).hexdigest()})
        assert r.status_code == 201
        assert (await client.get("/api/evidence/w1-photo.jpg", headers=w1)).status_code == 200
        assert (await client.get("/api/evidence/w1-photo.jpg", headers=w2)).status_code == 404
        # Sites: only the worker's site, their grid and their buildings; no gateway inventory.
        assert [s["id"] for s in (await client.get("/api/sites", headers=w1)).json()] == ["s1"]
        site = (await client.get("/api/sites/s1", headers=w1)).json()
        assert [b["building"] for b in site["buildings"]] == ["B1"]
        assert [g["id"] for g in site["grids"]] == ["g1"] and site["gateways"] == []
        full = (await client.get("/api/sites/s1", headers=pm)).json()
        assert {b["building"] for b in full["buildings"]} == {"B1", "B2"} and full["gateways"]
