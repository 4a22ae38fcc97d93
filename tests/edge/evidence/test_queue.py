"""EvidenceQueue (durability, budget order, protection) and the uploader's answers, with a fake HTTP transport."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
import pytest

from edge.evidence import EvidenceConfig, EvidenceQueue, EvidenceUploader


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def snap(tmp_path: Path, name: str, size: int = 100) -> Path:
    p = tmp_path / "snapshots" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(name.encode().ljust(size, b"x"))
    return p


def make_queue(tmp_path: Path, clock: Clock, budget: int = 10_000, cap: int = 20_000) -> EvidenceQueue:
    return EvidenceQueue(tmp_path / "spool", budget_bytes=budget, cap_bytes=cap, now=clock)


def test_add_returns_the_reference_and_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    q = make_queue(tmp_path, clock)
    src = snap(tmp_path, "a.jpg")
    ref = q.add(src, ref="gw1-abc.jpg", device="cam1", event="fire_lane.blocked", protected=True)
    assert ref.ref == "gw1-abc.jpg" and ref.content_type == "image/jpeg" and ref.size == 100
    assert ref.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    src.unlink()  # the camera's own budget may delete its copy: ours stays
    q.close()
    q = make_queue(tmp_path, clock)
    [item] = q.due()
    assert (item.ref, item.sha256, item.protected) == ("gw1-abc.jpg", ref.sha256, True)
    assert item.path.read_bytes().startswith(b"a.jpg")
    with pytest.raises(ValueError, match="already queued"):
        q.add(snap(tmp_path, "b.jpg"), ref="gw1-abc.jpg", device="cam1", event="x.y", protected=False)
    with pytest.raises(ValueError, match="content type"):
        q.add(snap(tmp_path, "c.txt"), ref="gw1-c.txt", device="cam1", event="x.y", protected=False)
    q.close()


def test_restart_removes_orphans_and_forgets_rows_without_file(tmp_path: Path) -> None:
    clock = Clock()
    q = make_queue(tmp_path, clock)
    q.add(snap(tmp_path, "a.jpg"), ref="r-a.jpg", device="cam1", event="x.y", protected=False)
    q.add(snap(tmp_path, "b.jpg"), ref="r-b.jpg", device="cam1", event="x.y", protected=False)
    q.close()
    (tmp_path / "spool" / "files" / "r-b.jpg").unlink()
    (tmp_path / "spool" / "files" / ".r-c.jpg.part").write_bytes(b"half")
    q = make_queue(tmp_path, clock)
    assert [i.ref for i in q.due()] == ["r-a.jpg"]
    assert sorted(p.name for p in (tmp_path / "spool" / "files").iterdir()) == ["r-a.jpg"]
    q.close()


def test_due_order_and_retry_times(tmp_path: Path) -> None:
    clock = Clock()
    q = make_queue(tmp_path, clock)
    for name, protected in (("a", False), ("b", True), ("c", False)):
        clock.t += 1
        q.add(snap(tmp_path, f"{name}.jpg"), ref=f"{name}.jpg", device="cam1", event="x.y", protected=protected)
    assert [i.ref for i in q.due()] == ["b.jpg", "a.jpg", "c.jpg"]  # protected first, then oldest
    q.mark_retry("b.jpg", "down", 10.0)
    assert [i.ref for i in q.due()] == ["a.jpg", "c.jpg"]
    q.mark_uploaded("a.jpg")
    q.mark_failed("c.jpg", "HTTP 409")
    assert q.due() == [] and q.next_due_in() == pytest.approx(10.0)
    clock.t += 10
    [b] = q.due()
    assert b.attempts == 1
    q.mark_retry("b.jpg", "down", 50.0)
    q.retry_all_now()
    assert [i.ref for i in q.due()] == ["b.jpg"]
    assert q.counts() == {"pending": 1, "uploaded": 1, "failed": 1}
    q.close()


def test_budget_deletes_uploaded_first_then_unprotected_and_protected_only_past_the_cap(tmp_path: Path) -> None:
    clock = Clock()
    q = make_queue(tmp_path, clock, budget=350, cap=550)

    def add(name: str, protected: bool) -> None:
        clock.t += 1
        q.add(snap(tmp_path, f"{name}.jpg"), ref=f"{name}.jpg", device="cam1", event="fire_lane.blocked",
              protected=protected)

    add("up1", False)
    q.mark_uploaded("up1.jpg")
    add("p1", True)
    add("u1", False)
    assert q.bytes_used() == 300
    add("p2", True)  # 400 > 350: the uploaded one goes first
    assert q.state("up1.jpg") is None and q.bytes_used() == 300
    add("p3", True)  # 400 > 350: the unprotected pending one goes (evidence lost, warned)
    assert q.state("u1.jpg") is None and q.dropped_total == 1
    add("p4", True)
    add("p5", True)  # 500: over the budget but under the cap; protected evidence is kept
    assert q.bytes_used() == 500 and q.state("p1.jpg") == "pending"
    add("p6", True)  # 600 > cap 550: the oldest protected goes
    assert q.state("p1.jpg") is None and q.bytes_used() == 500
    assert q.release("cam1", "fire_lane.blocked") == 5  # the alarm cleared: back to the ordinary budget
    assert q.enforce_budget() == 2 and q.bytes_used() == 300
    assert sorted(p.name for p in (tmp_path / "spool" / "files").iterdir()) == ["p4.jpg", "p5.jpg", "p6.jpg"]
    q.close()


def config(**kw: object) -> EvidenceConfig:
    return EvidenceConfig.model_validate({"url": "http://backend.invalid/api/evidence", "token": "t0ken",
                                          "backoff_initial_s": 0.01, "backoff_max_s": 0.05, **kw})


def test_config_checks_the_cap() -> None:
    assert config(budget_bytes=100).cap_bytes == 200
    with pytest.raises(ValueError, match="hard_cap_bytes"):
        config(budget_bytes=100, hard_cap_bytes=50)


async def test_uploader_answers_retry_refuse_and_succeed(tmp_path: Path) -> None:
    clock = Clock()
    q = make_queue(tmp_path, clock)
    for name in ("ok", "conflict", "flaky"):
        q.add(snap(tmp_path, f"{name}.jpg"), ref=f"{name}.jpg", device="cam1", event="x.y", protected=False)
    seen: list[tuple[str, str, str, bytes]] = []
    flaky_calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal flaky_calls
        ref = request.url.path.rsplit("/", 1)[1]
        seen.append((ref, request.headers["x-gateway-token"], request.headers["x-content-sha256"], request.content))
        if ref == "conflict.jpg":
            return httpx.Response(409, json={"detail": "other content"})
        if ref == "flaky.jpg":
            flaky_calls += 1
            if flaky_calls == 1:
                return httpx.Response(503, text="busy")
            if flaky_calls == 2:
                raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={"ref": ref})

    up = EvidenceUploader(config(), q, transport=httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await up.upload_due(client) == "down"
        # 'ok' uploaded, 'conflict' refused for good, 'flaky' answered 503: the round stopped there
        assert q.state("ok.jpg") == "uploaded" and q.state("conflict.jpg") == "failed"
        assert q.state("flaky.jpg") == "pending"
        clock.t += 1
        assert await up.upload_due(client) == "down"  # connection refused
        clock.t += 1
        assert await up.upload_due(client) == "progress"
    assert q.state("flaky.jpg") == "uploaded"
    ref, token, sha, body = seen[0]
    assert ref == "ok.jpg" and token == "t0ken" and sha == hashlib.sha256(body).hexdigest()
    q.close()


async def test_uploader_task_uploads_what_is_queued_while_it_runs(tmp_path: Path) -> None:
    q = EvidenceQueue(tmp_path / "spool", budget_bytes=10_000, cap_bytes=20_000)
    got: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request.url.path)
        return httpx.Response(200, json={})

    up = EvidenceUploader(config(), q, transport=httpx.MockTransport(handler))
    task = asyncio.create_task(up.run())
    q.add(snap(tmp_path, "a.jpg"), ref="a.jpg", device="cam1", event="x.y", protected=False)
    up.wake()
    for _ in range(500):
        if q.state("a.jpg") == "uploaded":
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert got == ["/api/evidence/a.jpg"] and q.state("a.jpg") == "uploaded"
    q.close()


def test_without_an_evidence_section_events_carry_no_reference(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from edge_agent_helpers import FakeClock, FakeOutbox

    from contract.messages import Event
    from device_profiles import load_catalog
    from edge.agent import GatewayAgent
    from edge.config import GatewayConfig
    from edge.video import VideoEvent

    loc = {"site": "s1", "building": "B1", "area": "lane"}
    config = GatewayConfig.model_validate({
        "gateway_id": "gw1", "site": "s1", "outbox": {"path": str(tmp_path / "outbox.sqlite3")}, "metrics_port": None,
        "devices": [{"id": "cam1", "profile": "generic-ipc-analytics", "location": loc,
                     "connection": {"kind": "camera"}}],
    })
    outbox = FakeOutbox()
    agent = GatewayAgent(config, load_catalog(), outbox=outbox, clock=FakeClock(), with_uplink=False, with_video=False)
    assert agent.evidence is None
    agent._on_video_event(VideoEvent(camera_id="cam1", rule="lane", kind="fire_lane.blocked", active=True,
                                     severity="major", observed_at=datetime(2026, 3, 1, tzinfo=UTC),
                                     snapshot_path=snap(tmp_path, "s.jpg")))
    [ev] = [m for m in outbox.messages if isinstance(m, Event)]
    assert ev.evidence == [] and ev.detail["snapshot"] == "s.jpg"
    assert not (tmp_path / "evidence").exists()
    agent.store.close()
