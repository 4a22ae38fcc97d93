"""Greedy IoU tracker: one physical object keeps one track id across analysed frames."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.video.base import Box, Detection


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    label: str
    box: Box
    score: float
    first_seen: float
    last_seen: float
    hits: int = 1
    misses: int = 0
    history: list[Box] = field(default_factory=list)
    anchor: Box | None = None  # where the object was when it last moved
    still_since: float | None = None  # since when it has stayed near ``anchor``

    @property
    def age_s(self) -> float:
        return self.last_seen - self.first_seen

    def still_for(self, ts: float) -> float:
        """How long (s, up to ``ts``) the object has not moved beyond the tracker's ``still_iou``."""
        return ts - self.still_since if self.still_since is not None else 0.0


class IouTracker:
    """Matches detections to tracks of the same label by IoU; a track survives ``max_misses`` analysed
    frames without a match (covers detector flicker) and is reported only after ``min_hits``."""

    def __init__(
        self, iou_threshold: float = 0.3, max_misses: int = 3, min_hits: int = 1, still_iou: float = 0.7
    ) -> None:
        self.iou_threshold = iou_threshold
        self.still_iou = still_iou
        self.max_misses = max_misses
        self.min_hits = min_hits
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, detections: list[Detection], ts: float) -> list[Track]:
        pairs = sorted(
            ((iou(t.box, d.box), ti, di) for ti, t in enumerate(self.tracks) for di, d in enumerate(detections)
             if t.label == d.label),
            reverse=True,
        )  # fmt: skip
        used_t: set[int] = set()
        used_d: set[int] = set()
        for score, ti, di in pairs:
            if score < self.iou_threshold or ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            t, d = self.tracks[ti], detections[di]
            t.box, t.score, t.last_seen, t.misses = d.box, d.score, ts, 0
            t.hits += 1
            if t.anchor is None or iou(t.anchor, d.box) < self.still_iou:  # it moved: stillness starts again
                t.anchor, t.still_since = d.box, ts
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        for di, d in enumerate(detections):
            if di not in used_d:
                self.tracks.append(Track(self._next_id, d.label, d.box, d.score, ts, ts, anchor=d.box, still_since=ts))
                self._next_id += 1
        return self.active()

    def active(self) -> list[Track]:
        return [t for t in self.tracks if t.hits >= self.min_hits]
