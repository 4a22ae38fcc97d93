"""Commands are checked against the device's profile at the API: a bad argument is refused at once (422 with the
field and the allowed range) and nothing is published; retry_safe defaults to the profile's safe_to_retry."""

from __future__ import annotations

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.integration

PASSWORD = "password-123"  # the backend fixture's (conftest.py)


async def login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_out_of_range_argument_is_refused_at_the_api(backend, db):
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        pm = await login(client, "pm")
        sent_before = len(backend.recorder.sent)
        r = await client.post("/api/commands", headers=pm,
                              json={"device_id": "elev1", "command": "hold_doors", "args": {"duration_s": 9000}})
        assert r.status_code == 422, r.text
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["body", "args", "duration_s"]
        assert problem["msg"] == "argument 'duration_s': 9000 is above the maximum 600"
        assert problem["ctx"]["min"] == 1 and problem["ctx"]["max"] == 600 and problem["ctx"]["type"] == "int"

        r = await client.post("/api/commands", headers=pm, json={"device_id": "elev1", "command": "fly"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "command"]
        assert "profile acme-em200 has no command 'fly'" in r.json()["detail"][0]["msg"]

        r = await client.post("/api/commands", headers=pm,
                              json={"device_id": "elev1", "command": "hold_doors", "args": {"seconds": 5}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "args", "seconds"]
        assert len(backend.recorder.sent) == sent_before  # nothing went to the gateway

        # Valid: accepted; retry_safe comes from the profile (acme-em200 hold_doors: safe_to_retry: true) …
        r = await client.post("/api/commands", headers=pm,
                              json={"device_id": "elev1", "command": "hold_doors", "args": {"duration_s": 30}})
        assert r.status_code == 202, r.text
        assert r.json()["retry_safe"] is True
        # … a command the profile does not mark safe to retry is not re-sent (acme-dc100 unlock) …
        r = await client.post("/api/commands", headers=pm, json={"device_id": "door1", "command": "unlock"})
        assert r.status_code == 202, r.text
        assert r.json()["retry_safe"] is False
        # … and an explicit choice wins.
        r = await client.post("/api/commands", headers=pm,
                              json={"device_id": "elev1", "command": "release_doors", "retry_safe": False})
        assert r.status_code == 202 and r.json()["retry_safe"] is False


async def test_device_with_a_profile_the_backend_does_not_know_is_left_to_its_gateway(backend, db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (id, gateway_id, profile_id, site_id, building, state) "
                     "VALUES ('pt9', 'gw1', 'vendor-own-pt', 's1', 'B1', 'online')")
    async with httpx.AsyncClient(base_url=backend.base_url) as client:
        pm = await login(client, "pm")
        r = await client.post("/api/commands", headers=pm,
                              json={"device_id": "pt9", "command": "zero", "args": {"x": 1}})
        assert r.status_code == 202, r.text
        assert r.json()["retry_safe"] is False
