from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from device_profiles.camera import CameraSpec, FireLaneRule

EXAMPLE = Path(__file__).resolve().parents[3] / "device_profiles" / "camera" / "generic-ipc-analytics.yaml"


def test_example_profile_validates():
    data = YAML(typ="safe").load(EXAMPLE.read_text())
    assert set(data) == {"id", "vendor", "model", "device_type", "protocol", "camera"}
    spec = CameraSpec.model_validate(data["camera"])
    lane = spec.rules[0]
    assert isinstance(lane, FireLaneRule) and lane.dwell_s == 120


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"source": {"kind": "rtsp", "url": "http://x"}}, "rtsp://"),
        ({"rules": [{"name": "a", "kind": "fire_lane_blockage", "zone": [[0, 0], [2, 0], [1, 1]]}]}, "outside"),
        ({"rules": [{"name": "a", "kind": "intrusion", "zone": [[0, 0], [1, 0], [1, 1]], "bogus": 1}]}, "bogus"),
        ({"rules": [{"name": "a", "kind": "teleport", "zone": [[0, 0], [1, 0], [1, 1]]}]}, "teleport"),
    ],
)
def test_bad_camera_sections_are_refused(patch, message):
    base = {"source": {"kind": "file", "url": "a.avi"}}
    with pytest.raises(ValidationError, match=message):
        CameraSpec.model_validate({**base, **patch})


def test_rule_names_must_be_unique():
    rule = {"name": "a", "kind": "fire_lane_blockage", "zone": [[0, 0], [1, 0], [1, 1]]}
    with pytest.raises(ValidationError, match="unique"):
        CameraSpec.model_validate({"source": {"kind": "file", "url": "a.avi"}, "rules": [rule, rule]})
