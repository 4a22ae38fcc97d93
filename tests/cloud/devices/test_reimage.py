"""A re-imaged gateway (same id, a fresh outbox: seq from 1 again) is online with its devices: the real
gateway agent, the real ingest, Mosquitto and PostgreSQL. State is ordered by (epoch, seq)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.db import DatabaseConfig
from contract.codec import encode
from contract.messages import GatewayState
from contract.topics import TopicKind, topic
from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig

pytestmark = pytest.mark.integration


def _config(site: str, gw: str, broker_url: str, outbox: Path) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "gateway_id": gw, "site": site, "uplink": {"url": broker_url}, "outbox": {"path": str(outbox)},
        "metrics_port": None, "health_interval_s": 1,
        "devices": [{"id": f"{site}-gas1", "profile": "tianlan-gv40", "location": {"site": site, "building": "B1"},
                     "connection": {"kind": "mqtt"}}],
    })


async def _run_until(agent: GatewayAgent, done, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_reimaged_gateway_is_online_with_its_devices(
    migrated: DatabaseConfig, start_worker, publisher, mqtt_broker, site_id, tmp_path: Path, h
) -> None:
    start_worker(migrated)
    dsn, gw = migrated.dsn, f"{site_id}-gw"
    catalog = load_catalog()

    def row() -> tuple[object, ...] | None:
        import psycopg
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT state, state_epoch, state_seq FROM gateways WHERE id = %s", (gw,)).fetchone()

    old = GatewayAgent(_config(site_id, gw, mqtt_broker.url, tmp_path / "sd1" / "outbox.sqlite3"), catalog,
                       with_video=False)
    task = asyncio.create_task(old.run())
    await _run_until(old, lambda: (row() or ("",))[0] == "online", "first birth stored")
    for _ in range(30):  # the old box lived a while: its seq is well past 1
        old.outbox.next_seq()
    old.stop()
    await asyncio.wait_for(task, 20)
    await _run_until(old, lambda: (row() or ("",))[0] == "offline", "the old box's death stored")
    _, old_epoch, old_seq = row() or (None, 0, 0)

    # new SD card: same gateway id, a fresh outbox
    new = GatewayAgent(_config(site_id, gw, mqtt_broker.url, tmp_path / "sd2" / "outbox.sqlite3"), catalog,
                       with_video=False)
    task = asyncio.create_task(new.run())
    try:
        await _run_until(new, lambda: (row() or ("",))[0] == "online", "the re-imaged gateway online")
        _, epoch, seq = row() or (None, 0, 0)
        assert epoch > old_epoch and seq < old_seq  # a lower seq, accepted because its epoch is newer
        assert h.scalar(dsn, "SELECT gateway_id FROM devices WHERE id = %s", (f"{site_id}-gas1",)) == gw
        # the old box's retained death again (a replay), and an older message of the new epoch: both ignored
        state_topic = topic(site_id, gw, TopicKind.STATE)
        stale = [GatewayState(gw=gw, epoch=int(old_epoch), seq=int(old_seq) + 100, ts=datetime.now(UTC),
                              state="offline", reason="connection lost"),
                 GatewayState(gw=gw, epoch=int(epoch), seq=0, ts=datetime.now(UTC), state="offline")]
        for msg in stale:
            publisher.publish(state_topic, encode(msg))
        marker = h.telemetry(gw, 10_000, f"{site_id}-gas1", 1)
        marker = marker.model_copy(update={"epoch": int(epoch)})
        publisher.publish(topic(site_id, gw, TopicKind.TELEMETRY), encode(marker))
        h.wait_for(lambda: h.scalar(dsn, "SELECT count(*) FROM telemetry") >= 1, what="marker after the replays")
        assert row() == ("online", epoch, seq)
    finally:
        new.stop()
        await asyncio.wait_for(task, 20)
