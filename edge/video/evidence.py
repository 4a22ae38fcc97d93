"""Evidence snapshots: a JPEG with the zone and boxes drawn, kept on the gateway within a size budget."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from device_profiles.camera import EvidenceSpec
from edge.video.base import Box, Image

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class EvidenceStore:
    """Writes snapshots under ``directory``; deletes the oldest files when over ``budget_mb``.

    Files still referenced by an active alarm can be pinned (``pin``) so the budget never removes the
    evidence of an alarm that is still open.
    """

    def __init__(self, directory: Path, spec: EvidenceSpec) -> None:
        self.directory = directory
        self.spec = spec
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pinned: set[Path] = set()
        self._seq = 0

    def snapshot(
        self,
        image: Image,
        *,
        camera_id: str,
        rule: str,
        observed_at: datetime,
        zone: list[tuple[float, float]] | None,
        boxes: list[tuple[Box, str]],
        caption: str,
        alarm: bool,
    ) -> Path:
        img = image
        h, w = img.shape[:2]
        if w > self.spec.max_width:
            scale = self.spec.max_width / w
            small = cv2.resize(img, (self.spec.max_width, round(h * scale)), interpolation=cv2.INTER_AREA)
            img = np.asarray(small, np.uint8)
            h, w = img.shape[:2]
        else:
            img = img.copy()
        colour = (0, 0, 255) if alarm else (0, 200, 0)
        if zone is not None:
            pts = np.round(np.asarray(zone, np.float32) * np.array([w - 1, h - 1], np.float32)).astype(np.int32)
            overlay = img.copy()
            cv2.fillPoly(overlay, [pts], colour)
            cv2.addWeighted(overlay, 0.18, img, 0.82, 0, dst=img)
            cv2.polylines(img, [pts], True, colour, 2)
        for (x1, y1, x2, y2), label in boxes:
            p1, p2 = (int(x1 * w), int(y1 * h)), (int(x2 * w), int(y2 * h))
            cv2.rectangle(img, p1, p2, (0, 165, 255), 2)
            cv2.putText(img, label, (p1[0] + 2, max(p1[1] - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 165, 255), 1)
        text = f"{camera_id} {rule} {caption} {observed_at.strftime('%Y-%m-%d %H:%M:%S')}Z"
        cv2.rectangle(img, (0, 0), (w, 18), (0, 0, 0), -1)
        cv2.putText(img, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1)
        self._seq += 1
        stamp = observed_at.strftime("%Y%m%dT%H%M%S%f")
        name = f"{_SAFE.sub('_', camera_id)}_{_SAFE.sub('_', rule)}_{stamp}_{self._seq}.jpg"
        path = self.directory / name
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.spec.jpeg_quality])
        if not ok:  # pragma: no cover - encoding a uint8 image does not fail
            raise ValueError("JPEG encoding failed")
        path.write_bytes(buf.tobytes())
        self.enforce_budget()
        return path

    def pin(self, path: Path) -> None:
        self.pinned.add(path)

    def unpin(self, path: Path) -> None:
        self.pinned.discard(path)

    def enforce_budget(self) -> int:
        """Delete the oldest unpinned snapshots until the directory fits the budget; returns how many."""
        budget = int(self.spec.budget_mb * 1024 * 1024)
        files = sorted(self.directory.glob("*.jpg"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        total = sum(p.stat().st_size for p in files)
        removed = 0
        for p in files:
            if total <= budget:
                break
            if p in self.pinned:
                continue
            size = p.stat().st_size
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            total -= size
            removed += 1
        if removed:
            log.info("evidence budget: removed %d old snapshot(s) from %s", removed, self.directory)
        return removed
