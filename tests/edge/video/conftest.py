from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from device_profiles.camera import DetectorSpec
from edge.video.detectors import Detector, load_detector

_spec = importlib.util.spec_from_file_location("video_test_helpers", Path(__file__).with_name("helpers.py"))
assert _spec is not None and _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
sys.modules["video_test_helpers"] = helpers
_spec.loader.exec_module(helpers)


@pytest.fixture(scope="session")
def nanodet() -> Detector:
    """The real shipped NanoDet-g-416, configured as in the shipped camera profile (labels, thresholds)."""
    return load_detector(helpers.profile_detector_spec())


@pytest.fixture(scope="session")
def person_detector() -> Detector:
    """The real shipped ONNX person model."""
    return load_detector(DetectorSpec())
