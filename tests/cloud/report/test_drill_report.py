"""The fire-drill report from records inserted into a real PostgreSQL and run through the real decision
engine (alarms, the confirmed-fire incident, its linkage commands and their acknowledgements): every figure
in the report is checked against the rows it was built from."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from cloud.alarms import repository
from cloud.alarms.engine import DecisionEngine
from cloud.alarms.testkit import insert_ack, insert_event
from cloud.report.drill import DrillQuery, build_drill_report
from cloud.report.html import render_html

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.sent.append((topic, payload))


def _event(conn: psycopg.Connection[Any], device: str, etype: str, ts, transmit_s: float, **kw: Any) -> str:
    """An event as ingest stores it: observed at ``ts`` by the gateway, received ``transmit_s`` later."""
    eid = insert_event(conn, device, etype, ts=ts, notify=False, **kw)
    conn.execute("UPDATE events SET received_at = ts + make_interval(secs => %s) WHERE id = %s", (transmit_s, eid))
    return eid


async def _drill(db: str, pool: Any, rules: Any, clock: Any) -> dict[str, Any]:
    """B1: two detectors and panel zone 12 (the second detector's message arrives 12.5 s late); B2: a detector
    outside the building asked for; one event before the window."""
    t0 = clock.now()
    engine = DecisionEngine(pool, rules, clock=clock, publisher=Recorder())
    ids: dict[str, str] = {}
    with psycopg.connect(db, autocommit=True) as conn:
        _event(conn, "smoke1", "smoke.alarm", t0 - timedelta(minutes=10), 0.5)  # before --since
        plan = [  # in the order the backend receives them
            ("sd1", "smoke1", "smoke.alarm", 5.0, 0.8, {"detail": {"smoke.obscuration": 6.0}}),
            ("zone12", "panel1", "fire.alarm", 20.0, 1.2,
             {"key": "fire.alarm#12", "detail": {"zone": 12},
              "location": {"site": "s1", "building": "B1", "floor": 12}}),
            ("b2", "smoke9", "smoke.alarm", 22.0, 0.4, {}),
            ("sd2", "smoke2", "smoke.alarm", 15.0, 12.5, {}),
        ]
        for name, device, etype, at, transmit, kw in plan:
            ids[name] = _event(conn, device, etype, t0 + timedelta(seconds=at), transmit, **kw)
            clock.set(t0 + timedelta(seconds=at + transmit))
            await engine.handle_events([ids[name]])
        # The gateway's own linkage (an info event, not a signal).
        insert_event(conn, "door1", "linkage.action", severity="info", ts=t0 + timedelta(seconds=16), notify=False,
                     key="linkage.action@fire-release-doors",
                     detail={"rule": "fire-release-doors", "target": "door1", "command": "release_all",
                             "outcome": "succeeded"})
        commands = conn.execute("SELECT id, device_id FROM commands ORDER BY device_id").fetchall()
        assert len(commands) == 4  # doors 1-2 released, lifts 1-2 recalled (detector 1 + zone 12 confirm the fire)
        clock.set(t0 + timedelta(seconds=30))
        for cid, device in commands:
            if device == "elev2":
                insert_ack(conn, str(cid), device, "failed", reason="car in inspection mode")
            else:
                insert_ack(conn, str(cid), device, "succeeded")
        acks = [r[0] for r in conn.execute("SELECT id FROM command_acks").fetchall()]
        await engine.handle_acks(acks)
        alarm_of = dict(conn.execute("SELECT event_id::text, alarm_id FROM alarm_event_links").fetchall())
    async with pool.connection() as aconn:
        # What the serve process records when it pushes a raise to a console (first push only).
        assert await repository.note_shown(aconn, alarm_of[ids["sd1"]], t0 + timedelta(seconds=6.1), "pm")
        assert not await repository.note_shown(aconn, alarm_of[ids["sd1"]], t0 + timedelta(seconds=9), "admin")
        assert await repository.note_shown(aconn, alarm_of[ids["zone12"]], t0 + timedelta(seconds=21.5), "pm")
        await repository.acknowledge(aconn, alarm_of[ids["sd1"]], "pm", t0 + timedelta(seconds=40))
    sim = {"scenario": "fire drill B1", "started_at": t0.isoformat(), "injected": [
        {"device": "smoke1", "action": "smoke", "params": {"alarm": True}, "outcome": "ok",
         "wall_time": (t0 + timedelta(seconds=4.5)).isoformat()},
        {"device": "smoke2", "action": "smoke", "params": {"alarm": True}, "outcome": "ok",
         "wall_time": (t0 + timedelta(seconds=14.2)).isoformat()},
        {"device": "panel1", "action": "set", "params": {"point": "zone13.fire", "value": True}, "outcome": "ok",
         "wall_time": (t0 + timedelta(seconds=18.0)).isoformat()},
        {"device": "panel1", "action": "set", "params": {"point": "zone12.fire", "value": True}, "outcome": "ok",
         "wall_time": (t0 + timedelta(seconds=19.0)).isoformat()},
    ]}
    return {"t0": t0, "ids": ids, "alarm_of": alarm_of, "sim": sim}


async def test_drill_report_figures_match_the_records(db, pool, rules, clock, tmp_path: Path) -> None:
    d = await _drill(db, pool, rules, clock)
    t0 = d["t0"]
    query = DrillQuery(t0 - timedelta(minutes=1), t0 + timedelta(hours=1), building="B1")
    with psycopg.connect(db) as conn:
        report = build_drill_report(conn, query, d["sim"])
        events = {str(r[0]): r[1:] for r in conn.execute(
            "SELECT id, ts, received_at FROM events WHERE type IN ('smoke.alarm', 'fire.alarm')").fetchall()}
        shown = dict(conn.execute("SELECT alarm_id, min(ts) FROM alarm_timeline WHERE kind = 'shown' "
                                  "GROUP BY alarm_id").fetchall())
        acked = {r[0]: r[1:] for r in conn.execute("SELECT id, acked_by, acked_at FROM alarms").fetchall()}
        commands = conn.execute("SELECT device_id, command, state, reason, created_at, finished_at FROM commands "
                                "ORDER BY created_at, id").fetchall()

    by_key = {(s.device_id, s.key): s for s in report.signals}
    assert set(by_key) == {("smoke1", "smoke.alarm"), ("smoke2", "smoke.alarm"), ("panel1", "fire.alarm#12")}
    for s in report.signals:  # the figures are the records' differences
        ts, received = events[s.event_id]
        assert s.seen_at == ts and s.stored_at == received
        assert s.transmission_s == pytest.approx((received - ts).total_seconds())
        assert s.alarm_id == d["alarm_of"][s.event_id]
        assert s.shown_at == shown.get(s.alarm_id)
        assert (s.acked_by, s.acked_at) == acked[s.alarm_id]
    sd1, sd2, zone = by_key[("smoke1", "smoke.alarm")], by_key[("smoke2", "smoke.alarm")], by_key[
        ("panel1", "fire.alarm#12")]
    assert sd1.transmission_s == pytest.approx(0.8) and sd1.display_s == pytest.approx(1.1) and sd1.passed
    assert sd1.shown_to == "pm" and sd1.acked_by == "pm"
    assert sd1.readings == {"smoke.obscuration": 6.0}
    assert sd2.transmission_s == pytest.approx(12.5) and not sd2.transmission_ok and not sd2.passed
    assert sd2.display_s is None and sd2.display_ok is None  # no console showed it: not recorded, not failed
    assert zone.transmission_s == pytest.approx(1.2) and zone.display_s == pytest.approx(1.5) and zone.passed
    assert zone.floor == 12 and zone.building == "B1"
    # Detection from the simulator's report: the zone 12 injection, not zone 13's.
    assert sd1.detection_s == pytest.approx(0.5) and sd2.detection_s == pytest.approx(0.8)
    assert zone.detection_s == pytest.approx(1.0)

    backend = [c for c in report.linkage if c.source == "backend"]
    assert [(c.device_id, c.command, c.outcome, c.reason, c.issued_at, c.finished_at) for c in backend] == [
        tuple(r) for r in commands]
    assert {c.device_id: c.outcome for c in backend} == {
        "door1": "succeeded", "door2": "succeeded", "elev1": "succeeded", "elev2": "failed"}
    (gw,) = [c for c in report.linkage if c.source == "gateway"]
    assert (gw.device_id, gw.command, gw.outcome, gw.origin) == (
        "door1", "release_all", "succeeded", "gateway rule fire-release-doors")
    (incident,) = report.incidents
    assert incident.kind == "fire" and incident.building == "B1"

    fig = report.figures()
    assert fig["signals"] == 3 and fig["signals_within_limit"] == 2 and not report.passed
    assert fig["transmission_max_s"] == pytest.approx(12.5) and fig["transmission_median_s"] == pytest.approx(1.2)
    assert fig["shown_signals"] == 2 and fig["acknowledged_signals"] == 1
    assert fig["linkage_commands"] == 5 and fig["linkage_succeeded"] == 4

    page = render_html(report, t0.tzinfo)
    assert "<svg" in page and "GB/T 26875.1" in page
    fetched = re.sub(r'xmlns="[^"]*"', "", page)  # the SVG namespace is a name, not a download
    assert not re.search(r"<script|<link|src=|url\(|https?://", fetched)  # self-contained: nothing fetched
    assert page.count('<span class="fail">FAIL</span>') == 2  # the overall verdict and smoke2's transmission
    assert "car in inspection mode" in page and "fire.alarm#12" in page and "12.50 s" in page

    # Without --building: the B2 detector is in, the event before the window is not.
    with psycopg.connect(db) as conn:
        everything = build_drill_report(conn, DrillQuery(query.since, query.until))
    assert len(everything.signals) == 4


async def test_report_drill_command(db, pool, rules, clock, tmp_path: Path) -> None:
    from xiaoqu.cli import app  # as `xiaoqu report drill …`

    d = await _drill(db, pool, rules, clock)
    sim = tmp_path / "sim-report.json"
    sim.write_text(json.dumps(d["sim"]))
    out = tmp_path / "drill.html"
    t0 = d["t0"]
    result = CliRunner().invoke(app, [
        "report", "drill", "--dsn", db, "--since", (t0 - timedelta(minutes=1)).isoformat(),
        "--until", (t0 + timedelta(hours=1)).isoformat(), "--building", "B1", "--sim-report", str(sim),
        "--out", str(out), "--tz", "Asia/Shanghai"])
    assert result.exit_code == 1, result.output  # one signal over the limit
    assert "2/3 signals within 10 s (transmission max 12.50 s" in result.output
    assert "4/5 linkage commands succeeded; 1 acknowledged" in result.output
    page = out.read_text(encoding="utf-8")
    assert "fire drill B1" in page and "Asia/Shanghai" in page
    assert (t0 + timedelta(seconds=5)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).strftime(
        "%H:%M:%S.000") in page

    bad = CliRunner().invoke(app, ["report", "drill", "--dsn", db, "--since", "yesterday"])
    assert bad.exit_code == 2 and "expected an ISO 8601 time" in bad.output
    (tmp_path / "not.json").write_text("{}")
    bad = CliRunner().invoke(app, ["report", "drill", "--dsn", db, "--since", "2h",
                                   "--sim-report", str(tmp_path / "not.json")])
    assert bad.exit_code == 2 and "not a simulator report" in bad.output
