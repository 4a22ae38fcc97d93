"""The real uploader against the real backend API (FastAPI + PostgreSQL): bytes and sha256 round-trip, the
backend down at first, an uploader restart with pending files, and a camera event through the gateway agent."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from edge_agent_helpers import FakeClock, FakeOutbox

from cloud.alarms.testkit import migrate_all
from contract.messages import Event
from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig
from edge.evidence import EvidenceConfig, EvidenceQueue, EvidenceUploader
from edge.video import VideoEvent

pytestmark = pytest.mark.integration

SECRET = "evidence-test-secret-0123456789abcdef"
GATEWAY_TOKEN = "gw-evidence-token-0123456789"
PASSWORD = "password-123"


@pytest.fixture(scope="module")
def db(pg_session_dsn: str) -> str:
    migrate_all(pg_session_dsn)
    return pg_session_dsn


class Recorder:
    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        pass


@asynccontextmanager
async def backend(db: str, port: int, evidence_dir: Path) -> AsyncIterator[Callable[[str], Any]]:
    """The backend on ``port``; yields ``get(ref) -> httpx.Response`` authenticated as an admin."""
    from cloud.api.config import ApiConfig
    from cloud.auth.roles import Role
    from cloud.auth.store import add_user
    from cloud.config import BackendConfig
    from cloud.db import DatabaseConfig
    from cloud.serve import Backend

    config = BackendConfig(
        database=DatabaseConfig(dsn=db, pool_max=2),
        api=ApiConfig(port=port, jwt_secret=SECRET, evidence_dir=evidence_dir, gateway_upload_token=GATEWAY_TOKEN),
    )
    b = Backend(config, publisher=Recorder(), run_timers=False)
    await b.start()
    user = f"ev{uuid.uuid4().hex[:10]}"
    try:
        assert b.pool is not None
        async with b.pool.connection() as conn:
            await add_user(conn, user, PASSWORD, Role.ADMIN)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
            r.raise_for_status()
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

            async def get(ref: str) -> httpx.Response:
                return await client.get(f"/api/evidence/{ref}", headers=auth)

            yield get
    finally:
        await b.stop()


def evidence_config(port: int, **kw: Any) -> EvidenceConfig:
    return EvidenceConfig.model_validate({"url": f"http://127.0.0.1:{port}/api/evidence", "token": GATEWAY_TOKEN,
                                          "backoff_initial_s": 0.05, "backoff_max_s": 0.3, "timeout_s": 5, **kw})


def jpeg(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0" + hashlib.sha256(str(seed).encode()).digest() * 200 + b"\xff\xd9")
    return path


async def wait_for(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running(uploader: EvidenceUploader) -> AsyncIterator[None]:
    task = asyncio.create_task(uploader.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


async def test_backend_down_at_first_then_uploaded_and_readable(db: str, tmp_path: Path, spool: Path) -> None:
    port = free_port()
    queue = EvidenceQueue(spool, budget_bytes=10**7, cap_bytes=2 * 10**7)
    uploader = EvidenceUploader(evidence_config(port), queue)
    refs = [queue.add(jpeg(tmp_path / f"s{i}.jpg", i), ref=f"gw1-{uuid.uuid4().hex}.jpg", device="cam1",
                      event="fire_lane.blocked", protected=i == 0) for i in range(3)]
    async with running(uploader):
        uploader.wake()
        await wait_for(lambda: uploader.failures_in_a_row >= 2, "failed attempts while the backend is down")
        assert queue.counts()["pending"] == 3
        async with backend(db, port, tmp_path / "backend-evidence") as get:
            await wait_for(lambda: queue.counts()["uploaded"] == 3, "uploads after the backend came up")
            for ref in refs:
                r = await get(ref.ref)
                assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
                assert hashlib.sha256(r.content).hexdigest() == ref.sha256 and len(r.content) == ref.size
            # the backend is idempotent on a re-upload of the same bytes: the uploader would see 2xx again
            async with httpx.AsyncClient() as c:
                body = (spool / "files" / refs[0].ref).read_bytes()
                again = await c.post(f"http://127.0.0.1:{port}/api/evidence/{refs[0].ref}", content=body,
                                     headers={"X-Gateway-Token": GATEWAY_TOKEN, "X-Content-SHA256": refs[0].sha256})
                assert again.is_success
    queue.close()


async def test_restart_with_pending_files_uploads_them(db: str, tmp_path: Path, spool: Path) -> None:
    port = free_port()
    queue = EvidenceQueue(spool, budget_bytes=10**7, cap_bytes=2 * 10**7)
    refs = [queue.add(jpeg(tmp_path / f"s{i}.jpg", 100 + i), ref=f"gw1-{uuid.uuid4().hex}.jpg", device="cam1",
                      event="intrusion.detected", protected=False) for i in range(2)]
    queue.close()  # the gateway stops before anything was sent; the camera's copies go too
    for i in range(2):
        (tmp_path / f"s{i}.jpg").unlink()
    async with backend(db, port, tmp_path / "backend-evidence") as get:
        queue = EvidenceQueue(spool, budget_bytes=10**7, cap_bytes=2 * 10**7)
        uploader = EvidenceUploader(evidence_config(port), queue)
        async with running(uploader):
            await wait_for(lambda: queue.counts()["uploaded"] == 2, "uploads after the restart")
        for ref in refs:
            r = await get(ref.ref)
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == ref.sha256
    queue.close()


async def test_camera_event_carries_the_evidence_ref_and_the_file_reaches_the_backend(
    db: str, tmp_path: Path
) -> None:
    port = free_port()
    loc = {"site": "s1", "building": "B1", "area": "fire lane"}
    config = GatewayConfig.model_validate({
        "gateway_id": "gw-ev", "site": "s1", "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "metrics_port": None,
        "devices": [{"id": "cam1", "profile": "generic-ipc-analytics", "location": loc,
                     "connection": {"kind": "camera"}}],
        "evidence": evidence_config(port).model_dump(mode="json"),
    })
    outbox = FakeOutbox()
    agent = GatewayAgent(config, load_catalog(), outbox=outbox, clock=FakeClock(), with_uplink=False,
                         with_video=False)
    assert agent.evidence is not None
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    shot = jpeg(tmp_path / "snapshots" / "cam1" / "cam1_lane_1.jpg", 7)
    agent._on_video_event(VideoEvent(camera_id="cam1", rule="lane", kind="fire_lane.blocked", active=True,
                                     severity="major", observed_at=now, snapshot_path=shot))
    queue = agent.evidence.queue
    assert [i.protected for i in queue.due()] == [True]  # a fire-safety alarm's unsent snapshot is protected
    agent._on_video_event(VideoEvent(camera_id="cam1", rule="lane", kind="fire_lane.cleared", active=False,
                                     severity="major", observed_at=now))
    assert [i.protected for i in queue.due()] == [False]  # … until the alarm clears
    raised, cleared = (m for m in outbox.messages if isinstance(m, Event) and m.event == "fire_lane.blocked")
    [ref] = raised.evidence
    assert ref.ref.startswith("gw-ev-") and ref.ref.endswith(".jpg") and ref.content_type == "image/jpeg"
    assert ref.sha256 == hashlib.sha256(shot.read_bytes()).hexdigest() and ref.size == shot.stat().st_size
    assert raised.detail["snapshot"] == "cam1_lane_1.jpg" and cleared.evidence == []
    assert queue.state(ref.ref) == "pending"
    async with backend(db, port, tmp_path / "backend-evidence") as get, running(agent.evidence):
        await wait_for(lambda: queue.state(ref.ref) == "uploaded", "the snapshot upload")
        r = await get(ref.ref)
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == ref.sha256
    queue.close()
    agent.store.close()
