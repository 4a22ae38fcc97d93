"""The installer's probe through the gateway, with every real part: simulated Modbus devices (pymodbus, from
the profiles), the gateway agent polling them, Mosquitto, the ingest worker, PostgreSQL and the backend
(API + decision engine). ``POST /api/devices/{id}/probe`` sends the gateway's probe command; the gateway
reads every point through its running poller and answers per point. A right profile passes with the values
the device holds; a profile with the wrong word order fails on the plausible range, with the reason; an
unplugged device fails every point with the connection's reason. The installer page shows the table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from conftest import rows, until

from cloud.alarms.testkit import migrate_all
from cloud.api.config import ApiConfig
from cloud.config import BackendConfig, DecisionConfig
from cloud.db import DatabaseConfig
from cloud.ingest.config import IngestConfig, MqttConfig
from cloud.ingest.worker import IngestWorker
from cloud.serve import Backend
from device_profiles import SHIPPED_DIR, CompiledProfile, load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig
from simulators.modbus import ModbusDeviceServer
from simulators.vendor_devices import TianlanGasDetector

from .conftest import PASSWORD, SECRET, add_users, free_port
from .test_console_browser import log_in

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples" / "profiles"
VALUES = {"pressure": 0.85, "status.low_pressure": True, "status.signal": 12, "water_temperature": 18.5,
          "supply_voltage": 24.0, "low_alarm_threshold": 300}
PROFILE_POINTS = [p.name for p in CompiledProfile(load_catalog([EXAMPLES]).get("acme-hp30")).points]




@dataclass
class Stack:
    base_url: str
    dsn: str
    site: str
    good: str  # right profile
    swapped: str  # the same device, read with a profile whose word order is wrong
    unplugged: str  # nothing listens at its address
    gas: str  # an MQTT device (the vendor gas detector's simulator), probed from the bridge's latest message


def wrong_word_order(folder: Path) -> Path:
    text = (EXAMPLES / "acme-hp30.yaml").read_text(encoding="utf-8")
    text = text.replace("id: acme-hp30", "id: acme-hp30-abcd").replace("  word_order: little", "  word_order: big")
    folder.mkdir(exist_ok=True)
    (folder / "acme-hp30-abcd.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
async def stack(tmp_path: Path, pg_dsn: str, mqtt_broker: Any, site_id: str) -> AsyncIterator[Stack]:
    migrate_all(pg_dsn)
    await add_users(pg_dsn)
    own = wrong_word_order(tmp_path / "profiles")
    catalog = load_catalog([SHIPPED_DIR, EXAMPLES, own])
    gw = f"{site_id}-gw"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        layout = {"buildings": [{"id": "B1", "name": "1号楼", "floors": 6, "basement_floors": 0, "units_per_floor": 2}]}
        conn.execute("INSERT INTO sites (id, name, timezone, layout) VALUES (%s, '探测小区', 'Asia/Shanghai', %s)",
                     (site_id, json.dumps(layout)))
    worker = IngestWorker(DatabaseConfig(dsn=pg_dsn, flavour="native"), IngestConfig.model_validate({
        "mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port}, "client_id": f"ing-{site_id}",
        "group": f"g{site_id}", "site": site_id, "batch_max_wait_ms": 30, "session_expiry_s": 60,
    }))
    worker.start()
    backend = Backend(BackendConfig(
        database=DatabaseConfig(dsn=pg_dsn, pool_max=6),
        mqtt=MqttConfig(host=mqtt_broker.host, port=mqtt_broker.port),
        decision=DecisionConfig(client_id=f"dec-{site_id}"),
        api=ApiConfig(port=free_port(), jwt_secret=SECRET, evidence_dir=tmp_path / "evidence"),
    ), run_timers=False)
    await backend.start()
    hp = catalog.get("acme-hp30")
    agent_task: asyncio.Task[None] | None = None
    try:
        await until(worker.subscribed.is_set, "ingest subscribed")
        async with ModbusDeviceServer(hp, unit=1) as dev1, ModbusDeviceServer(hp, unit=1) as dev2:
            for dev in (dev1, dev2):
                for name, value in VALUES.items():
                    dev.set(name, value)

            def device(dev_id: str, profile: str, port: int, floor: int) -> dict[str, Any]:
                return {"id": dev_id, "profile": profile, "name": f"{floor}F 消火栓压力",
                        "location": {"site": site_id, "building": "B1", "floor": floor},
                        "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit": 1},
                        "poll_interval_s": 0.5}

            p = f"{site_id}-"
            config = GatewayConfig.model_validate({
                "gateway_id": gw, "site": site_id, "uplink": {"url": mqtt_broker.url},
                "outbox": {"path": str(tmp_path / "outbox.sqlite3")}, "metrics_port": None,
                "polling": {"backoff_initial_s": 0.2, "backoff_max_s": 2},
                "devices": [device(f"{p}hp1", "acme-hp30", dev1.endpoint[1], 2),
                            device(f"{p}hp2", "acme-hp30-abcd", dev2.endpoint[1], 3),
                            device(f"{p}hp3", "acme-hp30", free_port(), 4),
                            {"id": f"{p}gas1", "profile": "tianlan-gv40", "location": {"site": site_id,
                             "building": "B1", "floor": 1, "unit": "101"}, "connection": {"kind": "mqtt"}}],
            })
            gas = TianlanGasDetector(f"{p}gas1", mqtt_broker.host, mqtt_broker.port, report_s=0.5)
            gas.start()
            agent = GatewayAgent(config, catalog, with_video=False)
            agent_task = asyncio.create_task(agent.run())
            await until(lambda: rows(pg_dsn, "SELECT count(*) FROM devices WHERE gateway_id = %s", gw)[0][0] == 4,
                        "the gateway's birth registered its devices")
            await until(lambda: agent.rules[f"{p}hp1"].online, "the device polled")
            try:
                yield Stack(f"http://127.0.0.1:{backend.config.api.port}", pg_dsn, site_id, f"{p}hp1", f"{p}hp2",
                            f"{p}hp3", f"{p}gas1")
            finally:
                gas.stop()
            agent.stop()
            await asyncio.wait_for(agent_task, 20)
    finally:
        if agent_task is not None and not agent_task.done():
            agent_task.cancel()
        await backend.stop()
        worker.stop()


async def login(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    r = await client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_probe_through_the_gateway(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        installer = await login(client, "installer")
        r = await client.post(f"/api/devices/{stack.good}/probe", params={"wait_s": 40}, headers=installer)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["done"] and out["state"] == "succeeded" and out["ok"] is True, out
        points = {p["name"]: p for p in out["points"]}
        assert list(points) == PROFILE_POINTS  # every point, in the profile's order
        assert all(p["ok"] and p["reason"] is None for p in points.values())
        assert points["pressure"]["value"] == pytest.approx(0.85, abs=1e-6)
        assert points["pressure"]["shown"] == "0.85" and points["pressure"]["unit"] == "MPa"
        assert points["pressure"]["label"] == "管网压力"
        assert points["status.low_pressure"]["value"] is True and points["status.sensor_fault"]["value"] is False
        assert points["status.signal"]["value"] == 12
        assert points["water_temperature"]["value"] == pytest.approx(18.5, abs=0.05)
        assert points["low_alarm_threshold"]["value"] == 300
        # the page polls the same result by id; the audit log has who asked and what came back
        again = await client.get(f"/api/devices/{stack.good}/probe/{out['command_id']}", headers=installer)
        assert again.json()["points"] == out["points"]
        audit = rows(stack.dsn, "SELECT action, actor, detail FROM audit_log WHERE target_id = %s ORDER BY id",
                     stack.good)
        assert [(a, actor) for a, actor, _ in audit] == [("device.probe", "installer"),
                                                        ("device.probe.result", f"gateway:{stack.site}-gw")]
        assert audit[1][2]["state"] == "succeeded" and audit[1][2]["failed"] == 0
        assert rows(stack.dsn, "SELECT state FROM commands WHERE id = %s", out["command_id"]) == [("succeeded",)]

        # the wrong word order decodes the pressure as an implausible number: FAIL, with the range in the reason
        r = await client.post(f"/api/devices/{stack.swapped}/probe", params={"wait_s": 40}, headers=installer)
        bad = r.json()
        assert bad["state"] == "failed" and bad["ok"] is False, bad
        failed = {p["name"]: p["reason"] for p in bad["points"] if not p["ok"]}
        assert "plausible minimum 0.01" in failed["pressure"] and "word_order" in failed["pressure"], failed
        assert "pressure" in bad["reason"]
        assert {p["name"] for p in bad["points"] if p["ok"]} >= {"status.low_pressure", "status.signal"}

        # nothing at the unplugged device's address: every point FAILs with the connection's reason
        r = await client.post(f"/api/devices/{stack.unplugged}/probe", params={"wait_s": 40}, headers=installer)
        gone = r.json()
        assert gone["state"] == "failed" and gone["points"], gone
        assert all(not p["ok"] and "connect" in p["reason"] for p in gone["points"])
        assert "connect" in gone["reason"]

        # an MQTT device: decoded from the latest message the gateway's bridge has (its vendor key/value report)
        r = await client.post(f"/api/devices/{stack.gas}/probe", params={"wait_s": 40}, headers=installer)
        mq = r.json()
        assert mq["state"] == "succeeded", mq
        got = {p["name"]: p for p in mq["points"]}
        assert got["gas.concentration"]["value"] == 3.5 and got["gas.concentration"]["label"] == "可燃气体浓度"
        assert got["valve.state"]["value"] == "open" and got["rssi_dbm"]["value"] == -67
        assert got["gas.concentration"]["source"] == f"tl/{stack.gas}/up $.data[?@.k=='gas'].v"

        # without waiting: the answer comes later, the page asks by command id until it is done
        r = await client.post(f"/api/devices/{stack.good}/probe", params={"wait_s": 0}, headers=installer)
        assert r.status_code == 200 and r.json()["state"] in ("queued", "sent", "succeeded"), r.text
        cid = r.json()["command_id"]

        async def answered() -> dict[str, Any] | None:
            got = (await client.get(f"/api/devices/{stack.good}/probe/{cid}", headers=installer)).json()
            return got if got["done"] else None

        later = None
        for _ in range(300):
            if (later := await answered()) is not None:
                break
            await asyncio.sleep(0.1)
        assert later is not None and later["ok"] and len(later["points"]) == len(PROFILE_POINTS)
        assert len(rows(stack.dsn, "SELECT 1 FROM audit_log WHERE action = 'device.probe.result' "
                                   "AND detail->>'command_id' = %s", cid)) == 1

        # a property manager may look but not probe; an unknown device is a 404
        pm = await login(client, "pm")
        assert (await client.post(f"/api/devices/{stack.good}/probe", headers=pm)).status_code == 403
        assert (await client.post("/api/devices/nope/probe", headers=installer)).status_code == 404


async def test_installer_page_probes_through_the_gateway(stack: Stack, chromium: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    ctx = await chromium.new_context(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
    page = await ctx.new_page()
    page.set_default_timeout(40_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{stack.base_url}/install")
    await log_in(page, "installer")

    # the good device: every point passes, values at the profile's precision, labels from the profile
    await page.locator("select[name=existing]").select_option(stack.good)
    checklist = page.locator("#checklist")
    await checklist.locator("#probe").click()
    table = checklist.locator("#probe-table")
    await expect(checklist.locator("#probe-summary")).to_contain_text("全部通过")
    await expect(table.locator("tbody tr.probe-pass")).to_have_count(len(PROFILE_POINTS))
    pressure = table.locator('tr[data-point="pressure"]')
    await expect(pressure).to_contain_text("管网压力")
    await expect(pressure.locator(".probe-value")).to_have_text("0.85 MPa")
    await expect(table.locator('tr[data-point="status.low_pressure"] .probe-value')).to_have_text("是")
    await expect(checklist.locator('[data-check="probe"]')).to_have_class("check passed")
    await page.screenshot(path=str(tmp_path / "probe-pass.png"), full_page=True)

    # the wrong word order: the pressure FAILs with the reason, in English after the switch
    await page.click("#lang")
    await page.locator("select[name=existing]").select_option(stack.swapped)
    await expect(checklist.locator("#probe")).to_have_text("Probe")
    await checklist.locator("#probe").click()
    await expect(checklist.locator("#probe-summary")).to_contain_text("1 points failed")
    bad = table.locator('tr[data-point="pressure"]')
    await expect(bad).to_have_class("probe-fail")
    await expect(bad.locator(".probe-verdict")).to_have_text("fail")
    await expect(bad).to_contain_text("管网压力")  # the profile's own label
    await expect(bad.locator(".probe-reason")).to_contain_text("plausible minimum 0.01")
    await expect(checklist.locator('[data-check="probe"]')).to_have_class("check failed")
    await page.screenshot(path=str(tmp_path / "probe-fail.png"), full_page=True)
    assert not errors, errors
    await ctx.close()
