"""API test fixtures: a running backend with one user per role (db, pool, clock from tests/cloud/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from contract.clock import FakeClock

SECRET = "api-test-secret-0123456789abcdefghijkl"
GATEWAY_TOKEN = "gw-upload-token-0123456789"
PASSWORD = "password-123"
USERS = {
    "admin": ("admin", None),
    "pm": ("property_manager", None),
    "worker1": ("grid_worker", "g1"),
    "worker2": ("grid_worker", "g2"),
    "installer": ("installer", None),
}


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.sent.append((topic, payload))


@pytest.fixture
async def backend(db: str, clock: FakeClock, tmp_path: Any) -> AsyncIterator[Any]:
    import socket
    from datetime import timedelta

    import psycopg

    from cloud.api.config import ApiConfig
    from cloud.auth.roles import Role
    from cloud.auth.store import add_user
    from cloud.config import BackendConfig
    from cloud.db import DatabaseConfig
    from cloud.serve import Backend

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now(),))
        conn.execute("UPDATE gateways SET last_seen = %s", (clock.now(),))
        conn.execute(
            "INSERT INTO roster (username, grid_id, starts_at, ends_at) VALUES ('worker1', 'g1', %s, %s)",
            (clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=8)),
        )
    config = BackendConfig(
        database=DatabaseConfig(dsn=db, pool_max=4),
        api=ApiConfig(
            port=free_port(), jwt_secret=SECRET, evidence_dir=tmp_path / "evidence", gateway_upload_token=GATEWAY_TOKEN
        ),
    )
    recorder = Recorder()
    b = Backend(config, clock=clock, publisher=recorder, run_timers=False)
    await b.start()
    assert b.pool is not None
    async with b.pool.connection() as conn:
        for name, (role, grid) in USERS.items():
            await add_user(conn, name, PASSWORD, Role(role), grid_id=grid)
    b.recorder = recorder  # type: ignore[attr-defined]
    b.base_url = f"http://127.0.0.1:{config.api.port}"  # type: ignore[attr-defined]
    try:
        yield b
    finally:
        await b.stop()
