"""The per-frame pipeline: gate → detector → tracker → occupancy → zone rules → events with snapshots.

:class:`FramePipeline` is synchronous and driven by frame timestamps, so tests and the simulators can
replay minutes of video in seconds (a simulated clock); :class:`edge.video.analytics.VideoAnalytics`
runs it on a worker thread, off the event loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from device_profiles.camera import CameraSpec, EbikeInElevatorRule, FireLaneRule, IntrusionRule
from edge.video.base import Box, Frame, VideoEvent
from edge.video.detectors import Detector
from edge.video.evidence import EvidenceStore
from edge.video.gate import MotionGate
from edge.video.occupancy import OccupancyModel
from edge.video.rules import Analysis, EbikeEvaluator, Evaluator, FireLaneEvaluator, IntrusionEvaluator
from edge.video.tracker import IouTracker

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    frames: int = 0
    analysed: int = 0
    inference_s: float = 0.0
    pipeline_s: float = 0.0


def _expand(box: Box, fx: float = 0.15, fy: float = 0.08) -> Box:
    x1, y1, x2, y2 = box
    dw, dh = (x2 - x1) * fx, (y2 - y1) * fy
    return (max(0.0, x1 - dw), max(0.0, y1 - dh), min(1.0, x2 + dw), min(1.0, y2 + dh))


class FramePipeline:
    def __init__(
        self,
        camera_id: str,
        spec: CameraSpec,
        detector: Detector,
        evidence: EvidenceStore | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.spec = spec
        self.detector = detector
        self.evidence = evidence
        self.gate = MotionGate(spec.gate)
        self.tracker = IouTracker()
        self.occupancy = OccupancyModel(spec.occupancy)
        labels = set(detector.labels.values())
        self.evaluators: list[Evaluator] = []
        for rule in spec.rules:
            if isinstance(rule, FireLaneRule):
                self.evaluators.append(FireLaneEvaluator(rule))
            elif isinstance(rule, EbikeInElevatorRule):
                self.evaluators.append(EbikeEvaluator(rule, labels))
            elif isinstance(rule, IntrusionRule):
                self.evaluators.append(IntrusionEvaluator(rule))
        self.ignore_labels = {
            lbl for r in spec.rules if isinstance(r, FireLaneRule | EbikeInElevatorRule) for lbl in r.ignore_labels
        }
        self.needs_occupancy = any(e.uses_occupancy for e in self.evaluators)
        self._zone_blocks: dict[str, NDArray[np.bool_]] = {}
        self.last: Analysis | None = None
        self.stats = PipelineStats()
        self._active_snapshots: dict[str, object] = {}

    def _blocks_for(self, ev: Evaluator) -> NDArray[np.bool_] | None:
        size = self.occupancy.size
        if not ev.uses_occupancy or size is None:
            return None
        blocks = self._zone_blocks.get(ev.rule.name)
        if blocks is None:
            blocks = self.occupancy.zone_blocks(ev.zone.mask(*size))
            self._zone_blocks[ev.rule.name] = blocks
        return blocks

    def analyse(self, frame: Frame) -> Analysis:
        t0 = time.perf_counter()
        detections = self.detector.detect(frame.image)
        self.stats.inference_s += time.perf_counter() - t0
        tracks = self.tracker.update(detections, frame.ts)
        occ = None
        if self.needs_occupancy:
            masked = [_expand(t.box) for t in self.tracker.tracks if t.label in self.ignore_labels]
            occ = self.occupancy.analyse(frame.image, masked)
        return Analysis(frame.ts, detections, tracks, occ)

    def process(self, frame: Frame) -> list[VideoEvent]:
        t0 = time.perf_counter()
        self.stats.frames += 1
        if self.last is None or self.gate.check(frame.image, frame.ts):
            if self.last is None:
                self.gate.check(frame.image, frame.ts)
            self.last = self.analyse(frame)
            self.stats.analysed += 1
        analysis = self.last
        events: list[VideoEvent] = []
        for ev in self.evaluators:
            out = ev.evaluate(analysis, frame.ts, frame.observed_at, self._blocks_for(ev))
            if out is None:
                continue
            snapshot = None
            if self.evidence is not None:
                boxes = list(out.boxes) + [(d.box, f"{d.label} {d.score:.2f}") for d in analysis.detections]
                snapshot = self.evidence.snapshot(
                    frame.image,
                    camera_id=self.camera_id,
                    rule=ev.rule.name,
                    observed_at=frame.observed_at,
                    zone=list(ev.rule.zone),
                    boxes=boxes,
                    caption=out.kind,
                    alarm=out.active,
                )
                previous = self._active_snapshots.pop(ev.rule.name, None)
                if isinstance(previous, type(snapshot)):
                    self.evidence.unpin(previous)
                if out.active:
                    self.evidence.pin(snapshot)
                    self._active_snapshots[ev.rule.name] = snapshot
            event = VideoEvent(
                camera_id=self.camera_id,
                rule=ev.rule.name,
                kind=out.kind,
                active=out.active,
                severity=ev.rule.severity,
                observed_at=frame.observed_at,
                snapshot_path=snapshot,
                detail=out.detail,
                linkage=out.linkage,
            )
            log.info("camera %s rule %s: %s", self.camera_id, ev.rule.name, out.kind)
            events.append(event)
        self.stats.pipeline_s += time.perf_counter() - t0
        return events
