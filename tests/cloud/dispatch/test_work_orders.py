"""Work orders: roster assignment, the whole lifecycle, SLA breach escalation, welfare checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from cloud.alarms.engine import DecisionEngine
from cloud.alarms.testkit import SITE, insert_event
from cloud.auth.roles import Role
from cloud.auth.store import add_user
from cloud.dispatch import workorders as wo
from cloud.dispatch.notify import Notifier


def rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


@pytest.mark.parametrize(
    ("state", "action", "expected"),
    [
        ("assigned", "accept", "accepted"),
        ("accepted", "arrive", "arrived"),
        ("arrived", "resolve", "resolved"),
        ("resolved", "close", "closed"),
        ("closed", "reopen", "assigned"),
        ("resolved", "reopen", "assigned"),
        ("open", "assign", "assigned"),
    ],
)
def test_transitions(state, action, expected):
    assert wo.next_state(state, action) == expected


@pytest.mark.parametrize(
    ("state", "action"),
    [("open", "accept"), ("assigned", "resolve"), ("accepted", "close"), ("closed", "accept"), ("arrived", "reopen")],
)
def test_refused_transitions(state, action):
    with pytest.raises(wo.WorkOrderError, match=f"cannot {action}"):
        wo.next_state(state, action)


@pytest.mark.integration
async def test_entrapment_order_whole_life_with_sla_breach(db, pool, rules, clock):
    notifier = Notifier()
    engine = DecisionEngine(pool, rules, clock=clock, notifier=notifier)
    async with pool.connection() as conn:
        await add_user(conn, "wang", "pw-wang-123", Role.GRID_WORKER, grid_id="g1")
        await add_user(conn, "li", "pw-li-12345", Role.GRID_WORKER, grid_id="g1")
        await conn.execute(
            "INSERT INTO roster (username, grid_id, starts_at, ends_at) VALUES ('wang', 'g1', %s, %s)",
            (clock.now() - timedelta(hours=1), clock.now() + timedelta(hours=8)),
        )
        await conn.commit()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now(),))
        conn.execute("UPDATE gateways SET last_seen = %s", (clock.now(),))
        await engine.handle_events(
            [insert_event(conn, "elev1", "elevator.entrapment", detail={"between_floors": True})]
        )
    # Immediate dispatch: an incident and an order assigned to the on-duty worker of B1's grid.
    assert rows(db, "SELECT kind FROM incidents") == [("entrapment",)]
    ((order_id, state, assignee, grid),) = rows(db, "SELECT id, state, assignee, grid_id FROM work_orders")
    assert (state, assignee, grid) == ("assigned", "wang", "g1")

    # Nobody accepts within 5 minutes → dispatch SLA breach escalates to the property manager.
    clock.advance(timedelta(minutes=5, seconds=1))
    await engine.tick()
    assert rows(db, "SELECT dispatch_breached, arrival_breached FROM work_orders") == [(True, False)]
    escalations = [n for n in notifier.sent if n.role == "property_manager" and "SLA" in n.subject]
    assert len(escalations) == 1
    await engine.tick()  # escalates once per breach
    assert len([n for n in notifier.sent if "SLA" in n.subject]) == 1

    effects = wo.Effects.empty()
    async with pool.connection() as conn, conn.transaction():
        with pytest.raises(wo.WorkOrderError, match="assigned to 'wang'"):
            await wo.transition(conn, order_id, "accept", "li", clock.now(), effects)
    async with pool.connection() as conn, conn.transaction():
        await wo.transition(conn, order_id, "accept", "wang", clock.now(), effects)
    clock.advance(timedelta(minutes=26))  # arrival due at 30 min after creation
    await engine.tick()
    assert rows(db, "SELECT arrival_breached FROM work_orders") == [(True,)]
    async with pool.connection() as conn, conn.transaction():
        await wo.transition(conn, order_id, "arrive", "wang", clock.now(), effects, photo="checkin-1.jpg")
        await wo.transition(
            conn, order_id, "resolve", "wang", clock.now(), effects, note="passenger freed", evidence=["after-1.jpg"]
        )
        await wo.transition(
            conn, order_id, "reopen", "pm1", clock.now(), effects, note="no maintenance record", rules=rules
        )
        await wo.transition(conn, order_id, "accept", "wang", clock.now(), effects)
        await wo.transition(conn, order_id, "arrive", "wang", clock.now(), effects)
        await wo.transition(conn, order_id, "resolve", "wang", clock.now(), effects, note="record added")
        await wo.transition(conn, order_id, "close", "pm1", clock.now(), effects)
    assert rows(db, "SELECT state, reopen_count, closed_by FROM work_orders") == [("closed", 1, "pm1")]
    kinds = [k for (k,) in rows(db, "SELECT kind FROM work_order_timeline ORDER BY id")]
    assert kinds == [
        "created",
        "assigned",
        "sla_breach",
        "accept",
        "sla_breach",
        "arrive",
        "resolve",
        "reopen",
        "accept",
        "arrive",
        "resolve",
        "close",
    ]
    actions = {a for (a,) in rows(db, "SELECT action FROM audit_log WHERE target_type = 'work_order'")}
    assert {"work_order.assign", "work_order.close", "work_order.escalate", "work_order.reopen"} <= actions


@pytest.mark.integration
async def test_welfare_check_after_quiet_door(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now(),))
        conn.execute("UPDATE gateways SET last_seen = %s", (clock.now(),))
        conn.execute(
            "INSERT INTO welfare_units (site_id, building, unit, note) VALUES (%s, 'B1', '101', '独居老人')", (SITE,)
        )
        insert_event(conn, "door1", "door.access_granted", severity="info", ts=clock.now(), notify=False)
    await engine.tick()
    assert rows(db, "SELECT count(*) FROM work_orders") == [(0,)]
    clock.advance(timedelta(hours=25))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET last_seen = %s", (clock.now(),))
        conn.execute("UPDATE gateways SET last_seen = %s", (clock.now(),))
    await engine.tick()
    await engine.tick()
    assert rows(db, "SELECT type, unit, state FROM work_orders") == [("welfare_check", "101", "open")]
