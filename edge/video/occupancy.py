"""Class-agnostic occupancy: a reference model of the empty zone, robust to illumination.

The frame is reduced to grey at ``width`` pixels and cut into square blocks. Each block is compared
with the same block of the reference (the empty scene):

- textured blocks by zero-mean normalised cross-correlation (ZNCC), which is unchanged by a gain and
  an offset — i.e. by a change of light — but drops when something else covers the block;
- every block by its mean after global gain compensation (the median ratio of block means over the
  whole frame, so a light change that touches the whole picture cancels out).

Blocks under boxes the caller masks (people walking through) never count and are not learnt. Blocks
that match the reference are blended into it slowly (``learn_rate``), so slow drifts follow the
reference; blocks that differ are never learnt, so a parked object is never absorbed into the
"empty lane" and cannot disappear and re-alert.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from device_profiles.camera import OccupancySpec
from edge.video.base import Box, Image

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class OccupancyMap:
    """Which blocks differ from the empty reference (True = occupied), at block resolution."""

    differ: NDArray[np.bool_]
    block: int
    size: tuple[int, int]  # analysis (w, h)
    gain: float

    def fraction(self, zone_blocks: NDArray[np.bool_]) -> float:
        n = int(zone_blocks.sum())
        return float((self.differ & zone_blocks).sum()) / n if n else 0.0

    def bbox(self, zone_blocks: NDArray[np.bool_]) -> Box | None:
        """Normalised bounding box of the occupied blocks inside a zone (for the snapshot)."""
        ys, xs = np.nonzero(self.differ & zone_blocks)
        if ys.size == 0:
            return None
        gh, gw = self.differ.shape
        return (xs.min() / gw, ys.min() / gh, (xs.max() + 1) / gw, (ys.max() + 1) / gh)


def _blocks(a: F32, b: int) -> F32:
    h, w = a.shape
    return a[: h // b * b, : w // b * b].reshape(h // b, b, w // b, b)


class OccupancyModel:
    def __init__(self, spec: OccupancySpec) -> None:
        self.spec = spec
        self.reference: F32 | None = None
        self.size: tuple[int, int] | None = None
        self._previous: F32 | None = None

    def _grey(self, image: Image) -> F32:
        h, w = image.shape[:2]
        aw = self.spec.width
        ah = max(self.spec.block, round(h * aw / w))
        if self.size is None:
            self.size = (aw, ah)
        grey = cv2.cvtColor(cv2.resize(image, self.size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)

    def zone_blocks(self, mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Blocks at least half inside a zone mask given at analysis resolution."""
        b = self.spec.block
        cover = _blocks(mask.astype(np.float32), b).mean(axis=(1, 3))
        return np.asarray(cover >= 0.5)

    def set_reference(self, image: Image) -> None:
        self.reference = self._grey(image)

    def _differ(self, cur: F32, ref: F32, mask_blocks: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], float]:
        b = self.spec.block
        cb, rb = _blocks(cur, b), _blocks(ref, b)
        mc, mr = cb.mean(axis=(1, 3)), rb.mean(axis=(1, 3))
        dc, dr = cb - mc[:, None, :, None], rb - mr[:, None, :, None]
        sc = np.sqrt((dc * dc).mean(axis=(1, 3)))
        sr = np.sqrt((dr * dr).mean(axis=(1, 3)))
        cov = (dc * dr).mean(axis=(1, 3))
        ratio = mc / np.maximum(mr, 1.0)
        usable = ~mask_blocks & (mr > 8)
        gain = float(np.median(ratio[usable])) if np.any(usable) else 1.0
        textured = (sr > self.spec.flat_std) | (sc > self.spec.flat_std * max(gain, 0.2))
        zncc = cov / np.maximum(sc * sr, 1e-3)
        differ = (textured & (zncc < self.spec.zncc_threshold)) | (np.abs(mc - gain * mr) > self.spec.mean_delta)
        return np.asarray(differ & ~mask_blocks), gain

    def analyse(self, image: Image, masked: list[Box] | None = None, *, learn: bool = True) -> OccupancyMap:
        """Blocks that differ from the empty reference *and* are still (unchanged since the previous
        analysis): something moving through — a person the detector missed, a car driving past — is
        not an obstruction until it stops."""
        cur = self._grey(image)
        if self.reference is None or self.reference.shape != cur.shape:
            self.reference = cur.copy()
        ref = self.reference
        b = self.spec.block
        gh, gw = cur.shape[0] // b, cur.shape[1] // b
        mask_blocks = np.zeros((gh, gw), bool)
        for x1, y1, x2, y2 in masked or []:
            mask_blocks[int(y1 * gh) : int(np.ceil(y2 * gh)), int(x1 * gw) : int(np.ceil(x2 * gw))] = True
        differ, gain = self._differ(cur, ref, mask_blocks)
        prev = self._previous if self._previous is not None and self._previous.shape == cur.shape else cur
        moving, _ = self._differ(cur, prev, np.zeros_like(mask_blocks))
        self._previous = cur
        if learn and self.spec.learn_rate > 0:
            clear = ~differ & ~mask_blocks & ~moving
            px = np.kron(clear, np.ones((b, b), bool))
            a = self.spec.learn_rate
            region = ref[: gh * b, : gw * b]
            # learn in the reference's own lighting (divide by the gain) so every block stays comparable
            region[px] = (1 - a) * region[px] + a * cur[: gh * b, : gw * b][px] / max(gain, 1e-3)
        assert self.size is not None
        return OccupancyMap(differ & ~moving, b, self.size, gain)
