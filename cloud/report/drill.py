"""The fire-drill report: what the backend recorded about each fire/smoke signal of a drill, measured
against the GB/T 26875.1 §4.1.2.1 limit (a fire alarm reaches the monitoring centre within 10 s).

For every life-safety signal raised in the window (an event with ``active`` and ``life_safety``: a detector's
``smoke.alarm``, a panel zone's ``fire.alarm#12``):

- **seen** — ``events.ts``: when the gateway observed it at the device (the contract's observation time);
- **stored** — ``events.received_at``: when the backend's ingest received it (stored in the same commit);
- **shown** — the alarm timeline's first ``shown`` entry: when the serve process pushed the alarm's raise
  to a console over the WebSocket (none when no console was connected);
- the alarm it raised (or was counted in), who acknowledged it and when, when it cleared;
- optionally **injected** — when the simulator set the device (its report JSON), so detection time shows.

Transmission = stored − seen, checked against the 10 s limit per signal; display = shown − seen, checked
against the fire-control-room display rule (also 10 s). Linkage: the backend's linkage commands (incident
plans) with their outcome, and the gateways' own ``linkage.action`` events. Queries only; the HTML is
:mod:`cloud.report.html`, the command ``cloud.report.cli``.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypedDict
from uuid import UUID

import psycopg
from pydantic import JsonValue

from cloud.alarms.models import Incident
from cloud.alarms.repository import SHOWN
from cloud.records import Record, columns, row_factory

log = logging.getLogger(__name__)

LIMIT_S = 10.0
"""GB/T 26875.1 §4.1.2.1: the transmission device passes a fire alarm to the monitoring centre within 10 s."""


@dataclass(frozen=True)
class DrillQuery:
    since: datetime
    until: datetime
    building: str | None = None
    site: str | None = None


@dataclass
class Injection:
    """One thing the simulator did to a device (from its report JSON)."""

    at: datetime
    device: str
    action: str
    params: dict[str, JsonValue]


@dataclass
class Signal:
    event_id: str
    device_id: str
    key: str
    type: str
    gateway_id: str
    building: str | None
    floor: int | None
    area: str | None
    seen_at: datetime
    stored_at: datetime
    alarm_id: int | None
    alarm_outcome: str | None
    alarm_at: datetime | None
    shown_at: datetime | None
    shown_to: str | None
    acked_at: datetime | None
    acked_by: str | None
    cleared_at: datetime | None
    incident_id: int | None
    readings: dict[str, JsonValue] = field(default_factory=dict)
    injected_at: datetime | None = None

    @property
    def transmission_s(self) -> float:
        return (self.stored_at - self.seen_at).total_seconds()

    @property
    def display_s(self) -> float | None:
        return None if self.shown_at is None else (self.shown_at - self.seen_at).total_seconds()

    @property
    def detection_s(self) -> float | None:
        return None if self.injected_at is None else (self.seen_at - self.injected_at).total_seconds()

    @property
    def transmission_ok(self) -> bool:
        return self.transmission_s <= LIMIT_S

    @property
    def display_ok(self) -> bool | None:
        d = self.display_s
        return None if d is None else d <= LIMIT_S

    @property
    def passed(self) -> bool:
        """Within the limit: transmitted in ≤ 10 s, and shown in ≤ 10 s where a console showed it."""
        return self.transmission_ok and self.display_ok is not False

    @property
    def where(self) -> str:
        parts = [self.building or "", f"F{self.floor}" if self.floor is not None else "", self.area or ""]
        return " ".join(p for p in parts if p)


@dataclass
class LinkageCommand:
    """A linkage command: the backend's (an incident's plan) or one a gateway ran itself."""

    source: str  # "backend" | "gateway"
    device_id: str
    command: str
    origin: str
    issued_at: datetime
    finished_at: datetime | None
    outcome: str
    reason: str | None
    sent_at: datetime | None = None


class DrillFigures(TypedDict):
    """The headline numbers of a drill report."""

    signals: int
    signals_within_limit: int
    transmission_median_s: float | None
    transmission_max_s: float | None
    display_median_s: float | None
    display_max_s: float | None
    shown_signals: int
    acknowledged_signals: int
    linkage_commands: int
    linkage_succeeded: int


@dataclass
class DrillReport:
    query: DrillQuery
    signals: list[Signal]
    linkage: list[LinkageCommand]
    incidents: list[Incident]
    scenario: str | None = None
    sim_started_at: datetime | None = None
    injections: list[Injection] = field(default_factory=list)
    limit_s: float = LIMIT_S

    @property
    def passed(self) -> bool:
        return bool(self.signals) and all(s.passed for s in self.signals)

    def figures(self) -> DrillFigures:
        """The headline numbers (also printed by the command)."""
        trans = [s.transmission_s for s in self.signals]
        disp = [d for s in self.signals if (d := s.display_s) is not None]
        acks = [(s.acked_at - s.seen_at).total_seconds() for s in self.signals if s.acked_at is not None]
        return DrillFigures({
            "signals": len(self.signals),
            "signals_within_limit": sum(1 for s in self.signals if s.passed),
            "transmission_median_s": statistics.median(trans) if trans else None,
            "transmission_max_s": max(trans) if trans else None,
            "display_median_s": statistics.median(disp) if disp else None,
            "display_max_s": max(disp) if disp else None,
            "shown_signals": len(disp),
            "acknowledged_signals": len(acks),
            "linkage_commands": len(self.linkage),
            "linkage_succeeded": sum(1 for c in self.linkage if c.outcome == "succeeded"),
        })


class SignalRow(Record):
    """A life-safety event with the alarm it raised (or was counted in) and its first "shown" entry."""

    id: UUID
    device_id: str
    key: str
    type: str
    gateway_id: str
    ts: datetime
    received_at: datetime
    detail: dict[str, JsonValue]
    building: str | None
    floor: int | None
    area: str | None
    alarm_id: int | None
    alarm_outcome: str | None
    alarm_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None
    cleared_at: datetime | None
    incident_id: int | None
    shown_at: datetime | None
    shown_to: str | None


class CommandRow(Record):
    """A backend linkage command (of an incident's plan)."""

    device_id: str
    command: str
    origin: str
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    state: str
    reason: str | None


class GatewayLinkageRow(Record):
    """A gateway's own ``linkage.action`` event."""

    device_id: str
    ts: datetime
    received_at: datetime
    detail: dict[str, JsonValue]


SIGNALS_SQL = """
SELECT e.id, e.device_id, coalesce(e.key, e.type) AS key, e.type, e.gateway_id, e.ts, e.received_at, e.detail,
       coalesce(e.location->>'building', d.building) AS building,
       CASE WHEN e.location IS NULL THEN d.floor ELSE (e.location->>'floor')::int END AS floor,
       CASE WHEN e.location IS NULL THEN d.area ELSE e.location->>'area' END AS area,
       l.alarm_id, l.outcome AS alarm_outcome,
       a.created_at AS alarm_at, a.acked_at, a.acked_by, a.cleared_at, a.incident_id,
       shown.ts AS shown_at, shown.actor AS shown_to
FROM events e
LEFT JOIN devices d ON d.id = e.device_id
LEFT JOIN alarm_event_links l ON l.event_id = e.id
LEFT JOIN alarms a ON a.id = l.alarm_id
LEFT JOIN LATERAL (
    SELECT t.ts, t.actor FROM alarm_timeline t WHERE t.alarm_id = l.alarm_id AND t.kind = %(shown)s
    ORDER BY t.ts LIMIT 1
) shown ON true
WHERE e.active AND e.life_safety AND e.ts >= %(since)s AND e.ts < %(until)s
  AND (%(building)s::text IS NULL OR coalesce(e.location->>'building', d.building) = %(building)s)
  AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
ORDER BY e.ts, e.id
"""

COMMANDS_SQL = """
SELECT c.device_id, c.command, c.origin, c.created_at, c.sent_at, c.finished_at, c.state, c.reason
FROM commands c
LEFT JOIN devices d ON d.id = c.device_id
LEFT JOIN incidents i ON c.incident_id = i.id
WHERE c.created_at >= %(since)s AND c.created_at < %(until)s AND c.incident_id IS NOT NULL
  AND (%(building)s::text IS NULL OR coalesce(i.building, d.building) = %(building)s)
  AND (%(site)s::text IS NULL OR c.site_id = %(site)s)
ORDER BY c.created_at, c.id
"""

GATEWAY_LINKAGE_SQL = """
SELECT e.device_id, e.ts, e.received_at, e.detail
FROM events e
LEFT JOIN devices d ON d.id = e.device_id
WHERE e.type = 'linkage.action' AND e.ts >= %(since)s AND e.ts < %(until)s
  AND (%(building)s::text IS NULL OR d.building = %(building)s)
  AND (%(site)s::text IS NULL OR d.site_id = %(site)s)
ORDER BY e.ts, e.id
"""

INCIDENTS_SQL = f"""
SELECT {columns(Incident)} FROM incidents
WHERE opened_at >= %(since)s AND opened_at < %(until)s
  AND (%(building)s::text IS NULL OR building = %(building)s)
  AND (%(site)s::text IS NULL OR site_id = %(site)s)
ORDER BY opened_at, id
"""


def build_drill_report(conn: psycopg.Connection[Any], query: DrillQuery,
                       sim_report: Mapping[str, JsonValue] | None = None) -> DrillReport:
    """Read the drill's records from the backend's database (and match the simulator's injections)."""
    params = {"since": query.since, "until": query.until, "building": query.building, "site": query.site,
              "shown": SHOWN}
    with conn.cursor(row_factory=row_factory(SignalRow)) as scur:
        signal_rows = scur.execute(SIGNALS_SQL, params).fetchall()
    with conn.cursor(row_factory=row_factory(CommandRow)) as ccur:
        command_rows = ccur.execute(COMMANDS_SQL, params).fetchall()
    with conn.cursor(row_factory=row_factory(GatewayLinkageRow)) as gcur:
        gateway_rows = gcur.execute(GATEWAY_LINKAGE_SQL, params).fetchall()
    with conn.cursor(row_factory=row_factory(Incident)) as icur:
        incidents = icur.execute(INCIDENTS_SQL, params).fetchall()
    signals = [
        Signal(
            event_id=str(r.id), device_id=r.device_id, key=r.key, type=r.type, gateway_id=r.gateway_id,
            building=r.building, floor=r.floor, area=r.area, seen_at=r.ts, stored_at=r.received_at,
            alarm_id=r.alarm_id, alarm_outcome=r.alarm_outcome, alarm_at=r.alarm_at,
            shown_at=r.shown_at, shown_to=r.shown_to, acked_at=r.acked_at, acked_by=r.acked_by,
            cleared_at=r.cleared_at, incident_id=r.incident_id,
            readings={k: v for k, v in r.detail.items() if k != "zone"},
        )
        for r in signal_rows
    ]
    linkage = [
        LinkageCommand("backend", c.device_id, c.command, c.origin, c.created_at, c.finished_at,
                       c.state, c.reason, c.sent_at)
        for c in command_rows
    ]
    for g in gateway_rows:
        d = g.detail
        reason = d.get("reason")
        linkage.append(LinkageCommand(
            "gateway", g.device_id, str(d.get("command", "?")), f"gateway rule {d.get('rule', '?')}", g.ts,
            g.ts, str(d.get("outcome", "?")), None if reason is None else str(reason)))
    linkage.sort(key=lambda c: c.issued_at)
    report = DrillReport(query, signals, linkage, incidents)
    if sim_report is not None:
        _apply_sim_report(report, sim_report)
    return report


def load_sim_report(path: Path) -> dict[str, JsonValue]:
    """The simulator's report JSON (``xiaoqu sim run --report F``); a clear error when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable simulator report: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("injected"), list):
        raise ValueError(f"{path}: not a simulator report (no 'injected' list)")
    return data


def _apply_sim_report(report: DrillReport, sim: Mapping[str, JsonValue]) -> None:
    scenario = sim.get("scenario")
    report.scenario = None if scenario is None else str(scenario)
    report.sim_started_at = _parse_time(sim.get("started_at"))
    injected = sim.get("injected")
    for item in injected if isinstance(injected, list) else []:
        if not isinstance(item, dict) or item.get("outcome", "ok") != "ok" or not item.get("device"):
            continue
        at = _parse_time(item.get("wall_time"))
        if at is None:
            continue
        params = item.get("params")
        report.injections.append(Injection(at, str(item["device"]), str(item.get("action")),
                                           dict(params) if isinstance(params, dict) else {}))
    for s in report.signals:
        s.injected_at = _matching_injection(s, report.injections)


def _matching_injection(signal: Signal, injections: list[Injection]) -> datetime | None:
    """The simulator's last activating action on the signal's device (and zone) before the gateway saw it."""
    zone = signal.key.rsplit("#", 1)[1] if "#" in signal.key else None
    best: datetime | None = None
    for inj in injections:
        if inj.device != signal.device_id or not (inj.params.get("alarm") is True or inj.params.get("value") is True):
            continue
        point = str(inj.params.get("point", ""))
        if zone is not None and point and not point.startswith(f"zone{zone}."):
            continue
        if signal.seen_at - timedelta(minutes=2) <= inj.at <= signal.seen_at + timedelta(seconds=1):
            best = inj.at if best is None or inj.at > best else best
    return best


def _parse_time(text: JsonValue | None) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def write_drill_report(dsn: str, since: datetime, out: Path, *, until: datetime | None = None,
                       building: str | None = None, sim_report: Path | None = None,
                       tz: tzinfo = UTC) -> DrillReport:
    """Build the report from the database at ``dsn`` and write it as HTML to ``out`` (the demo's last step)."""
    from cloud.report.html import render_html

    query = DrillQuery(since, until or datetime.now(UTC), building)
    sim = load_sim_report(sim_report) if sim_report is not None and sim_report.exists() else None
    with psycopg.connect(dsn) as conn:
        report = build_drill_report(conn, query, sim)
    out.write_text(render_html(report, tz), encoding="utf-8")
    return report
