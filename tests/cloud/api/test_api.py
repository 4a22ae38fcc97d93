"""The API against a real server (uvicorn) and PostgreSQL: the role × endpoint matrix, grid scoping,
alarm actions with audit, work orders through their whole life, evidence upload, the WebSocket stream."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import httpx
import psycopg
import pytest
import websockets

from cloud.alarms.testkit import insert_event

pytestmark = pytest.mark.integration

# The same values as the ``backend`` fixture in conftest.py (conftest modules cannot be imported).
GATEWAY_TOKEN = "gw-upload-token-0123456789"
PASSWORD = "password-123"
USERS = ("admin", "pm", "worker1", "worker2", "installer")


async def login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


# (method, path, body, roles allowed). Paths use ids seeded per test (alarm 1, order 1).
MATRIX: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/api/users", None, {"admin"}),
    ("POST", "/api/users", {"username": "new1", "password": "abcdefgh1", "role": "installer"}, {"admin"}),
    ("GET", "/api/sites", None, {"admin", "pm", "worker1", "installer"}),
    ("POST", "/api/sites", {"id": "s9", "name": "x"}, {"admin"}),
    ("GET", "/api/devices", None, {"admin", "pm", "installer"}),
    (
        "POST",
        "/api/devices",
        {
            "id": "door77",
            "profile_id": "acme-dc100",
            "gateway_id": "gw1",
            "site_id": "s1",
            "building": "B1",
            "floor": 2,
        },
        {"admin", "installer"},
    ),
    ("GET", "/api/telemetry/door1", None, {"admin", "pm", "installer"}),
    ("GET", "/api/telemetry/door1/latest", None, {"admin", "pm", "installer"}),
    ("GET", "/api/telemetry/door1/samples", None, {"admin", "pm", "installer"}),
    ("GET", "/api/alarms", None, {"admin", "pm", "worker1"}),
    ("POST", "/api/alarms/1/comments", {"text": "on my way"}, {"admin", "pm", "worker1"}),
    ("POST", "/api/alarms/1/assign", {"assignee": "worker1"}, {"admin", "pm"}),
    ("POST", "/api/alarms/1/ack", None, {"admin", "pm"}),
    ("POST", "/api/alarms/1/clear", {"reason": "test"}, {"admin", "pm"}),
    ("GET", "/api/incidents", None, {"admin", "pm"}),
    ("POST", "/api/commands", {"device_id": "elev1", "command": "fire_recall"}, {"admin", "pm"}),
    ("GET", "/api/commands", None, {"admin", "pm", "installer"}),
    ("GET", "/api/orders", None, {"admin", "pm", "worker1"}),
    ("POST", "/api/orders", {"site_id": "s1", "type": "repair", "title": "t", "building": "B1"}, {"admin", "pm"}),
    ("POST", "/api/orders/1/accept", None, {"admin", "worker1"}),
    ("POST", "/api/orders/1/close", None, {"admin", "pm"}),
    ("GET", "/api/roster", None, {"admin", "pm"}),
    ("GET", "/api/suppressions", None, {"admin", "pm"}),
    ("GET", "/api/audit", None, {"admin", "pm"}),
]


async def test_role_endpoint_matrix(backend, db):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_event(conn, "door1", "door.forced_open", severity="major")  # → alarm 1 + order 1 (worker1, grid g1)
    async with httpx.AsyncClient(base_url=backend.base_url) as client:

        async def order_exists() -> bool:
            r = await client.get("/api/orders", headers=await login(client, "admin"))
            return bool(r.json())

        await wait_for(order_exists)
        headers = {name: await login(client, name) for name in USERS}
        for method, path, body, allowed in MATRIX:
            for name in ("admin", "pm", "worker1", "installer"):
                r = await client.request(method, path, json=body, headers=headers[name])
                if name in allowed:
                    assert r.status_code not in (401, 403), f"{name} refused {method} {path}: {r.text}"
                else:
                    assert r.status_code == 403, f"{name} allowed {method} {path}: {r.status_code} {r.text}"
        # No token at all: 401 everywhere.
        for method, path, body, _ in MATRIX:
            r = await client.request(method, path, json=body)
            assert r.status_code == 401, f"anonymous {method} {path}: {r.status_code}"
        bad = {"Authorization": "Bearer nonsense"}
        assert (await client.get("/api/alarms", headers=bad)).status_code == 401


async def test_grid_worker_sees_only_their_grid(backend, db):
    with psycopg.connect(db, autocommit=True) as conn:
        insert_event(conn, "door1", "door.forced_open", severity="major")  # B1 → grid g1
        insert_event(conn, "door9", "door.forced_open", severity="major")  # B2 → grid g2
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        admin = await login(client, "admin")

        async def two_alarms() -> bool:
            return len((await client.get("/api/alarms", headers=admin)).json()) == 2

        await wait_for(two_alarms)
        alarms = {a["building"]: a["id"] for a in (await client.get("/api/alarms", headers=admin)).json()}
        w1, w2 = await login(client, "worker1"), await login(client, "worker2")
        assert [a["building"] for a in (await client.get("/api/alarms", headers=w1)).json()] == ["B1"]
        assert [a["building"] for a in (await client.get("/api/alarms", headers=w2)).json()] == ["B2"]
        assert (await client.get(f"/api/alarms/{alarms['B2']}", headers=w1)).status_code == 404
        assert (
            await client.post(f"/api/alarms/{alarms['B2']}/comments", json={"text": "x"}, headers=w1)
        ).status_code == 404
        orders1 = (await client.get("/api/orders", headers=w1)).json()
        orders2 = (await client.get("/api/orders", headers=w2)).json()
        assert [o["building"] for o in orders1] == ["B1"]
        assert [o["building"] for o in orders2] == ["B2"]
        assert (await client.get(f"/api/orders/{orders2[0]['id']}", headers=w1)).status_code == 404
        # A worker cannot act on another worker's order.
        assert (await client.post(f"/api/orders/{orders2[0]['id']}/accept", headers=w1)).status_code == 404


async def test_alarm_actions_orders_and_stream(backend, db, clock):
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        pm, w1 = await login(client, "pm"), await login(client, "worker1")
        token = w1["Authorization"].split()[1]
        port = backend.base_url.rsplit(":", 1)[1]
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/ws?token={token}") as ws:
            await asyncio.sleep(0.1)
            with psycopg.connect(db, autocommit=True) as conn:
                insert_event(conn, "elev1", "elevator.entrapment", detail={"between_floors": True})
                insert_event(conn, "door9", "door.tamper", severity="minor")  # grid g2: not for worker1
            seen: list[dict[str, Any]] = []
            while not any(c["kind"] == "work_order" for c in seen):
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            assert all(c.get("building") in ("B1", None) for c in seen)
            alarm = next(c for c in seen if c["kind"] == "alarm")["data"]
            assert alarm["type"] == "elevator.entrapment"

            r = await client.post(f"/api/alarms/{alarm['id']}/ack", headers=pm)
            assert r.status_code == 200 and r.json()["acked_by"] == "pm"
            assert (await client.post(f"/api/alarms/{alarm['id']}/ack", headers=pm)).status_code == 409
            change = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (change["kind"], change["op"]) == ("alarm", "acknowledged")

        order = (await client.get("/api/orders", headers=w1)).json()[0]
        assert (order["type"], order["assignee"], order["state"]) == ("entrapment", "worker1", "assigned")
        oid = order["id"]
        # Check-in photo: uploaded with sha256, then referenced.
        photo = b"\xff\xd8\xff fake jpeg bytes"
        digest = hashlib.sha256(photo).hexdigest()
        r = await client.post(
            "/api/evidence/checkin-1.jpg",
            content=photo,
            headers={**w1, "X-Content-SHA256": digest, "Content-Type": "image/jpeg"},
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            "/api/evidence/bad.jpg",
            content=photo,
            headers={"X-Gateway-Token": GATEWAY_TOKEN, "X-Content-SHA256": "0" * 64},
        )
        assert r.status_code == 422 and "sha256 mismatch" in r.text
        r = await client.post(
            "/api/evidence/snap-1.jpg",
            content=photo,
            headers={"X-Gateway-Token": GATEWAY_TOKEN, "X-Content-SHA256": digest},
        )
        assert r.status_code == 201
        r = await client.get("/api/evidence/snap-1.jpg", headers=pm)
        assert r.status_code == 200 and r.content == photo
        assert (
            await client.get("/api/evidence/snap-1.jpg", headers=await login(client, "installer"))
        ).status_code == 403

        for path, body in [
            (f"/api/orders/{oid}/accept", None),
            (f"/api/orders/{oid}/arrive", {"photo": "checkin-1.jpg"}),
            (f"/api/orders/{oid}/resolve", {"note": "passenger freed", "evidence": ["checkin-1.jpg"]}),
        ]:
            r = await client.post(path, json=body, headers=w1)
            assert r.status_code == 200, r.text
        assert (await client.post(f"/api/orders/{oid}/close", headers=w1)).status_code == 403
        r = await client.post(f"/api/orders/{oid}/reopen", json={"reason": "no photo of the car"}, headers=pm)
        assert r.json()["state"] == "assigned"
        for path, body in [
            (f"/api/orders/{oid}/accept", None),
            (f"/api/orders/{oid}/arrive", {}),
            (f"/api/orders/{oid}/resolve", {"note": "photo added"}),
        ]:
            assert (await client.post(path, json=body, headers=w1)).status_code == 200
        r = await client.post(f"/api/orders/{oid}/close", headers=pm)
        assert r.json()["state"] == "closed"
        detail = (await client.get(f"/api/orders/{oid}", headers=pm)).json()
        assert [t["kind"] for t in detail["timeline"]][-1] == "close"

        # Manual command: published, then its status.
        r = await client.post("/api/commands", json={"device_id": "elev2", "command": "fire_recall"}, headers=pm)
        assert r.status_code == 202 and r.json()["state"] == "sent"
        assert backend.recorder.sent[-1][0] == "xq/v1/s1/gw1/cmd"

        audit = (await client.get("/api/audit", headers=pm)).json()
        actions = {(a["actor"], a["action"]) for a in audit}
        assert {
            ("pm", "alarm.ack"),
            ("pm", "work_order.close"),
            ("pm", "work_order.reopen"),
            ("worker1", "work_order.accept"),
            ("pm", "command.issue"),
            ("engine", "work_order.assign"),
        } <= actions


async def test_ws_refuses_bad_token_and_installer(backend):
    port = backend.base_url.rsplit(":", 1)[1]
    with pytest.raises(websockets.exceptions.WebSocketException):
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/ws?token=garbage") as ws:
            await asyncio.wait_for(ws.recv(), 5)
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        token = (await login(client, "installer"))["Authorization"].split()[1]
        assert (await client.get("/api/openapi.json")).json()["paths"]["/api/alarms"]
    with pytest.raises(websockets.exceptions.WebSocketException):
        async with websockets.connect(f"ws://127.0.0.1:{port}/api/ws?token={token}") as ws:
            await asyncio.wait_for(ws.recv(), 5)


async def test_text_valued_telemetry_is_readable(backend, db):
    """Enum states and other text travel in value_text: the raw endpoints return them with their quality."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT xq_ensure_telemetry_partition(now()::date)")
        conn.execute(
            "INSERT INTO telemetry (ts, device_id, point, value, value_text, quality) VALUES "
            "(now() - interval '2 s', 'door1', 'lock.mode', NULL, 'normal', 0), "
            "(now() - interval '1 s', 'door1', 'lock.mode', NULL, 'released', 0), "
            "(now(), 'door1', 'battery_pct', NULL, 'E1', 2)"
        )
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        headers = await login(client, "pm")
        latest = (await client.get("/api/telemetry/door1/latest", headers=headers)).json()
        assert {(r["point"], r["value"], r["value_text"], r["quality"]) for r in latest} == {
            ("lock.mode", None, "released", "good"), ("battery_pct", None, "E1", "bad")}
        samples = (await client.get("/api/telemetry/door1/samples?point=lock.mode", headers=headers)).json()
        assert [r["value_text"] for r in samples] == ["released", "normal"]
