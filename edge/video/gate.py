"""A cheap change gate: the detector runs only when the picture changed, or every ``recheck_s`` anyway."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from device_profiles.camera import GateSpec
from edge.video.base import Image


class MotionGate:
    """Compares a small blurred grey copy of each frame with the last frame that was analysed.

    Comparing with the last *analysed* frame (not the previous one) means slow drifts add up and
    open the gate eventually; ``recheck_s`` guarantees a stationary scene is still re-analysed.
    """

    def __init__(self, spec: GateSpec) -> None:
        self.spec = spec
        self._ref: NDArray[np.uint8] | None = None
        self._last_open: float | None = None
        self._settle = False
        self.opened = 0
        self.skipped = 0

    def small(self, image: Image) -> NDArray[np.uint8]:
        h, w = image.shape[:2]
        sw = self.spec.width
        sh = max(1, round(h * sw / w))
        grey = cv2.cvtColor(cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return np.asarray(cv2.GaussianBlur(grey, (3, 3), 0), np.uint8)

    def check(self, image: Image, ts: float) -> bool:
        """True when the frame should be analysed (and it becomes the new reference)."""
        if not self.spec.enabled:
            self.opened += 1
            return True
        small = self.small(image)
        due = self._last_open is None or self._ref is None or ts - self._last_open >= self.spec.recheck_s
        changed = False
        if self._ref is not None and self._ref.shape == small.shape:
            diff = cv2.absdiff(small, self._ref)
            changed = bool(np.count_nonzero(diff > self.spec.pixel_delta) > self.spec.changed_fraction * diff.size)
        settle = self._settle
        self._settle = changed  # after a change, analyse the next frame too: is it still moving or parked?
        if due or changed or settle:
            self._ref = small
            self._last_open = ts
            self.opened += 1
            return True
        self.skipped += 1
        return False
