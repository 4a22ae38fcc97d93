"""The web UI in a real headless browser (Debian's Chromium driven by Playwright) against the real backend
(uvicorn + PostgreSQL + the decision engine): the property manager logs in, an alarm raised by the engine
appears on the board live (no reload), its detail shows the timeline and the evidence image, the
Acknowledge button acknowledges it (checked through the API); a grid worker on /worker accepts, checks in
and resolves a work order. Fails (never skips) when Chromium or Playwright is missing."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import psycopg
import pytest
from playwright.async_api import async_playwright, expect

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "password-123"  # the backend fixture's (tests/cloud/api/conftest.py)
GATEWAY_TOKEN = "gw-upload-token-0123456789"
SCREENSHOT = Path(os.environ.get("XQ_DASHBOARD_SCREENSHOT", "/tmp/dashboard.png"))


def snapshot_png() -> bytes:
    """A real (decodable) PNG: the browser must be able to render it."""
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :, 2] = 200  # red
    cv2.putText(img, "SMOKE B1 F3", (8, 50), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf.tobytes())


def insert_event_with_evidence(conn: psycopg.Connection[Any], device: str, etype: str, evidence: dict[str, Any]) -> str:
    """What ingest does (as cloud.alarms.testkit.insert_event), with an evidence reference on the event."""
    eid = str(uuid.uuid4())
    with conn.transaction():
        conn.execute(
            "INSERT INTO events (id, gateway_id, seq, device_id, type, severity, active, life_safety, ts, detail, "
            "evidence) VALUES (%s, 'gw1', 1, %s, %s, 'critical', true, true, %s, '{}', %s)",
            (eid, device, etype, datetime.now(UTC), json.dumps([evidence])),
        )
        conn.execute("SELECT pg_notify('xq_events', %s)", (json.dumps({"events": [eid]}),))
    return eid


async def login(client: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_dashboard_and_worker_view_in_chromium(backend: Any, db: str) -> None:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does it)"
    base = backend.base_url
    errors: list[str] = []
    async with async_playwright() as pw, httpx.AsyncClient(base_url=base) as client:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pm = await login(client, "pm")
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(10_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{base}/")

            # Log in as the property manager; the board is empty and the live stream connected.
            await page.fill("#login input[name=username]", "pm")
            await page.fill("#login input[name=password]", PASSWORD)
            await page.click("#login button[type=submit]")
            await expect(page.locator("#who")).to_contain_text("pm (property_manager)")
            await expect(page.locator("#live")).to_have_text("live")
            await expect(page.locator("#login")).to_be_hidden()
            await expect(page.locator("#empty")).to_be_visible()
            await page.evaluate("window.__sameDocument = true")

            # Evidence bytes uploaded as a gateway would, then the event that refers to them.
            png = snapshot_png()
            digest = hashlib.sha256(png).hexdigest()
            r = await client.post(
                "/api/evidence/web-snap-1.png",
                content=png,
                headers={"X-Gateway-Token": GATEWAY_TOKEN, "X-Content-SHA256": digest, "Content-Type": "image/png"},
            )
            assert r.status_code == 201, r.text
            with psycopg.connect(db, autocommit=True) as conn:
                insert_event_with_evidence(
                    conn,
                    "smoke1",
                    "smoke.alarm",
                    {"ref": "web-snap-1.png", "content_type": "image/png", "sha256": digest, "size": len(png)},
                )

            # The engine raises the alarm; it arrives over the WebSocket, not by reloading.
            row = page.locator("#alarms tbody tr", has_text="smoke.alarm")
            await expect(row).to_have_count(1)
            alarm_id = int(await row.get_attribute("data-id") or 0)
            assert await page.evaluate("window.__sameDocument") is True
            await expect(page.locator("#feed")).to_contain_text(f"alarm #{alarm_id} raised")
            await expect(row).to_contain_text("smoke1")
            await expect(row).to_contain_text("B1 / F3")
            badge = row.locator(".sev")
            await expect(badge).to_have_text("critical")
            assert await badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(200, 30, 30)"

            # Detail: timeline and the evidence image (fetched with the bearer token).
            await row.click()
            detail = page.locator("#detail")
            await expect(detail).to_be_visible()
            await expect(detail.locator("h2")).to_have_text(f"#{alarm_id} smoke.alarm")
            await expect(detail.locator(".timeline")).to_contain_text("raised by engine")

            # Acknowledge through the button; the API agrees.
            await row.locator("button.ack").click()
            await expect(row).to_contain_text("acknowledged by pm")
            await expect(row.locator("button.ack")).to_have_count(0)
            await expect(detail.locator(".timeline")).to_contain_text("acknowledged by pm")
            r = await client.get(f"/api/alarms/{alarm_id}", headers=pm)
            assert (r.json()["acknowledged"], r.json()["acked_by"]) == (True, "pm")

            link = detail.locator(".evidence a", has_text="web-snap-1.png")
            assert await link.get_attribute("href") == "/api/evidence/web-snap-1.png"
            await link.click()
            await expect(detail.locator(".evidence img")).to_be_visible()
            await page.wait_for_function("() => document.querySelector('.evidence img').naturalWidth === 160")
            assert "null" not in await detail.inner_text()
            await page.screenshot(path=str(SCREENSHOT), full_page=True)

            # The grid worker's phone view: an order for worker1 → accept → arrive → resolve with a note.
            r = await client.post(
                "/api/orders",
                json={
                    "site_id": "s1",
                    "type": "inspection",
                    "title": "Check smoke detector B1 F3",
                    "building": "B1",
                    "floor": 3,
                    "alarm_id": alarm_id,
                    "assignee": "worker1",
                },
                headers=pm,
            )
            assert r.status_code == 201, r.text
            order_id = r.json()["id"]
            phone = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            phone.set_default_timeout(10_000)
            phone.on("pageerror", lambda exc: errors.append(str(exc)))
            await phone.goto(f"{base}/worker")
            await phone.fill("#login input[name=username]", "worker1")
            await phone.fill("#login input[name=password]", PASSWORD)
            await phone.click("#login button[type=submit]")
            await expect(phone.locator("#login")).to_be_hidden()
            card = phone.locator(f'.order[data-id="{order_id}"]')
            await expect(card).to_contain_text("Check smoke detector B1 F3")
            await expect(card.locator(".state")).to_have_text("assigned")
            await card.get_by_role("button", name="Accept").click()
            await expect(card.locator(".state")).to_have_text("accepted")
            await card.get_by_role("button", name="Arrived").click()
            await expect(card.locator(".state")).to_have_text("arrived")
            await card.locator("textarea[name=note]").fill("detector cleaned, no fire")
            await card.get_by_role("button", name="Resolve").click()
            await expect(card.locator(".state")).to_have_text("resolved")
            r = await client.get(f"/api/orders/{order_id}", headers=pm)
            order = r.json()
            assert (order["state"], order["resolution_note"]) == ("resolved", "detector cleaned, no fire")
            assert [t["kind"] for t in order["timeline"]][-3:] == ["accept", "arrive", "resolve"]
            await phone.screenshot(path=str(SCREENSHOT.with_name("worker.png")))
            assert errors == []
        finally:
            await browser.close()
