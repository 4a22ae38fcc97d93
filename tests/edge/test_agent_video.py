"""Camera wiring: a VideoEvent becomes a contract Event; an e-bike in the car holds the watched elevator's doors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import free_port
from edge_agent_helpers import FakeClock, FakeOutbox, ModbusTestServer, wait_for

from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig
from edge.video import VideoEvent

pytestmark = pytest.mark.integration  # a real pymodbus server takes the elevator command


async def test_ebike_video_event_is_reported_and_holds_the_doors(tmp_path: Path) -> None:
    port = free_port()
    loc = {"site": "s1", "building": "B1", "area": "car 1"}
    config = GatewayConfig.model_validate({
        "gateway_id": "gw1", "site": "s1", "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "metrics_port": None,
        "devices": [
            {"id": "lift1", "profile": "acme-em200", "location": loc,
             "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit": 1}},
            {"id": "cam1", "profile": "generic-ipc-analytics", "location": loc, "connection": {"kind": "camera"},
             "watches": "lift1"},
        ],
        "linkage": {"rules": [{"name": "ebike", "triggers": ["elevator.ebike_detected"], "scope": "watched_device",
                               "target_type": "elevator", "command": "hold_doors", "args": {"duration_s": 45},
                               "restore_command": "release_doors"}]},
    })
    outbox = FakeOutbox()
    agent = GatewayAgent(config, load_catalog(), outbox=outbox, clock=FakeClock(), with_uplink=False,
                         with_video=False)
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    async with ModbusTestServer(port, {1: {"ir": [1]}}) as server:
        agent._on_video_event(VideoEvent(camera_id="cam1", rule="car", kind="elevator.ebike_detected", active=True,
                                         severity="major", observed_at=now, snapshot_path=Path("/x/snap-1.jpg"),
                                         linkage=["hold_doors", "voice_warning"]))
        await agent.linkage.drain()
        ev = outbox.events("elevator.ebike_detected")[0]
        assert ev.device == "cam1" and ev.active and ev.ts == now
        assert ev.detail["snapshot"] == "snap-1.jpg" and ev.detail["linkage"] == "hold_doors,voice_warning"
        action = outbox.events("linkage.action")[0]
        assert (action.device, action.detail["command"], action.detail["outcome"]) == ("lift1", "hold_doors",
                                                                                       "succeeded")
        assert await server.get(1, "hr", 100, 2) == [2, 45]
        agent._on_video_event(VideoEvent(camera_id="cam1", rule="car", kind="elevator.ebike_cleared", active=False,
                                         severity="major", observed_at=now))
        await agent.linkage.drain()
        assert [e.active for e in outbox.events("elevator.ebike_detected")] == [True, False]
        # raise and clear of one rule (zone) share one stable key: one signal on both sides
        assert [e.key for e in outbox.events("elevator.ebike_detected")] == ["elevator.ebike_detected@car"] * 2
        await wait_for(lambda: len(outbox.events("linkage.action")) == 2, what="release")
        assert await server.get(1, "hr", 100) == [3]
    agent.store.close()
