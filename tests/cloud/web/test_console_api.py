"""The console's read routes against the real backend: labels from the shipped profiles, the layout (floors,
alarmed floors, grid scoping), the time zone check, device health, readings around an alarm, workers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from cloud.alarms.testkit import insert_event
from cloud.web.labels import labels
from device_profiles import SHIPPED_DIR, load_catalog
from tests.cloud.web.conftest import GATEWAY, PASSWORD
from tests.cloud.web.test_console_browser import telemetry_around

pytestmark = pytest.mark.integration


def test_labels_come_from_the_profiles() -> None:
    out = labels(load_catalog([SHIPPED_DIR]))
    types = out.event_types
    assert types["fire.alarm"].label == "火警"
    assert types["smoke.alarm"].label == "烟雾报警"
    assert types["elevator.entrapment"].label == "平层关人 / 非平层关人"  # two rows, told apart by detail
    assert types["gateway.offline"].model_dump() == {
        "label": "网关离线", "en": "Gateway offline", "severity": None, "life_safety": False, "source": "builtin",
    }  # fmt: skip
    em = out.profiles["acme-em200"]
    rows = [e for e in em.events if e.type == "elevator.entrapment"]
    assert [(e.key, e.label, e.detail) for e in rows] == [
        ("elevator.entrapment.at_floor", "平层关人", {"between_floors": False}),
        ("elevator.entrapment.between_floors", "非平层关人", {"between_floors": True}),
    ]
    panel_fire = next(e for e in out.profiles["gst-fp200"].events if e.type == "fire.alarm")
    assert panel_fire.key == "fire.alarm#{n}"
    assert {c.name: c.label for c in em.commands}["fire_recall"].startswith("消防迫降")
    fp = out.profiles["gst-fp200"]
    assert {"name": "zone{n}.fire", "label": "火警", "unit": None, "enum": None} in [p.model_dump() for p in fp.points]


async def login(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    r = await client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def wait_alarm(client: httpx.AsyncClient, auth: dict[str, str], device: str) -> dict[str, Any]:
    for _ in range(200):
        found = [a for a in (await client.get("/api/alarms", headers=auth)).json() if a["device_id"] == device]
        if found:
            return dict(found[0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no alarm for {device}")


async def test_console_routes(console_backend: Any, compound_db: str) -> None:
    dsn = compound_db
    async with httpx.AsyncClient(base_url=console_backend.base_url) as client:
        pm, worker, admin = [await login(client, u) for u in ("pm", "worker1", "admin")]
        now = datetime.now(UTC)
        with psycopg.connect(dsn, autocommit=True) as conn:
            telemetry_around(conn, "b3-f12-sd1", now)
            insert_event(conn, "b3-f12-sd1", "smoke.alarm", gw=GATEWAY)
            insert_event(conn, "b1-f3-sd1", "smoke.low_battery", severity="warning", gw=GATEWAY)
        alarm = await wait_alarm(client, pm, "b3-f12-sd1")
        await wait_alarm(client, pm, "b1-f3-sd1")

        # Layout: declared buildings (4 × 18 floors), B3's alarmed floor, device markers with their alarm.
        r = await client.get("/api/sites/cq/layout", headers=pm)
        assert r.status_code == 200, r.text
        lay = r.json()
        assert lay["site"] == {"id": "cq", "name": "测试小区", "timezone": "Asia/Shanghai"}
        assert [b["id"] for b in lay["buildings"]] == ["B1", "B2", "B3", "B4"]
        b3 = next(b for b in lay["buildings"] if b["id"] == "B3")
        assert b3["floors"] == list(range(18, 0, -1))
        assert (b3["name"], b3["units_per_floor"], b3["worst_severity"]) == ("3号楼", 4, "critical")
        assert b3["alarmed_floors"] == [{"floor": 12, "severity": "critical"}]
        b1 = next(b for b in lay["buildings"] if b["id"] == "B1")
        assert (b1["alarmed_floors"], b1["offline"]) == ([{"floor": 3, "severity": "warning"}], 1)
        sd1 = next(d for d in lay["devices"] if d["id"] == "b3-f12-sd1")
        assert (sd1["alarm_type"], sd1["alarm_severity"], sd1["alarm_acked"]) == ("smoke.alarm", "critical", False)

        # A grid worker sees their grid's building only (B3), and no alarm of B1.
        lay_w = (await client.get("/api/sites/cq/layout", headers=worker)).json()
        assert [b["id"] for b in lay_w["buildings"]] == ["B3"]
        assert {d["building"] for d in lay_w["devices"]} == {"B3"}

        # Layout and time zone are set by an admin; a zone name that does not exist is refused with the reason.
        bad = await client.put("/api/sites/cq/layout", json={"timezone": "Asia/Beijing"}, headers=admin)
        assert bad.status_code == 422 and "unknown time zone 'Asia/Beijing'" in bad.text
        assert (await client.put("/api/sites/cq/layout", json={}, headers=pm)).status_code == 403
        ok = await client.put(
            "/api/sites/cq/layout",
            json={"timezone": "Asia/Urumqi", "buildings": [{"id": "B3", "name": "三号楼", "floors": 20}]},
            headers=admin,
        )
        assert ok.status_code == 200, ok.text
        lay = (await client.get("/api/sites/cq/layout", headers=pm)).json()
        assert lay["site"]["timezone"] == "Asia/Urumqi"
        b3 = next(b for b in lay["buildings"] if b["id"] == "B3")
        assert (b3["name"], b3["floors"][0]) == ("三号楼", 20)
        assert [b["id"] for b in lay["buildings"]] == ["B1", "B3"]  # B2, B4 no longer declared, no devices

        # Health: the gateway's report and device counts.
        h = (await client.get("/api/console/health?site_id=cq", headers=pm)).json()
        [gw] = h["gateways"]
        assert gw["health"]["outbox_depth"] == {"alarm": 0, "event": 2, "telemetry": 137}
        assert (gw["devices"], gw["online"], gw["offline"]) == (10, 9, 1)
        assert (await client.get("/api/console/health", headers=worker)).status_code == 403

        # Readings around the alarm: the varying analogue point first, from the 1-minute rollups.
        rd = (await client.get(f"/api/alarms/{alarm['id']}/readings?minutes=30", headers=pm)).json()
        assert rd["resolution"] == "1m" and rd["profile_id"] == "acme-sd10"
        window = [datetime.fromisoformat(rd[k]) for k in ("from", "event_ts", "to")]
        assert window == sorted(window)  # the window around the alarm
        assert [s["point"] for s in rd["series"]] == ["smoke.obscuration", "battery_pct"]
        obsc = rd["series"][0]
        assert len(obsc["ts"]) >= 19 and max(v for v in obsc["max"] if v is not None) > 5
        assert (await client.get(f"/api/alarms/{alarm['id']}/readings", headers=worker)).status_code == 403

        # Workers a manager can dispatch to.
        ws = (await client.get("/api/console/workers", headers=pm)).json()
        assert ws == [{"username": "worker1", "full_name": "worker1 测试", "grid_id": "g-b3", "on_duty": False}]

        # The tone and the pages.
        wav = await client.get("/sound/alarm.wav")
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF" and wav.headers["content-type"] == "audio/wav"
        for path in ("/", "/worker", "/install", "/js/console.js", "/vendor/uplot/uPlot.esm.js"):
            assert (await client.get(path)).status_code == 200, path
