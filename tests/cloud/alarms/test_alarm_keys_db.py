"""Alarms keyed on (device, event key) against the real PostgreSQL: a fire panel's zones are separate alarms
at their own floors, a clear closes only its own zone, two zones confirm a fire (GB 50116 §4.1.6), and the
key migration works on a database that already holds alarms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from cloud.alarms.engine import DecisionEngine
from cloud.alarms.schema import all_migrations
from cloud.alarms.testkit import SITE, insert_event, seed
from cloud.db import DatabaseConfig
from cloud.db.migrate import migrate

pytestmark = pytest.mark.integration


def rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def zone(n: int, area: str | None = None) -> dict[str, Any]:
    loc: dict[str, Any] = {"site": SITE, "building": "B1", "floor": n}
    if area:
        loc["area"] = area
    return loc


async def test_zones_of_one_panel_are_separate_alarms_at_their_floors(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:

        def fire(n: int, active: bool = True) -> str:
            return insert_event(conn, "panel1", "fire.alarm", key=f"fire.alarm#{n}", location=zone(n, "east"),
                                detail={"zone": n}, active=active, notify=False)

        await engine.handle_events([fire(12)])
        assert rows(db, "SELECT count(*) FROM incidents") == [(0,)]  # one signal: no confirmed fire yet
        await engine.handle_events([fire(12)])  # the same zone again: an occurrence, not a second signal
        assert rows(db, "SELECT key, occurrence_count FROM alarms") == [("fire.alarm#12", 2)]
        assert rows(db, "SELECT count(*) FROM incidents") == [(0,)]
        clock.advance(20)
        await engine.handle_events([fire(13)])
        clock.advance(20)
        await engine.handle_events([fire(12, active=False)])
    got = rows(db, "SELECT key, type, active, building, floor, area FROM alarms ORDER BY key")
    assert got == [
        ("fire.alarm#12", "fire.alarm", False, "B1", 12, "east"),
        ("fire.alarm#13", "fire.alarm", True, "B1", 13, "east"),
    ]
    # two zones are two independent signals: a confirmed fire with both alarms, and the linkage plan runs
    incidents = rows(db, "SELECT kind, building, alarm_ids FROM incidents")
    ids = [i for (i,) in rows(db, "SELECT id FROM alarms ORDER BY id")]
    assert incidents == [("fire", "B1", ids)]
    commands = rows(db, "SELECT device_id, command FROM commands ORDER BY device_id")
    assert commands == [("door1", "release_all"), ("door2", "release_all"),
                        ("elev1", "fire_recall"), ("elev2", "fire_recall")]
    # the fire work order is at the zone's floor
    assert rows(db, "SELECT type, building, floor FROM work_orders") == [("fire", "B1", 13)]


async def test_an_event_without_location_is_at_the_device_and_old_rows_read_as_key_type(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:
        await engine.handle_events([insert_event(conn, "panel1", "fire.power_fault", severity="major", notify=False)])
        # an event stored before keys existed (key NULL) is keyed by its type: its clear still finds the alarm
        legacy = insert_event(conn, "panel1", "fire.power_fault", severity="major", active=False, notify=False)
        conn.execute("UPDATE events SET key = NULL WHERE id = %s", (legacy,))
        await engine.handle_events([legacy])
    assert rows(db, "SELECT key, active, building, floor FROM alarms") == [("fire.power_fault", False, "B1", 1)]


async def test_a_clear_of_another_key_leaves_the_alarm_alone(db, pool, rules, clock):
    engine = DecisionEngine(pool, rules, clock=clock)
    with psycopg.connect(db, autocommit=True) as conn:
        await engine.handle_events([
            insert_event(conn, "elev1", "elevator.entrapment", key="elevator.entrapment.at_floor", notify=False)])
        other = "elevator.entrapment.between_floors"
        await engine.handle_events([
            insert_event(conn, "elev1", "elevator.entrapment", key=other, active=False, notify=False)])
    assert rows(db, "SELECT key, active FROM alarms") == [("elevator.entrapment.at_floor", True)]
    assert rows(db, "SELECT outcome, reason FROM alarm_event_links ORDER BY ts") == [
        ("raised", None), ("ignored", "no active alarm to clear")]


def test_key_migration_on_a_database_that_already_holds_alarms(pg_dsn: str) -> None:
    db = DatabaseConfig(dsn=pg_dsn, flavour="native")
    before = [m for m in all_migrations() if m.version not in (11, 111)]
    assert len(before) == len(all_migrations()) - 2
    migrate(db, before)
    seed(pg_dsn)
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (id, gateway_id, seq, device_id, type, severity, active, ts) "
            "VALUES (gen_random_uuid(), 'gw1', 1, 'panel1', 'fire.alarm', 'critical', true, %s)", (now,))
        for device, active in (("panel1", True), ("panel1", False), ("smoke1", True)):
            conn.execute(
                "INSERT INTO alarms (site_id, device_id, building, type, severity, active, first_ts, last_ts) "
                "VALUES ('s1', %s, 'B1', 'fire.alarm', 'critical', %s, %s, %s)", (device, active, now, now))
    result = migrate(db, all_migrations())
    assert result.applied == [11, 111]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT device_id, key, active FROM alarms ORDER BY id").fetchall() == [
            ("panel1", "fire.alarm", True), ("panel1", "fire.alarm", False), ("smoke1", "fire.alarm", True)]
        assert conn.execute("SELECT key, location FROM events").fetchall() == [(None, None)]
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'alarms'")}
        assert "alarms_one_active_key" in indexes and "alarms_one_active" not in indexes
        # now a second zone of the panel is a second active alarm; the same key twice is still refused
        insert = ("INSERT INTO alarms (site_id, device_id, building, type, key, severity, first_ts, last_ts) "
                  "VALUES ('s1', 'panel1', 'B1', 'fire.alarm', %s, 'critical', now(), now())")
        conn.execute(insert, ("fire.alarm#13",))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("fire.alarm",))
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute("INSERT INTO alarms (device_id, type, severity, first_ts, last_ts) "
                         "VALUES ('x', 't', 'minor', now(), now())")
    assert migrate(db, all_migrations()).applied == []  # re-runnable
    assert result.already == [m.version for m in before]
