"""Fire drill against the real PostgreSQL and Mosquitto: two fire signals from different devices in one
building → one incident, linkage commands published on the gateway's cmd topic, outcomes tracked."""

from __future__ import annotations

import asyncio
import json
import queue
import time
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.alarms.engine import DecisionEngine
from cloud.alarms.testkit import insert_ack, insert_event, migrate_all, seed
from cloud.dispatch.mqtt import MqttPublisher, PublisherConfig
from contract import Command
from contract.codec import decode

pytestmark = pytest.mark.integration


def rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def subscriber(host: str, port: int, topic_filter: str) -> tuple[mqtt.Client, queue.Queue[tuple[str, bytes]]]:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    subscribed = queue.Queue[int]()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.put((m.topic, m.payload))
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(mid)
    client.connect(host, port)
    client.loop_start()
    subscribed.get(timeout=10)
    return client, got


async def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_fire_drill_links_commands_through_the_real_broker(
    pg_dsn, mqtt_broker, site_id, pool_factory, rules, clock
):
    migrate_all(pg_dsn)
    seed(pg_dsn, site=site_id)
    sub, received = subscriber(mqtt_broker.host, mqtt_broker.port, f"xq/v1/{site_id}/+/cmd")
    publisher = MqttPublisher(PublisherConfig(host=mqtt_broker.host, port=mqtt_broker.port, client_id=f"dec-{site_id}"))
    publisher.start()
    pool = await pool_factory(pg_dsn)
    engine = DecisionEngine(pool, rules, clock=clock, publisher=publisher)
    stop, ready = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(engine.listen(pg_dsn, stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            insert_event(conn, "panel1", "fire.alarm", detail={"zone": "3F east"})
            # One signal is not enough (GB 50116 §4.1.6): no incident yet.
            await wait_for(lambda: rows(pg_dsn, "SELECT count(*) FROM alarms")[0][0] == 1, what="first alarm")
            assert rows(pg_dsn, "SELECT count(*) FROM incidents") == [(0,)]
            insert_event(conn, "smoke1", "smoke.alarm")
            # A third signal joins the open incident, it does not open another.
            insert_event(conn, "smoke2", "smoke.alarm")
            await wait_for(lambda: rows(pg_dsn, "SELECT count(*) FROM alarms")[0][0] == 3, what="three alarms")

        incidents = rows(pg_dsn, "SELECT id, kind, building, alarm_ids FROM incidents")
        assert len(incidents) == 1
        incident_id, kind, building, alarm_ids = incidents[0]
        assert (kind, building, len(alarm_ids)) == ("fire", "B1", 3)

        # Linkage: every door controller released, every elevator homed, in B1 only.
        messages: list[Command] = []
        deadline = time.monotonic() + 15
        while len(messages) < 4 and time.monotonic() < deadline:
            try:
                topic, payload = received.get(timeout=0.2)
            except queue.Empty:
                continue
            _, msg = decode(topic, payload)
            assert isinstance(msg, Command)
            messages.append(msg)
        by_device = {m.device: m.command for m in messages}
        assert by_device == {
            "door1": "release_all",
            "door2": "release_all",
            "elev1": "fire_recall",
            "elev2": "fire_recall",
        }
        assert all(m.origin == f"incident:{incident_id}" for m in messages)
        await wait_for(
            lambda: rows(pg_dsn, "SELECT count(*) FROM commands WHERE state = 'sent'")[0][0] == 4, what="sent"
        )

        # Outcomes come back as CommandAcks (stored by ingest and notified).
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for m in messages:
                status = "failed" if m.device == "elev2" else "succeeded"
                insert_ack(
                    conn, str(m.id), m.device, status, reason="car out of service" if status == "failed" else None
                )
        await wait_for(
            lambda: rows(pg_dsn, "SELECT count(*) FROM commands WHERE state IN ('succeeded', 'failed')")[0][0] == 4,
            what="acks applied",
        )
        states = dict(rows(pg_dsn, "SELECT device_id, state FROM commands"))
        assert states == {"door1": "succeeded", "door2": "succeeded", "elev1": "succeeded", "elev2": "failed"}
        audited = rows(pg_dsn, "SELECT action, count(*) FROM audit_log WHERE target_type = 'command' GROUP BY 1")
        assert dict(audited) == {"command.issue": 4, "command.ack": 4}
        # The fire incident also created a work order for the building's grid.
        assert rows(pg_dsn, "SELECT type, grid_id FROM work_orders") == [
            ("fire", "g1" if site_id == "s1" else f"{site_id}-g1")
        ]
    finally:
        stop.set()
        listener.cancel()
        publisher.stop()
        sub.loop_stop()
        sub.disconnect()


async def test_unacknowledged_command_is_retried_then_times_out(db, pool, rules, clock):
    sent: list[tuple[str, bytes]] = []

    class Recorder:
        async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
            sent.append((topic, payload))

    engine = DecisionEngine(pool, rules, clock=clock, publisher=Recorder())
    async with pool.connection() as conn, conn.transaction():
        cid = await engine.issue_command(
            conn, device_id="elev1", command="fire_recall", args={}, actor="pm1", retry_safe=True, max_attempts=2
        )
    await engine.send([cid])
    assert len(sent) == 1
    # The backend waits what the elevator's profile says fire_recall takes, plus the transit margin.
    wait = engine.command_timeouts.ack_timeout("acme-em200", "fire_recall")
    assert rows(db, "SELECT ack_timeout_s FROM commands") == [(wait.total_seconds(),)]
    clock.advance(wait.total_seconds() - 1)
    await engine.tick()
    assert len(sent) == 1
    clock.advance(2)
    await engine.tick()
    assert len(sent) == 2  # re-sent with the same id
    assert {json.loads(p)["id"] for _, p in sent} == {str(cid)}
    clock.advance(wait.total_seconds() + 1)
    await engine.tick()
    assert rows(db, "SELECT state, attempts FROM commands") == [("timed_out", 2)]
    # A late real outcome is recorded, not thrown away, with both times.
    with psycopg.connect(db, autocommit=True) as conn:
        aid = insert_ack(conn, str(cid), "elev1", "succeeded")
    await engine.handle_acks([aid])
    assert rows(db, "SELECT state, timed_out_at IS NOT NULL, answered_at IS NOT NULL FROM commands") == [
        ("succeeded_late", True, True)
    ]
