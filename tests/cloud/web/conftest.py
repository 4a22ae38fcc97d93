"""Console test fixtures: a compound with building B3 (18 floors, smoke detectors on F12, doors, lifts), a
running backend (uvicorn + PostgreSQL + decision engine) and Chromium driven by Playwright."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloud.alarms.testkit import migrate_all

SITE = "cq"
GATEWAY = "gw-b3"
PASSWORD = "password-123"
SECRET = "console-test-secret-0123456789abcdefgh"
GATEWAY_TOKEN = "gw-upload-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USERS = {
    "admin": ("admin", None),
    "pm": ("property_manager", None),
    "worker1": ("grid_worker", "g-b3"),
    "installer": ("installer", None),
}
# id, profile, building, floor, unit, name
DEVICES: list[tuple[str, str, str, int | None, str | None, str]] = [
    ("b3-fp", "gst-fp200", "B3", 1, None, "3号楼消防主机"),
    ("b3-f12-sd1", "acme-sd10", "B3", 12, None, "12F 东走廊烟感"),
    ("b3-f12-sd2", "acme-sd10", "B3", 12, None, "12F 西走廊烟感"),
    ("b3-f11-sd1", "acme-sd10", "B3", 11, None, "11F 东走廊烟感"),
    ("b3-f12-door", "acme-dc100", "B3", 12, "1203", "1203 门禁"),
    ("b3-door", "acme-dc100", "B3", 1, None, "3号楼大门"),
    ("b3-el1", "acme-em200", "B3", None, None, "1号梯"),
    ("b3-el2", "acme-em200", "B3", None, None, "2号梯"),
    ("b1-door", "acme-dc100", "B1", 1, None, "1号楼大门"),
    ("b1-f3-sd1", "acme-sd10", "B1", 3, None, "3F 烟感"),
]
LAYOUT = {
    "buildings": [
        {"id": f"B{i}", "name": f"{i}号楼", "floors": 18, "basement_floors": 0, "units_per_floor": 4}
        for i in range(1, 5)
    ]
}
HEALTH = {
    "outbox_depth": {"alarm": 0, "event": 2, "telemetry": 137},
    "outbox_bytes": 40960,
    "uplink_connected": True,
    "devices_online": 7,
    "devices_offline": 1,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_compound(dsn: str) -> None:
    """The compound as the registry holds it after onboarding, with one health report from the gateway."""
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sites (id, name, timezone, layout) VALUES (%s, '测试小区', 'Asia/Shanghai', %s)",
            (SITE, json.dumps(LAYOUT)),
        )
        conn.execute(
            "INSERT INTO grids (id, site_id, name, buildings) VALUES ('g-b3', %s, '三号楼网格', '{B3}'), "
            "('g-b1', %s, '一号楼网格', '{B1}')",
            (SITE, SITE),
        )
        conn.execute(
            "INSERT INTO gateways (id, site_id, state, last_seen, software, health, health_at) "
            "VALUES (%s, %s, 'online', %s, 'xiaoqu-edge 0.1', %s, %s)",
            (GATEWAY, SITE, now, json.dumps(HEALTH), now),
        )
        for dev, profile, building, floor, unit, name in DEVICES:
            state = "offline" if dev == "b1-f3-sd1" else "online"
            conn.execute(
                "INSERT INTO devices (id, gateway_id, profile_id, site_id, building, floor, unit, name, state, "
                "last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (dev, GATEWAY, profile, SITE, building, floor, unit, name, state, now - timedelta(seconds=30)),
            )


async def add_users(dsn: str) -> None:
    from psycopg import AsyncConnection

    from cloud.auth.roles import Role
    from cloud.auth.store import add_user

    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        for name, (role, grid) in USERS.items():
            await add_user(conn, name, PASSWORD, Role(role), grid_id=grid, full_name=f"{name} 测试")


class Recorder:
    """Stands in for the MQTT publisher: the linkage commands the engine sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.sent.append((topic, payload))


@pytest.fixture
def compound_db(pg_dsn: str) -> str:
    migrate_all(pg_dsn)
    seed_compound(pg_dsn)
    return pg_dsn


@pytest.fixture
async def console_backend(compound_db: str, tmp_path: Path) -> AsyncIterator[Any]:
    from cloud.api.config import ApiConfig
    from cloud.config import BackendConfig
    from cloud.db import DatabaseConfig
    from cloud.serve import Backend

    await add_users(compound_db)
    config = BackendConfig(
        database=DatabaseConfig(dsn=compound_db, pool_max=6),
        api=ApiConfig(
            port=free_port(), jwt_secret=SECRET, evidence_dir=tmp_path / "evidence", gateway_upload_token=GATEWAY_TOKEN
        ),
    )
    recorder = Recorder()
    backend = Backend(config, publisher=recorder, run_timers=False)
    await backend.start()
    backend.recorder = recorder  # type: ignore[attr-defined]
    backend.base_url = f"http://127.0.0.1:{config.api.port}"  # type: ignore[attr-defined]
    try:
        yield backend
    finally:
        await backend.stop()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does it)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
