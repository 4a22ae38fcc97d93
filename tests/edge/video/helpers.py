"""Shared helpers for the video tests (imported by path: tests run with --import-mode=importlib)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from device_profiles.camera import CameraSpec, DetectorSpec
from edge.video.base import Detection, Frame, VideoEvent
from edge.video.detectors import Detector
from edge.video.evidence import EvidenceStore
from edge.video.pipeline import FramePipeline
from simulators.camera import Scene

BASE = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, 20:00 in Asia/Shanghai


def profile_detector_spec(profile: str = "generic-ipc-analytics") -> DetectorSpec:
    """The detector section of a shipped camera profile (NanoDet with the shipped per-class thresholds)."""
    from device_profiles import load_catalog

    camera = load_catalog().get(profile).camera
    assert camera is not None
    return camera.detector


def spec(rules: list[dict[str, object]], **extra: object) -> CameraSpec:
    return CameraSpec.model_validate({"source": {"kind": "file", "url": "unused.avi"}, "rules": rules, **extra})


def replay(
    pipeline: FramePipeline, scene: Scene, *, fps: float, duration_s: float, start_s: float = 0.0
) -> list[tuple[float, VideoEvent]]:
    """Feed the scene's frames with simulated timestamps; return (scene time, event) pairs."""
    out: list[tuple[float, VideoEvent]] = []
    for t, img in scene.frames(fps, duration_s, start_s):
        for ev in pipeline.process(Frame(img, t, BASE + timedelta(seconds=t))):
            out.append((t, ev))
    return out


def pipeline(camera_spec: CameraSpec, detector: Detector, tmp: Path | None) -> FramePipeline:
    store = EvidenceStore(tmp, camera_spec.evidence) if tmp is not None else None
    return FramePipeline("cam-1", camera_spec, detector, store)


class FlickeringDetector:
    """Wraps a real detector and drops each detection with probability ``drop`` (seeded)."""

    def __init__(self, inner: Detector, drop: float, seed: int = 0) -> None:
        self.inner = inner
        self.labels = inner.labels
        self.drop = drop
        self.rng = np.random.default_rng(seed)

    def detect(self, image: np.ndarray) -> list[Detection]:  # type: ignore[type-arg]
        return [d for d in self.inner.detect(image) if self.rng.random() >= self.drop]


class ScriptedDetector:
    """Returns detections from a script keyed by call number (for pure-logic rule tests)."""

    def __init__(self, labels: dict[int, str], script: Iterable[list[Detection]] | None = None) -> None:
        self.labels = labels
        self.script = list(script or [])
        self.calls = 0
        self.default: list[Detection] = []

    def detect(self, image: np.ndarray) -> list[Detection]:  # type: ignore[type-arg]
        i = self.calls
        self.calls += 1
        return self.script[i] if i < len(self.script) else self.default
