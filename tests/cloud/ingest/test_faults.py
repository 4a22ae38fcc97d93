"""Fault tests: a worker SIGKILLed mid-batch, a broker restart. Nothing acknowledged is lost or doubled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cloud.db import DatabaseConfig
from cloud.ingest.config import IngestConfig
from cloud.ingest.worker import IngestWorker
from contract.codec import encode
from contract.mqtt import MqttSettings
from contract.topics import TopicKind, topic
from simulators.broker import MosquittoProcess

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
POINTS = 20


def _counts(dsn: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM telemetry), "
            "(SELECT count(*) FROM (SELECT DISTINCT device_id, point, ts FROM telemetry) d), "
            "(SELECT count(*) FROM ingested_messages)"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


def _spawn_worker(cfg_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "xiaoqu", "cloud", "ingest", "--config", str(cfg_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(migrated, mqtt_broker, publisher, site_id, h, tmp_path):
    cfg = {
        "database": {"dsn": migrated.dsn},
        "ingest": {
            "mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port},
            "client_id": f"kill-{site_id}",
            "group": f"g{site_id}",
            "site": site_id,
            "batch_max_messages": 10,
            "batch_max_wait_ms": 400,
            "session_expiry_s": 300,
        },
    }
    cfg_path = tmp_path / "cloud.json"
    cfg_path.write_text(json.dumps(cfg))
    gw = "gw1"
    state = topic(site_id, gw, TopicKind.STATE)
    proc = _spawn_worker(cfg_path)
    try:
        # retained, as a gateway publishes it: the worker gets it once subscribed (so we know it is)
        publisher.publish(state, encode(h.birth(site_id, gw, ["d1"])), retain=True)
        h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT count(*) FROM devices") == 1, what="birth stored")
        tel = topic(site_id, gw, TopicKind.TELEMETRY)
        messages = [encode(h.telemetry(gw, seq, "d1", POINTS)) for seq in range(2, 102)]
        for m in messages[:60]:
            publisher.publish(tel, m)
        h.wait_for(lambda: _counts(migrated.dsn)[2] > 0, what="first batch committed")
        proc.send_signal(signal.SIGKILL)  # mid-stream: some batches held in memory, unacknowledged
        proc.wait(10)
        stored_at_kill = _counts(migrated.dsn)[2]
        for m in messages[60:]:  # queued in the worker's persistent session while it is down
            publisher.publish(tel, m)
        proc = _spawn_worker(cfg_path)
        h.wait_for(lambda: _counts(migrated.dsn)[2] == 100, timeout=40, what="all 100 messages stored")
        time.sleep(1.0)  # let any redelivery arrive; it must be recognised as duplicate
        total, distinct, ids = _counts(migrated.dsn)
        assert (total, distinct, ids) == (100 * POINTS, 100 * POINTS, 100)
        assert stored_at_kill < 100
    finally:
        proc.kill()
        proc.wait(10)
        publisher.publish(state, b"", retain=True)  # clear the retained birth


# -- broker restart -----------------------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A persistent Mosquitto of the test's own (stopped with SIGTERM, so it saves its state)."""
    b = MosquittoProcess(persistence=True, workdir=tmp_path)
    yield b
    b.stop()


def test_broker_restart_loses_nothing_acknowledged(migrated: DatabaseConfig, broker: MosquittoProcess, site_id, h):
    broker.start()
    cfg = IngestConfig(
        mqtt=MqttSettings(host="127.0.0.1", port=broker.port),
        client_id=f"rst-{site_id}",
        group=f"g{site_id}",
        site=site_id,
        batch_max_wait_ms=30,
        session_expiry_s=300,
    )
    gw = "gw1"
    pub = h.Publisher("127.0.0.1", broker.port, f"pub-{site_id}")
    worker = IngestWorker(migrated, cfg)
    worker.start()
    h.wait_for(worker.subscribed.is_set, what="subscribed")
    tel = topic(site_id, gw, TopicKind.TELEMETRY)
    pub.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, ["d1"])))
    for seq in range(2, 12):  # A: consumed live
        pub.publish(tel, encode(h.telemetry(gw, seq, "d1", POINTS)))
    h.wait_for(lambda: _counts(migrated.dsn)[2] == 10, what="A stored")
    worker.stop()
    for seq in range(12, 42):  # B: acknowledged by the broker, queued for the worker's session
        pub.publish(tel, encode(h.telemetry(gw, seq, "d1", POINTS)))
    pub.close()
    broker.stop()
    broker.start()
    worker = IngestWorker(migrated, cfg)
    worker.start()
    try:
        h.wait_for(lambda: _counts(migrated.dsn)[2] == 40, timeout=30, what="B redelivered after restart")
        assert _counts(migrated.dsn) == (40 * POINTS, 40 * POINTS, 40)
    finally:
        worker.stop()
