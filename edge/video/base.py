"""Value types shared by the video analytics modules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from contract.messages import AlarmSeverity

Image = NDArray[np.uint8]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2, normalised [0..1]

EventKind = Literal[
    "fire_lane.blocked",
    "fire_lane.cleared",
    "elevator.ebike_detected",
    "elevator.ebike_cleared",
    "intrusion.detected",
    "intrusion.cleared",
    "camera.offline",
    "camera.online",
]


@dataclass(frozen=True, slots=True)
class Frame:
    """One sampled frame: BGR pixels, a monotonic timestamp ``ts`` (s) and the wall time it was observed."""

    image: Image
    ts: float
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box
    score: float
    label: str
    class_id: int


class VideoEvent(BaseModel):
    """What the analytics report; the gateway's integrator turns these into contract events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera_id: str
    rule: str
    kind: EventKind
    active: bool
    severity: AlarmSeverity
    observed_at: datetime
    snapshot_path: Path | None = None
    detail: dict[str, float | int | str | bool] = Field(default_factory=dict)
    linkage: list[str] = Field(default_factory=list)
