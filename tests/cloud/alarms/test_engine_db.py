"""Decision engine against the real PostgreSQL: one alarm per device+type, gateway-offline folding,
escalation until acknowledged, flapping damping, maintenance windows, heartbeat supervision."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from cloud.alarms import repository
from cloud.alarms.engine import DecisionEngine
from cloud.alarms.testkit import SITE, insert_event
from cloud.dispatch.notify import Notifier

pytestmark = pytest.mark.integration


def rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


async def test_two_identical_events_ms_apart_on_two_connections_make_one_alarm(db, pool, rules, clock):
    """Two engines on two connections race on the same device+type: the unique index keeps one alarm."""
    with psycopg.connect(db, autocommit=True) as conn:
        e1 = insert_event(conn, "door1", "door.forced_open", severity="major", notify=False)
        e2 = insert_event(conn, "door1", "door.forced_open", severity="major", notify=False)
    other_pool = type(pool)(db, min_size=1, max_size=2, open=False)
    await other_pool.open(wait=True)
    try:
        a = DecisionEngine(pool, rules, clock=clock)
        b = DecisionEngine(other_pool, rules, clock=clock)
        await asyncio.gather(a.handle_events([e1]), b.handle_events([e2]))
    finally:
        await other_pool.close()
    alarms = rows(db, "SELECT id, active, occurrence_count FROM alarms WHERE device_id = 'door1'")
    assert len(alarms) == 1
    assert alarms[0][1:] == (True, 2)
    # Delivered again (NOTIFY and the in-process callback): counted once.
    await DecisionEngine(pool, rules, clock=clock).handle_events([e1, e2])
    assert rows(db, "SELECT occurrence_count FROM alarms WHERE device_id = 'door1'") == [(2,)]


async def test_new_occurrence_after_clear_is_a_new_alarm_even_if_acknowledged(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:
        await engine.handle_events([insert_event(conn, "elev1", "elevator.door_fault", severity="minor", notify=False)])
        (alarm_id,) = rows(db, "SELECT id FROM alarms WHERE device_id = 'elev1'")[0]
        async with pool.connection() as aconn:
            await repository.acknowledge(aconn, alarm_id, "pm", clock.now())
        # Acknowledged but not cleared: a repeat counts an occurrence, no new alarm.
        await engine.handle_events([insert_event(conn, "elev1", "elevator.door_fault", severity="minor", notify=False)])
        assert rows(db, "SELECT count(*), max(occurrence_count) FROM alarms WHERE device_id = 'elev1'") == [(1, 2)]
        await engine.handle_events(
            [insert_event(conn, "elev1", "elevator.door_fault", severity="minor", active=False, notify=False)]
        )
        clock.advance(60)
        await engine.handle_events([insert_event(conn, "elev1", "elevator.door_fault", severity="minor", notify=False)])
    got = rows(db, "SELECT active, acknowledged FROM alarms WHERE device_id = 'elev1' ORDER BY id")
    assert got == [(False, True), (True, False)]


async def test_gateway_offline_is_one_alarm_not_one_per_device(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:
        # One device was already reported offline before the gateway went down.
        await engine.handle_events([insert_event(conn, "smoke9", "device.offline", severity="major", notify=False)])
        conn.execute("UPDATE gateways SET state = 'offline' WHERE id = 'gw1'")
        await engine.handle_gateways(["gw1"])
        # Late device.offline events from the same gateway fold in.
        ids = [
            insert_event(conn, d, "device.offline", severity="major", notify=False) for d in ("door1", "door2", "elev1")
        ]
        await engine.handle_events(ids)
        # Every device goes silent beyond its heartbeat window: still no alarm per device.
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now() - timedelta(hours=3),))
        conn.execute("UPDATE gateways SET last_seen = %s", (clock.now() - timedelta(hours=3),))
    await engine.tick()
    active = rows(db, "SELECT device_id, type, folded_count FROM alarms WHERE active")
    assert [(d, t) for d, t, _ in active] == [("gw1", "gateway.offline")]
    assert active[0][2] >= 4
    # The gateway comes back: its alarm clears.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE gateways SET state = 'online', last_seen = %s", (clock.now(),))
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now(),))
    await engine.handle_gateways(["gw1"])
    assert rows(db, "SELECT count(*) FROM alarms WHERE active") == [(0,)]


async def test_silent_device_raises_fault_and_clears_when_heard_again(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now(),))
        conn.execute("UPDATE gateways SET last_seen = %s", (clock.now(),))
        conn.execute("UPDATE devices SET last_seen = %s WHERE id = 'door1'", (clock.now() - timedelta(minutes=30),))
    await engine.tick()
    assert rows(db, "SELECT device_id, type FROM alarms WHERE active") == [("door1", "device.silent")]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET last_seen = %s WHERE id = 'door1'", (clock.now(),))
    await engine.tick()
    assert rows(db, "SELECT count(*) FROM alarms WHERE active") == [(0,)]


async def test_escalation_fires_until_acknowledged(db, pool, rules, clock):
    notifier = Notifier()
    engine = DecisionEngine(pool, rules, clock=clock, notifier=notifier)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now(),))
        conn.execute("UPDATE gateways SET last_seen = %s", (clock.now(),))
        await engine.handle_events(
            [insert_event(conn, "elev2", "elevator.overspeed", severity="critical", notify=False)]
        )
        await engine.handle_events(
            [insert_event(conn, "elev1", "elevator.overspeed", severity="critical", notify=False)]
        )
    ack_me = rows(db, "SELECT id FROM alarms WHERE device_id = 'elev1'")[0][0]
    await engine.tick()
    assert not [n for n in notifier.sent if n.role]  # nothing due yet
    clock.advance(61)
    await engine.tick()
    assert [n.role for n in notifier.sent if n.role] == ["property_manager", "property_manager"]
    async with pool.connection() as conn:
        await repository.acknowledge(conn, ack_me, "pm1", clock.now())
    clock.advance(120)
    await engine.tick()
    escalated = rows(db, "SELECT device_id, escalation_level FROM alarms WHERE type = 'elevator.overspeed' ORDER BY 1")
    assert escalated == [("elev1", 1), ("elev2", 2)]
    assert "admin" in [n.role for n in notifier.sent if n.role]
    timeline = rows(
        db, "SELECT kind FROM alarm_timeline t JOIN alarms a ON a.id = t.alarm_id WHERE a.device_id = 'elev2'"
    )
    assert [k for (k,) in timeline].count("escalated") == 2
    audited = rows(
        db,
        "SELECT count(*) FROM audit_log l JOIN alarms a ON a.id::text = l.target_id "
        "WHERE l.action = 'alarm.escalate' AND a.type = 'elevator.overspeed'",
    )
    assert audited == [(3,)]


async def test_maintenance_window_suppresses_and_flapping_is_damped(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO suppression_windows (site_id, building, floor, starts_at, ends_at, reason, created_by) "
            "VALUES (%s, 'B1', 4, %s, %s, '屏蔽: detector replacement', 'pm')",
            (SITE, clock.now() - timedelta(minutes=1), clock.now() + timedelta(hours=1)),
        )
        await engine.handle_events([insert_event(conn, "smoke2", "smoke.alarm", notify=False)])
        assert rows(db, "SELECT count(*) FROM alarms") == [(0,)]
        assert rows(db, "SELECT outcome FROM alarm_event_links") == [("suppressed",)]
        # Flapping: raise/clear repeatedly → the clear is deferred, repeats only count occurrences.
        for _ in range(4):
            await engine.handle_events([insert_event(conn, "door2", "door.held_open", severity="minor", notify=False)])
            clock.advance(5)
            await engine.handle_events(
                [insert_event(conn, "door2", "door.held_open", severity="minor", active=False, notify=False)]
            )
            clock.advance(5)
    alarms = rows(db, "SELECT active, flapping FROM alarms WHERE device_id = 'door2' ORDER BY id")
    assert len(alarms) < 4
    assert alarms[-1] == (True, True)
    clock.advance(rules.suppression.flapping.hold + timedelta(seconds=1))
    await engine.tick()
    assert rows(db, "SELECT count(*) FROM alarms WHERE device_id = 'door2' AND active") == [(0,)]


async def test_events_stored_while_no_engine_listened_are_caught_up(db, pool, rules, clock):
    """PostgreSQL drops a NOTIFY nobody listens to: an event committed while serve was down (or during a
    database restart) must still become an alarm when the listener (re)connects."""
    with psycopg.connect(db, autocommit=True) as conn:
        missed = insert_event(conn, "smoke9", "smoke.alarm", notify=True)  # notified before anyone listened
    engine = DecisionEngine(pool, rules, clock=clock)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(engine.listen(db, stop, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        assert rows(db, "SELECT device_id, type FROM alarms") == [("smoke9", "smoke.alarm")]
        assert rows(db, "SELECT outcome FROM alarm_event_links WHERE event_id = %s", missed) == [("raised",)]
        assert await engine.catch_up() == 0  # handled once; a second pass finds nothing
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
