"""The console in a real browser (Debian's Chromium driven by Playwright) against the real backend
(uvicorn + PostgreSQL + the decision engine) during a fire drill in building B3: smoke on F12 appears live
with its profile label and the alarm tone playing; the map highlights B3 F12; the incident lists its linkage
commands as succeeded; the manager dispatches, the grid worker on a phone-sized screen accepts, arrives,
uploads a photo and resolves, and the manager closes the order. Screenshots of every page go to the test's
tmp_path. Fails (never skips) without Chromium."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import httpx
import numpy as np
import psycopg
import pytest
from playwright.async_api import Page, expect

from cloud.alarms.testkit import insert_ack, insert_event
from cloud.ingest.maintenance import refresh_rollups
from tests.cloud.web.conftest import GATEWAY, GATEWAY_TOKEN, PASSWORD, SITE

pytestmark = pytest.mark.integration


def png(text: str, color: tuple[int, int, int] = (0, 0, 200)) -> bytes:
    img = np.zeros((120, 200, 3), np.uint8)
    img[:, :] = color
    cv2.putText(img, text, (8, 64), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf.tobytes())


def rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def insert_event_with_evidence(conn: psycopg.Connection[Any], device: str, etype: str, ref: dict[str, Any]) -> str:
    """What ingest does (cloud.alarms.testkit.insert_event) for an event that carries an evidence reference."""
    eid = str(uuid.uuid4())
    with conn.transaction():
        conn.execute(
            "INSERT INTO events (id, gateway_id, seq, device_id, type, severity, active, life_safety, ts, detail, "
            "evidence) VALUES (%s, %s, 1, %s, %s, 'critical', true, true, %s, '{}', %s)",
            (eid, GATEWAY, device, etype, datetime.now(UTC), json.dumps([ref])),
        )
        conn.execute("SELECT pg_notify('xq_events', %s)", (json.dumps({"events": [eid]}),))
    return eid


def telemetry_around(conn: psycopg.Connection[Any], device: str, now: datetime) -> None:
    """Obscuration readings for the last 20 minutes as ingest writes them, then the backend's rollup refresh."""
    start = now - timedelta(minutes=20)
    for day in {start.date(), now.date()}:
        conn.execute("SELECT xq_ensure_telemetry_partition(%s)", (day,))
    for i in range(0, 20 * 60, 30):
        ts = start + timedelta(seconds=i)
        value = 0.4 + (6.0 * (i - 900) / 300 if i > 900 else 0.0)
        conn.execute(
            "INSERT INTO telemetry (ts, device_id, point, value) VALUES (%s, %s, 'smoke.obscuration', %s), "
            "(%s, %s, 'battery_pct', 87)",
            (ts, device, value, ts, device),
        )
    conn.execute("INSERT INTO telemetry_dirty (lo, hi) VALUES (%s, %s)", (start, now + timedelta(minutes=1)))
    refresh_rollups(conn)


async def shot(page: Page, out: Path, name: str) -> None:
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)


async def log_in(page: Page, user: str) -> None:
    await page.fill("#login input[name=username]", user)
    await page.fill("#login input[name=password]", PASSWORD)
    await page.click("#login button[type=submit]")
    await expect(page.locator("#login")).to_be_hidden()


async def test_fire_drill_in_the_console(console_backend: Any, compound_db: str, chromium: Any, tmp_path: Path) -> None:
    base, dsn = console_backend.base_url, compound_db
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/api/auth/token", data={"username": "pm", "password": PASSWORD})
        pm = {"Authorization": f"Bearer {r.json()['access_token']}"}

        ctx = await chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        page = await ctx.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{base}/")
        # Chinese first: the log-in form and, once in, the navigation.
        await expect(page.locator("#login h2")).to_have_text("物业管理员登录")
        await log_in(page, "pm")
        await expect(page.locator("#live")).to_have_text("实时")
        await expect(page.locator("#nav a[data-route=map]")).to_have_text("地图")
        await expect(page.locator("#empty")).to_be_visible()
        await page.evaluate("window.__sameDocument = true")
        assert await page.evaluate("document.getElementById('siren').paused") is True

        # Readings before the alarm (rollups), the snapshot uploaded as the gateway does, then the event.
        now = datetime.now(UTC)
        with psycopg.connect(dsn, autocommit=True) as conn:
            telemetry_around(conn, "b3-f12-sd1", now)
        snap = png("SMOKE B3 F12")
        digest = hashlib.sha256(snap).hexdigest()
        r = await client.post(
            "/api/evidence/b3-f12-snap.png",
            content=snap,
            headers={"X-Gateway-Token": GATEWAY_TOKEN, "X-Content-SHA256": digest, "Content-Type": "image/png"},
        )
        assert r.status_code == 201, r.text
        with psycopg.connect(dsn, autocommit=True) as conn:
            insert_event_with_evidence(
                conn,
                "b3-f12-sd1",
                "smoke.alarm",
                {"ref": "b3-f12-snap.png", "content_type": "image/png", "sha256": digest, "size": len(snap)},
            )

        # Live, no reload: the row with the profile's label (烟雾报警, not smoke.alarm), the banner, the tone.
        row = page.locator("#alarms tbody tr", has_text="b3-f12-sd1")
        await expect(row).to_have_count(1)
        assert await page.evaluate("window.__sameDocument") is True
        await expect(row.locator("td.type")).to_have_text("烟雾报警")
        await expect(row).to_contain_text("B3 12层")
        await expect(row.locator(".sev")).to_have_text("紧急")
        assert "smoke.alarm" not in await page.locator("#alarms").inner_text()
        await expect(page.locator("#banner")).to_be_visible()
        await expect(page.locator("#banner-text")).to_contain_text("烟雾报警")
        await page.wait_for_function(
            "() => document.body.dataset.siren === 'playing' && !document.getElementById('siren').paused"
            " && document.getElementById('siren').currentTime > 0"
        )
        await page.wait_for_function("() => document.title.startsWith('【烟雾报警】')")
        # Time in the compound's zone, 24-hour.
        alarm_id = int(await row.get_attribute("data-id") or 0)
        last_ts = datetime.fromisoformat(rows(dsn, "SELECT last_ts::text FROM alarms WHERE id = %s", alarm_id)[0][0])
        await expect(row).to_contain_text(last_ts.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S"))

        # The fire panel's zone 12 (its loop on F12; the panel itself sits in the fire control room on F1)
        # confirms the fire: incident, linkage commands to B3's doors and lifts. The zone's alarm is on F12.
        with psycopg.connect(dsn, autocommit=True) as conn:
            insert_event(
                conn,
                "b3-fp",
                "fire.alarm",
                gw=GATEWAY,
                key="fire.alarm#12",
                detail={"zone": "12"},
                location={"building": "B3", "floor": 12},
            )
        await expect(page.locator("#alarms tbody tr")).to_have_count(2)
        panel_row = page.locator("#alarms tbody tr", has_text="b3-fp")
        await expect(panel_row.locator("td.type")).to_have_text("火警 · 回路 12")
        await expect(panel_row).to_contain_text("B3 12层")
        sent = await _wait_rows(dsn, "SELECT id, device_id FROM commands WHERE state = 'sent' ORDER BY device_id", 4)
        assert sorted(d for _, d in sent) == ["b3-door", "b3-el1", "b3-el2", "b3-f12-door"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            for cid, device in sent:
                insert_ack(conn, str(cid), device, "succeeded", gw=GATEWAY)
        await _wait_rows(dsn, "SELECT id FROM commands WHERE state = 'succeeded'", 4)

        # Alarm detail: snapshot, readings chart (uPlot, from the rollups), timeline in Chinese.
        await row.click()
        detail = page.locator("#detail")
        await expect(detail.locator("h2")).to_contain_text("烟雾报警")
        await page.wait_for_function("() => document.querySelector('#detail .evidence img')?.naturalWidth === 200")
        await expect(detail.locator(".readings .chart canvas").first).to_be_visible()
        await expect(detail.locator(".readings .u-title").first).to_have_text("减光率 (%/m)")
        await expect(detail.locator(".timeline")).to_contain_text("产生 系统")
        await detail.locator("form.comment input").fill("已通知消控室复核")
        await detail.locator("form.comment button").click()
        await expect(detail.locator(".comments")).to_contain_text("已通知消控室复核")
        await shot(page, tmp_path, "01-alarm-board")

        # Acknowledge both from the board: the tone stops and the banner goes.
        for left in (1, 0):
            await page.locator("#alarms button.ack").first.click()
            await expect(page.locator("#alarms button.ack")).to_have_count(left)
        await expect(page.locator("#banner")).to_be_hidden()
        await page.wait_for_function("() => document.getElementById('siren').paused")
        assert rows(dsn, "SELECT count(*) FROM alarms WHERE acknowledged AND acked_by = 'pm'") == [(2,)]

        # Filters: building and severity.
        await page.select_option("select[name=building]", "B1")
        await expect(page.locator("#alarms tbody tr")).to_have_count(0)
        await page.select_option("select[name=building]", "B3")
        await page.select_option("select[name=severity]", "critical")
        await expect(page.locator("#alarms tbody tr")).to_have_count(2)

        # Map: compound → B3 (alarmed) → F12 highlighted, the alarmed detectors red on the floor plan.
        await page.click("#nav a[data-route=map]")
        tile = page.locator('svg.compound g.building[data-building="B3"]')
        await expect(tile).to_have_class("building alarmed sev-critical")
        await expect(page.locator("svg.compound g.building.alarmed")).to_have_count(1)
        await shot(page, tmp_path, "02-map-compound")
        await tile.click()
        await expect(page.locator("svg.building-view g.floor.alarmed")).to_have_count(1)
        await expect(page.locator('svg.building-view g.floor.alarmed[data-floor="12"]')).to_have_count(1)
        # The panel's zone-12 alarm is pinned on F12 (the panel itself is drawn on F1, red).
        await expect(page.locator('svg.building-view g.floor[data-floor="12"] g.pin')).to_have_count(1)
        await expect(page.locator('svg.building-view g.floor[data-floor="1"] circle.marker.alarm')).to_have_count(1)
        await shot(page, tmp_path, "03-map-building-B3")
        await page.locator('svg.building-view g.floor[data-floor="12"]').click()
        await expect(page.locator("svg.floor-plan.alarmed")).to_have_attribute("data-floor", "12")
        plan = page.locator("svg.floor-plan")
        await expect(plan.locator('g.device[data-device="b3-f12-sd1"] circle.marker.alarm')).to_have_count(1)
        await expect(plan.locator('g.device[data-device="b3-f12-sd2"] circle.marker.online')).to_have_count(1)
        await expect(plan.locator("g.pin")).to_have_count(1)
        await expect(plan.locator('g.device[data-device="b3-f12-door"] circle.marker.online')).to_have_count(1)
        await shot(page, tmp_path, "04-map-floor-B3-F12")

        # Incident: the two signals, the four linkage commands succeeded, the timeline.
        incident_id = rows(dsn, "SELECT id FROM incidents")[0][0]
        await page.click("#nav a[data-route=incidents]")
        await page.locator(f'#incidents tr[data-id="{incident_id}"]').click()
        inc = page.locator("section.incident")
        await expect(inc.locator("h2")).to_contain_text("火灾 (已确认)")
        await expect(inc.locator("#signals tr")).to_have_count(2)
        await expect(inc.locator("#signals")).to_contain_text("火警 · 回路 12")
        await expect(inc.locator("#signals")).to_contain_text("烟雾报警")
        await expect(inc.locator("#commands tr")).to_have_count(4)
        await expect(inc.locator("#commands .cmd-state", has_text="成功")).to_have_count(4)
        await expect(inc.locator("#commands")).to_contain_text("消防迫降")
        await expect(inc.locator(".timeline")).to_contain_text("事件开启")
        await shot(page, tmp_path, "05-incident")

        # Dispatch the incident's work order from the alarm detail to worker1.
        await page.goto(f"{base}/#/alarms/{alarm_id}")
        form = page.locator("#detail form.assign-order")
        await expect(form).to_have_count(1)
        await form.locator("select[name=assignee]").select_option("worker1")
        await form.locator("button[type=submit]").click()
        await expect(form).to_contain_text("指派给 worker1")
        order_id = int(await form.get_attribute("data-order") or 0)
        r = await client.get(f"/api/orders/{order_id}", headers=pm)
        assert (r.json()["state"], r.json()["assignee"]) == ("assigned", "worker1")

        # The grid worker's phone: accept → where to go → arrive with a photo → resolve with a note and a photo.
        phone_ctx = await chromium.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, locale="zh-CN"
        )
        phone = await phone_ctx.new_page()
        phone.set_default_timeout(10_000)
        phone.on("pageerror", lambda exc: errors.append(str(exc)))
        await phone.goto(f"{base}/worker")
        await log_in(phone, "worker1")
        card = phone.locator(f'.order[data-id="{order_id}"]')
        await expect(card.locator(".title")).to_contain_text("火灾处置")
        await expect(card.locator(".state")).to_have_text("已派")
        await expect(card.locator(".sla")).to_contain_text("内接单")
        await expect(card.locator(".loc")).to_have_text("B3 12层")
        await shot(phone, tmp_path, "06-worker-queue")
        await card.get_by_role("button", name="接单").click()
        await expect(card.locator(".state")).to_have_text("已接单")
        await expect(card.locator(".sla")).to_contain_text("内到场")
        await card.get_by_role("button", name="去哪里").click()
        await expect(card.locator('.where svg.floor-plan[data-floor="12"]')).to_be_visible()
        photo_in = card.locator("input[type=file][capture=environment]")
        assert await photo_in.get_attribute("accept") == "image/*"
        await photo_in.set_input_files(
            files=[{"name": "arrive.png", "mimeType": "image/png", "buffer": png("ARRIVED", (0, 120, 0))}]
        )
        await expect(card.locator(".photos img")).to_have_count(1)
        await shot(phone, tmp_path, "07-worker-where-to-go")
        await card.get_by_role("button", name="到场签到").click()
        await expect(card.locator(".state")).to_have_text("已到场")
        await expect(card.locator(".photos img")).to_have_count(0)
        await card.locator("textarea[name=note]").fill("12层东走廊烟感误报，现场无明火，已复位")
        await card.locator("input[type=file]").set_input_files(
            files=[{"name": "done.png", "mimeType": "image/png", "buffer": png("RESOLVED", (120, 0, 0))}]
        )
        await expect(card.locator(".photos img")).to_have_count(1)
        await shot(phone, tmp_path, "08-worker-resolve")
        await card.get_by_role("button", name="完成处理").click()
        await expect(card.locator(".state")).to_have_text("已处理")
        order = (await client.get(f"/api/orders/{order_id}", headers=pm)).json()
        assert order["state"] == "resolved"
        assert order["arrival_photo"] and order["arrival_photo"].endswith(".jpg")
        assert len(order["evidence"]) == 1 and order["evidence"][0].endswith(".jpg")
        photo = await client.get(f"/api/evidence/{order['evidence'][0]}", headers=pm)
        assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"  # re-encoded as JPEG on the phone
        assert [t["kind"] for t in order["timeline"]][-3:] == ["accept", "arrive", "resolve"]
        await shot(phone, tmp_path, "09-worker-resolved")

        # The manager sees it resolved (live), with the photos, and closes it.
        await page.click("#nav a[data-route=orders]")
        orow = page.locator(f'#orders tr[data-id="{order_id}"]')
        await expect(orow.locator(".state")).to_have_text("已处理")
        await expect(orow).to_contain_text("现场无明火")
        await expect(orow.locator(".photos img")).to_have_count(2)
        await orow.locator("button.close-order").click()
        await expect(orow.locator(".state")).to_have_text("已关闭")
        assert (await client.get(f"/api/orders/{order_id}", headers=pm)).json()["state"] == "closed"
        await shot(page, tmp_path, "10-orders")

        # Device health: the gateway's uplink and outbox depth from its health report; an offline device.
        await page.click("#nav a[data-route=devices]")
        gw = page.locator(f'#gateways tr[data-id="{GATEWAY}"]')
        await expect(gw.locator(".uplink")).to_have_text("已连接")
        await expect(gw.locator(".outbox")).to_have_text("0 / 2 / 137")
        await expect(page.locator('#device-list tr[data-id="b1-f3-sd1"] .state')).to_have_text("离线")
        await shot(page, tmp_path, "11-devices")

        # Audit log: the acknowledgement, the dispatch and the closure are there.
        await page.click("#nav a[data-route=audit]")
        audit = page.locator("#audit")
        for action in ("alarm.ack", "work_order.assign", "work_order.close"):
            await expect(audit.locator("td", has_text=action).first).to_be_visible()
        await shot(page, tmp_path, "12-audit")

        # English is one click away and stays chosen after a reload.
        await page.click("#lang")
        await expect(page.locator("#nav a[data-route=map]")).to_have_text("Map")
        await page.evaluate("location.hash = '#/alarms'")
        await page.reload()
        assert await page.evaluate("window.__sameDocument") is None  # a real reload
        await expect(page.locator("#nav a[data-route=alarms]")).to_have_text("Alarms")
        types = page.locator("#alarms td.type")
        await expect(types).to_have_text(["Fire alarm · 火警 · zone 12", "Smoke alarm · 烟雾报警"])
        await expect(page.locator("#live")).to_have_text("live")
        await shot(page, tmp_path, "13-english")
        assert errors == []
        await ctx.close()
        await phone_ctx.close()
        assert SITE == "cq"


async def _wait_rows(dsn: str, sql: str, n: int) -> list[tuple[Any, ...]]:
    import asyncio

    for _ in range(300):
        got = rows(dsn, sql)
        if len(got) >= n:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} rows from {sql!r}, got {rows(dsn, sql)}")


async def test_installer_registers_and_commissions_a_detector(
    console_backend: Any, compound_db: str, chromium: Any, tmp_path: Path
) -> None:
    base, dsn = console_backend.base_url, compound_db
    errors: list[str] = []
    ctx = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = await ctx.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{base}/install")
    await expect(page.locator("#login h2")).to_have_text("安装人员登录")
    await log_in(page, "installer")

    # Pick the profile, bind to B3 F13 unit 1302 on the building's gateway.
    form = page.locator("#register")
    await form.locator("select[name=profile_id]").select_option("acme-sd10")
    await form.locator("input[name=id]").fill("b3-f13-sd1")
    await expect(form.locator("input[name=gateway_id]")).to_have_value(GATEWAY)
    await form.locator("select[name=building]").select_option("B3")
    await form.locator("input[name=floor]").fill("13")
    await form.locator("input[name=unit]").fill("1302")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#registered")).to_have_text("已登记 b3-f13-sd1")
    assert rows(dsn, "SELECT building, floor, unit, gateway_id FROM devices WHERE id = 'b3-f13-sd1'") == [
        ("B3", 13, "1302", GATEWAY)
    ]
    checklist = page.locator("#checklist")
    await expect(checklist.locator(".check")).to_have_count(4)
    await expect(checklist.locator("#points tr.pt-missing")).to_have_count(7)  # every acme-sd10 point
    await expect(checklist.locator('[data-check="event:smoke.test"]')).to_contain_text("按下测试按键，等待「测试」到达")
    await expect(checklist.locator('[data-check="probe"]')).to_contain_text("经网关探测每个点位")
    await expect(checklist.locator("#probe")).to_have_text("探测")

    # The detector comes online: its first report carries every point, the signal strength read badly;
    # then its test press arrives (all as ingest stores them).
    def report(conn: psycopg.Connection[Any], rssi_quality: int) -> None:
        now = datetime.now(UTC)
        conn.execute("SELECT xq_ensure_telemetry_partition(%s)", (now.date(),))
        values = {"smoke.alarm": 0, "smoke.obscuration": 0.2, "test_button": 0, "tamper": 0, "fault": 0,
                  "battery_pct": 96, "rssi_dbm": -71}  # fmt: skip
        for point, value in values.items():
            quality = rssi_quality if point == "rssi_dbm" else 0
            conn.execute(
                "INSERT INTO telemetry (ts, device_id, point, value, quality) VALUES (%s, 'b3-f13-sd1', %s, %s, %s)",
                (now, point, value, quality),
            )
        conn.execute("UPDATE devices SET state = 'online', last_seen = %s WHERE id = 'b3-f13-sd1'", (now,))

    with psycopg.connect(dsn, autocommit=True) as conn:
        report(conn, rssi_quality=2)
    await expect(checklist.locator('#points tr[data-point="rssi_dbm"] .pt-status')).to_have_text("读取失败")
    await expect(checklist.locator('#points tr[data-point="battery_pct"]')).to_contain_text("96 %")
    await expect(checklist.locator("#points tr.pt-good")).to_have_count(6)
    await expect(checklist.locator('[data-check="points"]')).not_to_have_class("check passed")
    with psycopg.connect(dsn, autocommit=True) as conn:
        report(conn, rssi_quality=0)
        insert_event(conn, "b3-f13-sd1", "smoke.test", severity="info", gw=GATEWAY)
    await expect(checklist.locator("#points tr.pt-good")).to_have_count(7)
    await expect(checklist.locator(".check.passed")).to_have_count(3)
    await expect(checklist.locator('[data-check="points"]')).to_contain_text("每个点位读取正常 (7/7)")
    await checklist.locator("textarea[name=note]").fill("13F 1302 门口吸顶安装")
    await checklist.locator("#record").click()
    await expect(checklist.locator("#recorded")).to_contain_text("调试结果已记入审计日志 (通过)")
    await shot(page, tmp_path, "14-installer")
    [(actor, detail)] = rows(
        dsn, "SELECT actor, detail FROM audit_log WHERE action = 'device.commission' AND target_id = 'b3-f13-sd1'"
    )
    assert actor == "installer" and detail["passed"] is True
    assert [c["passed"] for c in detail["checks"]] == [True, True, True]
    assert detail["location"] == {"building": "B3", "floor": 13, "unit": "1302"}
    assert rows(dsn, "SELECT action FROM audit_log WHERE target_id = 'b3-f13-sd1' ORDER BY id") == [
        ("device.register",),
        ("device.commission",),
    ]
    assert errors == []
    await ctx.close()
