"""Ingest against the real Mosquitto and PostgreSQL: idempotency, dead letters, registration, hand-over."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest

from cloud.db import DatabaseConfig
from cloud.ingest.store import CommittedBatch
from contract.codec import encode
from contract.messages import CommandAck, Event
from contract.topics import TopicKind, topic

pytestmark = pytest.mark.integration


def test_message_delivered_twice_is_stored_once(migrated: DatabaseConfig, start_worker, publisher, site_id, h):
    committed: list[CommittedBatch] = []
    start_worker(migrated, on_committed=committed.append)
    gw = "gw1"
    publisher.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, ["d1", "d2"])))
    h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT count(*) FROM devices") == 2, what="devices registered")

    batch = h.telemetry(gw, 2, "d1", 50)
    ev = Event(
        gw=gw,
        seq=3,
        ts=datetime.now(UTC),
        device="d2",
        event="fire.alarm", key="fire.alarm",
        severity="critical",
        active=True,
        life_safety=True,
        detail={"zone": 4},
    )
    ack = CommandAck(gw=gw, seq=4, ts=datetime.now(UTC), command_id=ev.id, device="d2", status="succeeded")
    for _ in range(2):
        publisher.publish(topic(site_id, gw, TopicKind.TELEMETRY), encode(batch))
        publisher.publish(topic(site_id, gw, TopicKind.EVENT), encode(ev))
        publisher.publish(topic(site_id, gw, TopicKind.CMD_ACK), encode(ack))
    h.wait_for(lambda: sum(c.duplicates for c in committed) >= 3, what="duplicates seen")

    assert h.scalar(migrated.dsn, "SELECT count(*) FROM telemetry") == 50
    assert h.scalar(migrated.dsn, "SELECT count(*) FROM ingested_messages") == 1
    assert h.scalar(migrated.dsn, "SELECT count(*) FROM events") == 1
    assert h.scalar(migrated.dsn, "SELECT count(*) FROM command_acks") == 1
    assert h.scalar(migrated.dsn, "SELECT detail->>'zone' FROM events") == "4"
    assert [e.id for c in committed for e in c.events] == [ev.id]
    assert [a.id for c in committed for a in c.acks] == [ack.id]
    assert [g.gw for c in committed for g in c.gateways] == [gw]
    # presence: flushed periodically from memory
    h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT state FROM devices WHERE id = 'd1'") == "online", what="online")
    h.wait_for(
        lambda: h.scalar(migrated.dsn, "SELECT last_seen IS NOT NULL FROM gateways WHERE id = 'gw1'") is True,
        what="gateway last_seen",
    )


def test_bad_messages_go_to_dead_letters_with_reasons(migrated: DatabaseConfig, start_worker, publisher, site_id, h):
    worker = start_worker(migrated)
    gw = "gw1"
    publisher.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, ["d1"])))
    tel = topic(site_id, gw, TopicKind.TELEMETRY)
    good = json.loads(encode(h.telemetry(gw, 5, "d1", 3)))
    publisher.publish(tel, b"not json at all" * 1000)
    publisher.publish(tel, json.dumps({**good, "v": 9}).encode())
    publisher.publish(tel, json.dumps({**good, "points": []}).encode())
    publisher.publish(tel, json.dumps({**good, "gw": "other"}).encode())
    publisher.publish(tel, encode(h.telemetry(gw, 6, "ghost", 4)))
    ev = Event(gw=gw, seq=7, ts=datetime.now(UTC), device="ghost", event="fire.alarm",
        key="fire.alarm", severity="critical", active=True)
    publisher.publish(topic(site_id, gw, TopicKind.EVENT), encode(ev))
    publisher.publish(f"xq/v1/{site_id}/{gw}/bogus", b"{}")  # not subscribed: never arrives
    publisher.publish(tel, encode(h.telemetry(gw, 8, "d1", 3)))

    h.wait_for(
        lambda: (
            h.scalar(migrated.dsn, "SELECT count(*) FROM dead_letters") == 6
            or h.scalar(migrated.dsn, "SELECT array_agg(code) FROM dead_letters")
        ),
        what="6 dead letters",
    )
    h.wait_for(lambda: h.scalar(migrated.dsn, "SELECT count(*) FROM telemetry") == 3, what="good telemetry")
    with psycopg.connect(migrated.dsn) as conn:
        rows = conn.execute(
            "SELECT code, reason, length(payload), payload_size FROM dead_letters ORDER BY id"
        ).fetchall()
    codes = [r[0] for r in rows]
    assert codes == ["malformed", "unsupported_version", "malformed", "malformed", "unknown_device", "unknown_device"]
    assert "not JSON" in rows[0][1]
    assert rows[0][2] == 4096 and rows[0][3] == 15000  # bounded payload, full size kept
    assert "version 9" in rows[1][1]
    assert "points" in rows[2][1]
    assert "does not match" in rows[3][1]
    assert "ghost" in rows[4][1] and "4 of 4 points" in rows[4][1]
    assert "ghost" in rows[5][1]
    assert worker.stats.dead_letters == 6
    assert worker.stats.dead_letter_codes == {"malformed": 3, "unsupported_version": 1, "unknown_device": 2}


def test_pg_notify_after_commit(migrated: DatabaseConfig, start_worker, publisher, site_id, h):
    start_worker(migrated)
    gw = "gw1"
    with psycopg.connect(migrated.dsn, autocommit=True) as listener:
        listener.execute("LISTEN xq_events")
        publisher.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, ["d1"])))
        ev = Event(
            gw=gw, seq=2, ts=datetime.now(UTC), device="d1", event="smoke.alarm",
            key="smoke.alarm", severity="critical", active=True
        )
        publisher.publish(topic(site_id, gw, TopicKind.EVENT), encode(ev))
        got: dict[str, list[str]] = {}
        for note in listener.notifies(timeout=20, stop_after=2):
            for k, v in json.loads(note.payload).items():
                got.setdefault(k, []).extend(v)
        assert got == {"gateways": [gw], "events": [str(ev.id)]}
        assert h.scalar(migrated.dsn, "SELECT count(*) FROM events WHERE id = %s", (ev.id,)) == 1
