"""The serve process records when an alarm's raise first reached a console (the drill report's "shown")."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import psycopg
import pytest
import websockets

from cloud.alarms.testkit import insert_event

pytestmark = pytest.mark.integration

PASSWORD = "password-123"  # the backend fixture's (conftest.py)


async def _token(base_url: str, name: str) -> str:
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


async def _next_raise(ws: websockets.ClientConnection) -> dict:
    while True:
        change = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if change["kind"] == "alarm" and change["op"] == "raised":
            return change


def _shown(db: str, alarm_id: int) -> list[tuple]:
    with psycopg.connect(db) as conn:
        return conn.execute("SELECT actor, ts FROM alarm_timeline WHERE alarm_id = %s AND kind = 'shown'",
                            (alarm_id,)).fetchall()


async def test_first_push_of_a_raise_goes_into_the_alarm_timeline(backend, db):
    port = backend.base_url.rsplit(":", 1)[1]
    pm, admin = await _token(backend.base_url, "pm"), await _token(backend.base_url, "admin")
    async with websockets.connect(f"ws://127.0.0.1:{port}/api/ws?token={pm}") as ws_pm, \
            websockets.connect(f"ws://127.0.0.1:{port}/api/ws?token={admin}") as ws_admin:
        with psycopg.connect(db, autocommit=True) as conn:
            insert_event(conn, "smoke1", "smoke.alarm")
        raised = await _next_raise(ws_pm)
        await _next_raise(ws_admin)
        alarm_id = int(raised["id"])
        deadline = time.monotonic() + 10
        while not _shown(db, alarm_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    rows = _shown(db, alarm_id)
    assert len(rows) == 1  # the first push only, whichever console got it first
    assert rows[0][0] in ("pm", "admin")
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        detail = (await client.get(f"/api/alarms/{alarm_id}", headers={"Authorization": f"Bearer {pm}"})).json()
    assert [t["kind"] for t in detail["timeline"]] == ["raised", "shown"]
