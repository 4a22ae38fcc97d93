"""E-bike in elevator (occupancy fallback with the real model; detection mode), intrusion, lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from video_test_helpers import BASE, ScriptedDetector, pipeline, replay, spec

from device_profiles.camera import ScheduleWindow
from edge.video.base import Detection, Frame
from edge.video.rules import DwellAlarm, in_schedule
from simulators.camera import ELEVATOR_FLOOR_ZONE, elevator_scene

CAR = {"name": "car-1", "kind": "ebike_in_elevator", "zone": ELEVATOR_FLOOR_ZONE, "elevator_device_id": "elev-1"}


def test_dwell_alarm_lifecycle_tolerates_gaps_and_never_reraises():
    a = DwellAlarm(dwell_s=10, clear_s=5, gap_s=2)
    seq = [
        (0, True),
        (1, False),
        (2.5, True),
        (10, True),
        (11, False),
        (12, True),
        (14, False),
        (16.9, False),
        (17, False),
    ]
    assert [a.update(t, c) for t, c in seq] == [None, None, None, "raise", None, None, None, None, "clear"]
    b = DwellAlarm(dwell_s=10, clear_s=5, gap_s=2)
    assert [b.update(t, c) for t, c in [(0, True), (3, False), (4, True), (13, True), (14, True)]] == [
        None, None, None, None, "raise",
    ]  # fmt: skip


def test_ebike_in_car_by_large_object_occupancy_with_the_person_model(person_detector, tmp_path):
    p = pipeline(spec([{**CAR, "dwell_s": 2, "clear_s": 5}]), person_detector, tmp_path)
    events = replay(p, elevator_scene(seed=1, ebike=True), fps=5, duration_s=70)
    assert [e.kind for _, e in events] == ["elevator.ebike_detected", "elevator.ebike_cleared"]
    raised = events[0][1]
    assert raised.linkage == ["hold_doors", "voice_warning"]
    assert raised.detail["method"] == "occupancy"
    assert raised.detail["elevator_device_id"] == "elev-1"
    assert raised.snapshot_path is not None and raised.snapshot_path.is_file()
    assert 6.0 <= events[0][0] <= 9.0


def test_person_alone_in_car_is_not_an_ebike(person_detector):
    p = pipeline(spec([{**CAR, "dwell_s": 2}]), person_detector, None)
    assert replay(p, elevator_scene(seed=2, ebike=False, person=True), fps=5, duration_s=12) == []


def test_ebike_by_detection_when_the_model_knows_bikes():
    bike = Detection((0.3, 0.6, 0.7, 0.95), 0.9, "motorcycle", 3)
    det = ScriptedDetector({0: "person", 3: "motorcycle"})
    det.default = [bike]
    p = pipeline(spec([{**CAR, "dwell_s": 1, "clear_s": 2}]), det, None)
    img = np.full((90, 160, 3), 128, np.uint8)
    events = []
    for i in range(30):
        if i == 15:
            det.default = []
        img2 = img.copy()
        img2[:, i % 160] = 255 * (i % 2)  # keep the gate open
        events += p.process(Frame(img2, i * 0.2, BASE))
    assert [e.kind for e in events] == ["elevator.ebike_detected", "elevator.ebike_cleared"]
    assert events[0].detail["method"] == "detection"


def _frames(n: int, fps: float = 2.0):
    rng = np.random.default_rng(0)
    for i in range(n):
        yield i / fps, rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)


def test_intrusion_after_dwell_inside_the_schedule_only():
    zone = [(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)]
    rule = {"name": "store", "kind": "intrusion", "zone": zone, "dwell_s": 5, "clear_s": 3, "timezone": "UTC"}
    inside = Detection((0.1, 0.4, 0.3, 0.9), 0.9, "person", 1)
    outside = Detection((0.6, 0.1, 0.8, 0.4), 0.9, "person", 1)
    for window, expected in [
        ({"start": "11:00", "end": "13:00"}, ["intrusion.detected", "intrusion.cleared"]),
        ({"start": "13:00", "end": "14:00"}, []),
    ]:
        det = ScriptedDetector({1: "person"}, [[outside]] * 4 + [[inside]] * 16)
        p = pipeline(spec([{**rule, "schedule": [window]}]), det, None)
        events = []
        for t, img in _frames(30):
            events += p.process(Frame(img, t, BASE))
        assert [e.kind for e in events] == expected


def test_schedule_windows_cross_midnight():
    night = [ScheduleWindow(days=[0], start="22:00", end="06:00")]  # Monday night
    assert in_schedule(night, datetime(2026, 1, 5, 23, 0, tzinfo=UTC), "UTC")  # Monday 23:00
    assert in_schedule(night, datetime(2026, 1, 6, 5, 0, tzinfo=UTC), "UTC")  # Tuesday 05:00
    assert not in_schedule(night, datetime(2026, 1, 6, 23, 0, tzinfo=UTC), "UTC")  # Tuesday 23:00
    assert in_schedule(night, datetime(2026, 1, 5, 15, 0, tzinfo=UTC), "Asia/Shanghai")  # 23:00 in Shanghai
