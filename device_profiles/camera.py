"""Camera profile section: source, detector and analytics rules for on-gateway video analytics.

A profile whose ``protocol`` is ``camera`` carries one :class:`CameraSpec` under its ``camera:`` key.
Zone polygons are in normalised image coordinates: (0, 0) is the top-left corner, (1, 1) the
bottom-right, so a profile does not depend on the stream's resolution.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.messages import AlarmSeverity as Severity

Point = tuple[float, float]
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    """Where the frames come from and how often they are analysed."""

    kind: Literal["rtsp", "http_mjpeg", "file"]
    url: str = Field(min_length=1, description="rtsp://…, http://…/stream.mjpg, or a file path")
    sample_fps: float = Field(default=5.0, gt=0, le=30)
    reconnect_initial_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    offline_after_s: float = Field(default=10.0, gt=0, description="no frame for this long -> camera.offline")
    loop: bool = Field(default=False, description="file sources: start again at the end (simulation)")
    realtime: bool = Field(
        default=True,
        description="file sources: pace frames at the file's frame rate (False = as fast as possible, "
        "timestamps from the file's positions)",
    )

    @field_validator("url")
    @classmethod
    def _url_matches_kind(cls, v: str) -> str:
        return v.strip()

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        if self.kind == "rtsp" and not self.url.startswith(("rtsp://", "rtsps://")):
            raise ValueError("source.url must start with rtsp:// for kind 'rtsp'")
        if self.kind == "http_mjpeg" and not self.url.startswith(("http://", "https://")):
            raise ValueError("source.url must start with http:// or https:// for kind 'http_mjpeg'")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("source.reconnect_max_s must be >= reconnect_initial_s")
        return self


class DetectorSpec(_Strict):
    """An ONNX object detector. ``model`` is a path; ``builtin:person`` names the shipped person model,
    ``builtin:nanodet`` the shipped COCO-80 NanoDet (kind ``onnx_nanodet``)."""

    kind: Literal["onnx_ssd", "onnx_yolo", "onnx_nanodet"] = "onnx_ssd"
    model: str = "builtin:person"
    input_size: tuple[int, int] | None = Field(
        default=(300, 300), description="(width, height) fed to the model; None = the model's own / the frame's"
    )
    labels: dict[int, str] = Field(
        default_factory=lambda: {1: "person"},
        description="class id -> label (SSD: the model's class ids; YOLO, NanoDet: 0-based column index); "
        "classes not listed are not reported",
    )
    score_threshold: float = Field(default=0.45, ge=0, le=1, description="for labels without class_thresholds")
    class_thresholds: dict[str, float] = Field(
        default_factory=dict, description="label -> score threshold, overriding score_threshold for that label"
    )
    nms_iou: float = Field(default=0.45, gt=0, le=1)
    yolo_objectness: bool = Field(default=False, description="YOLO output rows carry an objectness column (v5/X)")
    intra_op_threads: int = Field(default=1, ge=1, le=16)
    executor: Literal["thread", "process"] = Field(
        default="thread", description="where inference runs: a worker thread (ORT releases the GIL) or a process"
    )

    @model_validator(mode="before")
    @classmethod
    def _nanodet_size_from_model(cls, data: Any) -> Any:
        # NanoDet exports have a fixed input: unless given, take the model's (not the SSD default 300x300)
        if isinstance(data, dict) and data.get("kind") == "onnx_nanodet" and "input_size" not in data:
            return {**data, "input_size": None}
        return data

    @model_validator(mode="after")
    def _check(self) -> DetectorSpec:
        if not self.labels:
            raise ValueError("detector.labels must name at least one class")
        unknown = sorted(set(self.class_thresholds) - set(self.labels.values()))
        if unknown:
            raise ValueError(f"detector.class_thresholds name labels not in detector.labels: {', '.join(unknown)}")
        bad = {k: v for k, v in self.class_thresholds.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"detector.class_thresholds must be in [0, 1]: {bad}")
        return self

    def threshold_for(self, label: str) -> float:
        """The score a detection of ``label`` needs."""
        return self.class_thresholds.get(label, self.score_threshold)

    def min_threshold(self) -> float:
        """The lowest threshold of any label (the candidate filter before per-class thresholds)."""
        return min([self.score_threshold, *self.class_thresholds.values()])


class GateSpec(_Strict):
    """The motion/change gate in front of the detector."""

    enabled: bool = True
    width: int = Field(default=96, ge=16, le=640, description="frames are compared at this width (grey, blurred)")
    pixel_delta: int = Field(default=18, ge=1, le=255)
    changed_fraction: float = Field(default=0.004, gt=0, le=1, description="fraction of changed pixels that opens it")
    recheck_s: float = Field(default=5.0, gt=0, description="run the full pipeline at least this often anyway")


class ScheduleWindow(_Strict):
    """A weekly time window (local time of the site); ``end`` < ``start`` crosses midnight."""

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], description="0 = Monday"
    )
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if v != "24:00" and not _HHMM.match(v):
            raise ValueError(f"time {v!r} must be HH:MM")
        return v


class _RuleBase(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    zone: list[Point] = Field(min_length=3, description="polygon, normalised [0..1] image coordinates")
    severity: Severity = "major"
    dwell_s: float = Field(default=120.0, ge=0)
    clear_s: float = Field(default=30.0, ge=0)

    @field_validator("zone")
    @classmethod
    def _in_unit_square(cls, v: list[Point]) -> list[Point]:
        for x, y in v:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"zone point ({x}, {y}) is outside [0..1]")
        return v


class FireLaneRule(_RuleBase):
    """A vehicle (by class) stationary in the lane longer than ``dwell_s`` -> one alarm naming its class;
    anything else parked there (unknown to the detector) by occupancy, reported as unclassified.
    Cleared after ``clear_s`` free."""

    kind: Literal["fire_lane_blockage"] = "fire_lane_blockage"
    severity: Severity = "major"
    min_area: float = Field(default=0.08, gt=0, le=1, description="occupied fraction of the lane that counts")
    obstruction_labels: list[str] = Field(
        default_factory=lambda: ["car", "truck", "bus", "motorcycle", "ebike"],
        description="detector labels that are vehicles / obstructions (when the model knows them)",
    )
    still_s: float = Field(
        default=3.0, ge=0, description="a vehicle counts once it has not moved for this long (driving through does not)"
    )
    occupancy_fallback: bool = Field(
        default=True, description="also alarm on class-agnostic occupancy (objects the detector does not know)"
    )
    ignore_labels: list[str] = Field(
        default_factory=lambda: ["person"], description="labels masked out of the occupancy (people walking through)"
    )
    gap_s: float = Field(default=5.0, ge=0, description="an occupancy gap shorter than this does not restart dwell")


class EbikeInElevatorRule(_RuleBase):
    """An e-bike in the car: by detection when the model knows bikes, else by large-object occupancy."""

    kind: Literal["ebike_in_elevator"] = "ebike_in_elevator"
    severity: Severity = "major"
    dwell_s: float = Field(default=2.0, ge=0)
    clear_s: float = Field(default=5.0, ge=0)
    labels: list[str] = Field(default_factory=lambda: ["bicycle", "motorcycle", "ebike"])
    min_frames: int = Field(
        default=3, ge=1, description="detection mode: analysed frames a bike track must have before it counts"
    )
    min_area: float = Field(
        default=0.12, gt=0, le=1, description="occupancy fallback: fraction of the car floor zone a large object fills"
    )
    ignore_labels: list[str] = Field(default_factory=lambda: ["person"])
    linkage: list[str] = Field(
        default_factory=lambda: ["hold_doors", "voice_warning"],
        description="commands of the watched elevator's profile the gateway's linkage should run (checked when "
        "the gateway config is loaded)",
    )
    elevator_device_id: str | None = Field(default=None, description="the elevator the linkage is addressed to")


class IntrusionRule(_RuleBase):
    """A person in a restricted zone, inside the schedule, for longer than ``dwell_s``."""

    kind: Literal["intrusion"] = "intrusion"
    severity: Severity = "minor"
    dwell_s: float = Field(default=10.0, ge=0)
    clear_s: float = Field(default=10.0, ge=0)
    labels: list[str] = Field(default_factory=lambda: ["person"])
    schedule: list[ScheduleWindow] = Field(default_factory=lambda: [ScheduleWindow()])
    timezone: str = "Asia/Shanghai"


RULE_EVENTS: dict[str, str] = {
    "fire_lane_blockage": "fire_lane.blocked",
    "ebike_in_elevator": "elevator.ebike_detected",
    "intrusion": "intrusion.detected",
}
"""The event type each camera rule kind raises (its clear carries the same type and key)."""

RuleSpec = Annotated[FireLaneRule | EbikeInElevatorRule | IntrusionRule, Field(discriminator="kind")]


class OccupancySpec(_Strict):
    """The class-agnostic reference model of the empty zone (illumination-robust block comparison)."""

    width: int = Field(default=192, ge=32, le=1280, description="analysis width in pixels")
    block: int = Field(default=8, ge=4, le=64, description="block size in analysis pixels")
    zncc_threshold: float = Field(default=0.5, ge=-1, le=1, description="textured block differs below this")
    flat_std: float = Field(default=6.0, ge=0, description="blocks flatter than this compare by mean")
    mean_delta: float = Field(default=22.0, ge=0, description="flat blocks differ above this (after gain)")
    learn_rate: float = Field(default=0.02, ge=0, le=1, description="reference update on clear blocks per analysis")


class EvidenceSpec(_Strict):
    """Snapshots kept on the gateway."""

    budget_mb: float = Field(default=200.0, gt=0)
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    max_width: int = Field(default=1280, ge=160)


class CameraSpec(_Strict):
    """The ``camera:`` section of a camera profile."""

    source: SourceSpec
    detector: DetectorSpec = Field(default_factory=DetectorSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    occupancy: OccupancySpec = Field(default_factory=OccupancySpec)
    evidence: EvidenceSpec = Field(default_factory=EvidenceSpec)
    rules: list[RuleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_rule_names(self) -> CameraSpec:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique, repeated: {', '.join(dup)}")
        return self


__all__ = [
    "RULE_EVENTS",
    "CameraSpec",
    "DetectorSpec",
    "EbikeInElevatorRule",
    "EvidenceSpec",
    "FireLaneRule",
    "GateSpec",
    "IntrusionRule",
    "OccupancySpec",
    "RuleSpec",
    "ScheduleWindow",
    "SourceSpec",
]
