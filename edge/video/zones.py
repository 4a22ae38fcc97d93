"""Zone polygons in normalised coordinates, rasterised per frame size (cached)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
from numpy.typing import NDArray

from edge.video.base import Box


class Zone:
    def __init__(self, polygon: list[tuple[float, float]]) -> None:
        self.polygon = np.asarray(polygon, dtype=np.float32)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a zone lives as long as its pipeline
    def mask(self, width: int, height: int) -> NDArray[np.bool_]:
        m = np.zeros((height, width), np.uint8)
        pts = np.round(self.polygon * np.array([width - 1, height - 1], np.float32)).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
        return m.astype(bool)

    def contains(self, x: float, y: float) -> bool:
        return bool(cv2.pointPolygonTest(self.polygon.reshape(-1, 1, 2), (float(x), float(y)), False) >= 0)

    def contains_foot(self, box: Box) -> bool:
        """Whether the bottom-centre of a box (where a person stands) is inside the zone."""
        x1, _, x2, y2 = box
        return self.contains((x1 + x2) / 2, min(y2, 1.0))

    def overlap(self, box: Box, grid: int = 64) -> float:
        """Fraction of the box's area that lies inside the zone."""
        m = self.mask(grid, grid)
        x1, y1, x2, y2 = (round(v * (grid - 1)) for v in box)
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        sub = m[max(y1, 0) : y2, max(x1, 0) : x2]
        return float(sub.mean()) if sub.size else 0.0

    def pixels(self, width: int, height: int) -> NDArray[np.int32]:
        return np.round(self.polygon * np.array([width - 1, height - 1], np.float32)).astype(np.int32)
