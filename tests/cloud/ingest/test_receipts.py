"""The backend's side of end-to-end delivery, against the real Mosquitto and PostgreSQL: a Receipt per gateway
after each commit naming its stored events and command acks (again for a re-send), none for telemetry or
dead letters; and the ingest session created by ``xiaoqu cloud migrate`` before any worker ever ran."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.db import DatabaseConfig
from cloud.ingest.worker import IngestWorker
from contract.codec import decode_as, encode
from contract.messages import CommandAck, Event, Receipt
from contract.topics import TopicKind, topic

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


class ReceiptWatcher:
    """Records the receipts of a site; for each one checks, as it arrives, that its ids are in the database."""

    def __init__(self, host: str, port: int, site: str, dsn: str) -> None:
        self.dsn = dsn
        self.receipts: list[tuple[str, Receipt, bool]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(f"xq/v1/{site}/+/receipt", qos=1)
        assert ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        r = decode_as(Receipt, bytes(msg.payload), topic=msg.topic)
        ids = [str(i) for i in r.ids]
        with psycopg.connect(self.dsn) as conn:  # "after commit": every id named must be readable already
            row = conn.execute(
                "SELECT count(*) FROM (SELECT id FROM events WHERE id = ANY(%s::uuid[]) "
                "UNION ALL SELECT id FROM command_acks WHERE id = ANY(%s::uuid[])) x",
                (ids, ids),
            ).fetchone()
        with self.lock:
            self.receipts.append((msg.topic, r, row is not None and row[0] == len(ids)))

    def named(self) -> list[UUID]:
        with self.lock:
            return [i for _, r, _ in self.receipts for i in r.ids]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_receipts_name_committed_events_and_acks_once_stored(
    migrated: DatabaseConfig, start_worker: Any, publisher: Any, mqtt_broker: Any, site_id: str, h: Any
) -> None:
    watcher = ReceiptWatcher(mqtt_broker.host, mqtt_broker.port, site_id, migrated.dsn)
    try:
        worker = start_worker(migrated)
        for gw in ("gw1", "gw2"):
            publisher.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, [f"{gw}-d1"])))
        h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT count(*) FROM devices") == 2, what="devices registered")
        now = datetime.now(UTC)
        alarm = Event(gw="gw1", seq=2, ts=now, device="gw1-d1", event="fire.alarm", key="fire.alarm#1",
                      severity="critical", active=True, life_safety=True)
        door = Event(gw="gw2", seq=2, ts=now, device="gw2-d1", event="door.opened", key="door.opened",
                     severity="info", active=True)
        stranger = Event(gw="gw1", seq=3, ts=now, device="nobody", event="fire.alarm", key="fire.alarm#1",
                         severity="critical", active=True, life_safety=True)
        ack = CommandAck(gw="gw2", seq=3, ts=now, command_id=alarm.id, device="gw2-d1", status="succeeded")
        publisher.publish(topic(site_id, "gw1", TopicKind.EVENT), encode(alarm))
        publisher.publish(topic(site_id, "gw1", TopicKind.EVENT), encode(stranger))
        publisher.publish(topic(site_id, "gw1", TopicKind.TELEMETRY), encode(h.telemetry("gw1", 4, "gw1-d1", 5)))
        publisher.publish(topic(site_id, "gw2", TopicKind.EVENT), encode(door))
        publisher.publish(topic(site_id, "gw2", TopicKind.CMD_ACK), encode(ack))
        h.wait_for(lambda: set(watcher.named()) >= {alarm.id, door.id, ack.id}, what="receipts for all three")
        by_gw: dict[str, set[UUID]] = {}
        for t, r, _ in watcher.receipts:
            assert t == topic(site_id, r.gw, TopicKind.RECEIPT)
            by_gw.setdefault(r.gw, set()).update(r.ids)
        assert by_gw == {"gw1": {alarm.id}, "gw2": {door.id, ack.id}}  # no telemetry, no dead letter
        assert h.scalar(migrated.dsn, "SELECT count(*) FROM dead_letters WHERE code = 'unknown_device'") == 1
        # A re-send of a stored message (the gateway missed the receipt) is receipted again, stored once.
        before = len(watcher.named())
        publisher.publish(topic(site_id, "gw1", TopicKind.EVENT), encode(alarm))
        h.wait_for(lambda: len(watcher.named()) > before, what="a receipt for the re-send")
        assert watcher.named()[before:] == [alarm.id]
        assert h.scalar(migrated.dsn, "SELECT count(*) FROM events") == 2
        assert all(stored for _, _, stored in watcher.receipts), "a receipt arrived before its rows were readable"
        assert worker.stats.receipts == len(watcher.receipts)
    finally:
        watcher.close()


def test_no_receipts_when_turned_off(
    migrated: DatabaseConfig, start_worker: Any, publisher: Any, mqtt_broker: Any, site_id: str, h: Any
) -> None:
    watcher = ReceiptWatcher(mqtt_broker.host, mqtt_broker.port, site_id, migrated.dsn)
    try:
        worker = start_worker(migrated, receipts=False)
        publisher.publish(topic(site_id, "gw1", TopicKind.STATE), encode(h.birth(site_id, "gw1", ["d1"])))
        ev = Event(gw="gw1", seq=2, ts=datetime.now(UTC), device="d1", event="fire.alarm", key="fire.alarm#1",
                   severity="critical", active=True, life_safety=True)
        publisher.publish(topic(site_id, "gw1", TopicKind.EVENT), encode(ev))
        h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT count(*) FROM events") == 1, what="the event stored")
        assert worker.stats.receipts == 0 and watcher.named() == []
    finally:
        watcher.close()


def test_migrate_creates_the_ingest_session_so_the_broker_queues_before_the_first_ingest(
    migrated: DatabaseConfig, publisher: Any, mqtt_broker: Any, site_id: str, h: Any, tmp_path: Path
) -> None:
    cfg = {
        "database": {"dsn": migrated.dsn},
        "ingest": {
            "mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port},
            "client_id": f"mig-{site_id}",
            "group": f"g{site_id}",
            "site": site_id,
            "session_expiry_s": 300,
            "batch_max_wait_ms": 30,
        },
    }
    path = tmp_path / "cloud.json"
    path.write_text(json.dumps(cfg))

    def migrate() -> str:
        done = subprocess.run([sys.executable, "-m", "xiaoqu", "cloud", "migrate", "-c", str(path), "--workers", "2"],
                              cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = migrate()
    assert f"ingest session mig-{site_id}-0" in out and "created" in out
    assert f"ingest session mig-{site_id}-1" in out
    # No worker has ever run: the broker keeps what gateways send for the sessions (split between the two).
    gw = "gw1"
    publisher.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, ["d1"])), retain=True)
    events = [
        Event(gw=gw, seq=10 + i, ts=datetime.now(UTC), device="d1", event="fire.alarm", key=f"fire.alarm#{i}",
              severity="critical", active=True, life_safety=True)
        for i in range(6)
    ]
    for ev in events:
        publisher.publish(topic(site_id, gw, TopicKind.EVENT), encode(ev))
    assert "already there" in migrate()  # re-runnable: existing sessions are left as they are
    from cloud.ingest.config import IngestConfig

    ingest = IngestConfig.model_validate(cfg["ingest"])
    workers = [IngestWorker(migrated, ingest, index=i) for i in range(2)]
    for w in workers:
        w.start()
    try:
        h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT count(*) FROM events") == 6, what="all queued events")
    finally:
        for w in workers:
            w.stop()
        publisher.publish(topic(site_id, gw, TopicKind.STATE), b"", retain=True)


def test_migrate_without_a_broker_says_how_the_session_is_made(migrated: DatabaseConfig) -> None:
    done = subprocess.run([sys.executable, "-m", "xiaoqu", "cloud", "migrate", "--dsn", migrated.dsn],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "first `xiaoqu cloud ingest`" in done.stdout


def test_mosquitto_keeps_the_share_of_an_offline_worker_session_for_it(
    migrated: DatabaseConfig, publisher: Any, mqtt_broker: Any, site_id: str, h: Any
) -> None:
    """What the start-order advice in docs/ingest.md rests on: an offline persistent session stays a member of
    its $share group; the broker queues its round-robin share until it returns (it is not given to the others)."""
    from cloud.ingest.config import IngestConfig
    from cloud.ingest.session import ensure_sessions
    from contract.mqtt import MqttSettings

    cfg = IngestConfig(mqtt=MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port), client_id=f"share-{site_id}",
                       group=f"g{site_id}", site=site_id, session_expiry_s=300, batch_max_wait_ms=30)
    assert [s.existed for s in ensure_sessions(cfg, workers=2)] == [False, False]
    gw = "gw1"
    publisher.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, ["d1"])), retain=True)
    first = IngestWorker(migrated, cfg, index=0)
    first.start()
    second = IngestWorker(migrated, cfg, index=1)
    try:
        h.wait_for(first.subscribed.is_set, what="worker 0 subscribed")
        for i in range(10):
            ev = Event(gw=gw, seq=10 + i, ts=datetime.now(UTC), device="d1", event="fire.alarm",
                       key=f"fire.alarm#{i}", severity="critical", active=True, life_safety=True)
            publisher.publish(topic(site_id, gw, TopicKind.EVENT), encode(ev))
        h.wait_for(lambda: first.stats.events > 0, what="worker 0 storing its share")
        second.start()  # worker 1 never ran before: what it gets was queued for its offline session
        h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT count(*) FROM events") == 10, what="all ten stored")
        assert second.stats.events > 0 and first.stats.events + second.stats.events == 10
    finally:
        first.stop()
        second.stop()
        publisher.publish(topic(site_id, gw, TopicKind.STATE), b"", retain=True)
