"""Zone rules with an alarm lifecycle: one alarm per episode, raised after a dwell, cleared after a quiet time."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray

from device_profiles.camera import EbikeInElevatorRule, FireLaneRule, IntrusionRule, ScheduleWindow
from edge.video.base import Box, Detection, EventKind
from edge.video.occupancy import OccupancyMap
from edge.video.tracker import Track
from edge.video.zones import Zone

log = logging.getLogger(__name__)

Transition = Literal["raise", "clear"]
DetailValue = float | int | str | bool
Blocks = NDArray[np.bool_] | None


@dataclass
class Analysis:
    """The result of analysing one frame (detector + tracker + occupancy)."""

    ts: float
    detections: list[Detection]
    tracks: list[Track]
    occupancy: OccupancyMap | None


class DwellAlarm:
    """clear → pending (condition seen) → active (held ``dwell_s``) → clear (absent ``clear_s``).

    While pending, gaps shorter than ``gap_s`` (detector flicker, a frame lost) do not restart the
    dwell. While active, nothing re-raises: a flickering condition only postpones the clear.
    """

    def __init__(self, dwell_s: float, clear_s: float, gap_s: float) -> None:
        self.dwell_s, self.clear_s, self.gap_s = dwell_s, clear_s, gap_s
        self.state: Literal["clear", "pending", "active"] = "clear"
        self.since: float | None = None
        self.last_true: float | None = None

    def update(self, ts: float, cond: bool) -> Transition | None:
        if cond:
            self.last_true = ts
        if self.state == "clear":
            if cond:
                self.state, self.since = "pending", ts
                if self.dwell_s <= 0:
                    self.state = "active"
                    return "raise"
            return None
        assert self.last_true is not None and self.since is not None
        if self.state == "pending":
            if not cond and ts - self.last_true > self.gap_s:
                self.state, self.since = "clear", None
            elif cond and ts - self.since >= self.dwell_s:
                self.state = "active"
                return "raise"
            return None
        if not cond and ts - self.last_true >= self.clear_s:
            self.state, self.since = "clear", None
            return "clear"
        return None


@dataclass
class Outcome:
    kind: EventKind
    active: bool
    detail: dict[str, DetailValue] = field(default_factory=dict)
    linkage: list[str] = field(default_factory=list)
    boxes: list[tuple[Box, str]] = field(default_factory=list)  # what to draw on the snapshot


class FireLaneEvaluator:
    """Vehicles by class (stationary tracks of ``obstruction_labels`` over the lane) and, as the fallback for
    objects the detector does not know, class-agnostic occupancy; the alarm says which one it was."""

    def __init__(self, rule: FireLaneRule) -> None:
        self.rule = rule
        self.zone = Zone(rule.zone)
        self.alarm = DwellAlarm(rule.dwell_s, rule.clear_s, rule.gap_s)
        self.uses_occupancy = rule.occupancy_fallback

    def vehicles(self, a: Analysis, ts: float) -> list[Track]:
        found = [
            t
            for t in a.tracks
            if t.label in self.rule.obstruction_labels
            and t.misses == 0
            and t.still_for(ts) >= self.rule.still_s
            and self.zone.overlap(t.box) >= 0.3
        ]
        return sorted(found, key=lambda t: -t.score)

    def evaluate(self, a: Analysis, ts: float, observed_at: datetime, zone_blocks: Blocks) -> Outcome | None:
        blocks = zone_blocks if zone_blocks is not None else np.zeros((1, 1), bool)
        frac = a.occupancy.fraction(blocks) if a.occupancy is not None and self.uses_occupancy else 0.0
        vehicles = self.vehicles(a, ts)
        cond = bool(vehicles) or frac >= self.rule.min_area
        started = self.alarm.since
        tr = self.alarm.update(ts, cond)
        if tr is None:
            return None
        boxes: list[tuple[Box, str]] = [(t.box, f"{t.label} #{t.id}") for t in vehicles]
        bbox = a.occupancy.bbox(blocks) if a.occupancy is not None and self.uses_occupancy else None
        if bbox is not None and tr == "raise" and not vehicles:
            boxes.append((bbox, "unclassified obstruction"))
        detail: dict[str, DetailValue] = {
            "occupied_fraction": round(frac, 3),
            "method": "detection" if vehicles else "occupancy",
        }
        if tr == "raise":
            detail["dwell_s"] = round(ts - (started if started is not None else ts), 2)
            if vehicles:
                detail["object"] = vehicles[0].label
                detail["score"] = round(vehicles[0].score, 3)
                detail["vehicles"] = len(vehicles)
            else:
                detail["object"] = "unclassified occupancy"
            return Outcome("fire_lane.blocked", True, detail, boxes=boxes)
        return Outcome("fire_lane.cleared", False, detail, boxes=boxes)


class EbikeEvaluator:
    """Detection mode (the model knows bikes): a bicycle/motorcycle track with ``min_frames`` analysed frames
    inside the car zone; a person, a pram or a trolley alone never fire. Occupancy mode (person-only model):
    a large object on the car floor, which cannot tell a trolley from an e-bike."""

    def __init__(self, rule: EbikeInElevatorRule, detector_labels: set[str]) -> None:
        self.rule = rule
        self.zone = Zone(rule.zone)
        self.alarm = DwellAlarm(rule.dwell_s, rule.clear_s, gap_s=2.0)
        self.method = "detection" if detector_labels & set(rule.labels) else "occupancy"
        self.uses_occupancy = self.method == "occupancy"
        if self.uses_occupancy:
            log.info("rule %s: the detector knows no bike class; using large-object occupancy", rule.name)

    def evaluate(self, a: Analysis, ts: float, observed_at: datetime, zone_blocks: Blocks) -> Outcome | None:
        boxes: list[tuple[Box, str]] = []
        hits: list[Track] = []
        if self.method == "detection":
            hits = [
                t
                for t in a.tracks
                if t.label in self.rule.labels
                and t.hits >= self.rule.min_frames
                and t.misses == 0  # seen in the last analysis (flicker is the alarm's gap tolerance)
                and self.zone.overlap(t.box) >= 0.3
            ]
            cond = bool(hits)
            frac = 0.0
            boxes = [(t.box, f"{t.label} #{t.id}") for t in hits]
        else:
            blocks = zone_blocks if zone_blocks is not None else np.zeros((1, 1), bool)
            frac = a.occupancy.fraction(blocks) if a.occupancy is not None else 0.0
            cond = frac >= self.rule.min_area
            bbox = a.occupancy.bbox(blocks) if a.occupancy is not None else None
            if bbox is not None:
                boxes = [(bbox, "large object")]
        tr = self.alarm.update(ts, cond)
        if tr is None:
            return None
        detail: dict[str, DetailValue] = {"method": self.method, "occupied_fraction": round(frac, 3)}
        if self.rule.elevator_device_id:
            detail["elevator_device_id"] = self.rule.elevator_device_id
        if tr == "raise":
            if hits:
                best = max(hits, key=lambda t: t.score)
                detail["object"] = best.label
                detail["score"] = round(best.score, 3)
                detail["track_id"] = best.id
            else:
                detail["object"] = "unclassified large object"
            return Outcome("elevator.ebike_detected", True, detail, list(self.rule.linkage), boxes)
        return Outcome("elevator.ebike_cleared", False, detail)


def in_schedule(windows: list[ScheduleWindow], when: datetime, tz: str) -> bool:
    try:
        local = when.astimezone(ZoneInfo(tz))
    except ZoneInfoNotFoundError:
        log.warning("unknown timezone %r, using UTC", tz)
        local = when
    now = local.time()
    for w in windows:
        start = time.fromisoformat(w.start)
        end = time.max if w.end == "24:00" else time.fromisoformat(w.end)
        if start <= end:
            if local.weekday() in w.days and start <= now < end:
                return True
        else:  # crosses midnight: the part after midnight belongs to the previous day's window
            if local.weekday() in w.days and now >= start:
                return True
            if (local.weekday() - 1) % 7 in w.days and now < end:
                return True
    return False


class IntrusionEvaluator:
    def __init__(self, rule: IntrusionRule) -> None:
        self.rule = rule
        self.zone = Zone(rule.zone)
        self.alarm = DwellAlarm(rule.dwell_s, rule.clear_s, gap_s=2.0)
        self.uses_occupancy = False

    def evaluate(self, a: Analysis, ts: float, observed_at: datetime, zone_blocks: Blocks) -> Outcome | None:
        inside = [t for t in a.tracks if t.label in self.rule.labels and self.zone.contains_foot(t.box)]
        armed = in_schedule(self.rule.schedule, observed_at, self.rule.timezone)
        tr = self.alarm.update(ts, armed and bool(inside))
        if tr is None:
            return None
        detail: dict[str, DetailValue] = {"persons": len(inside)}
        if tr == "raise":
            if inside:
                detail["track_id"] = inside[0].id
            return Outcome("intrusion.detected", True, detail, boxes=[(t.box, f"{t.label} #{t.id}") for t in inside])
        return Outcome("intrusion.cleared", False, detail)


Evaluator = FireLaneEvaluator | EbikeEvaluator | IntrusionEvaluator
