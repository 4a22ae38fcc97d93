"""Schemathesis against the running API: every operation, valid and invalid cases, a token per role.

A short run (one case per operation × mode × role); ``bench/fuzz.py`` runs the long one. A 5xx fails.
"""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from bench._fuzz_targets import fuzz_api
from cloud.alarms.testkit import insert_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "password-123"  # as in conftest.py


async def test_no_server_error_for_any_role(backend, db):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_event(conn, "door1", "door.forced_open", severity="major")
    auth: dict[str, dict[str, str]] = {"anonymous": {}}
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        for name in ("admin", "pm", "worker1", "installer"):
            r = await client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
            auth[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    # schemathesis calls are blocking (requests): run them off the loop that serves the API.
    got = await asyncio.to_thread(fuzz_api, backend.base_url, auth, 1)
    assert got.requests >= 100
    assert got.server_errors == []
    assert any(400 <= s < 500 for s in got.statuses) and any(200 <= s < 300 for s in got.statuses)
