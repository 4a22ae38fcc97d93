"""Fire-lane blockage on the simulator's scenes with the real person model and a simulated clock."""

from __future__ import annotations

import cv2
import pytest
from video_test_helpers import FlickeringDetector, pipeline, replay, spec

from simulators.camera import FIRE_LANE_ZONE, LightChange, Obstruction, Scene, Walker, people_walking_scene
from simulators.camera.scenes import light_change_scene

LANE = {"name": "lane", "kind": "fire_lane_blockage", "zone": FIRE_LANE_ZONE}


def kinds(events):
    return [e.kind for _, e in events]


def test_one_alarm_per_blockage_with_snapshot_and_clear(person_detector, tmp_path):
    """Boxes parked 150 s with a light change while parked: one alarm after the 120 s dwell, one clear."""
    scene = Scene(
        seed=1,
        obstructions=[Obstruction("boxes", 10.0, 160.0, move_s=0.0)],
        lights=[LightChange(100.0, 0.6)],
        walkers=[Walker(40.0), Walker(120.0, photo="cameraman")],
    )
    p = pipeline(spec([{**LANE, "dwell_s": 120, "clear_s": 20}]), person_detector, tmp_path)
    events = replay(p, scene, fps=2, duration_s=200)
    assert kinds(events) == ["fire_lane.blocked", "fire_lane.cleared"]
    (t_raise, raised), (t_clear, cleared) = events
    assert 130.0 <= t_raise <= 131.0  # arrival at 10 s + dwell 120 s (+ one sample)
    assert 180.0 <= t_clear <= 182.0  # left at 160 s + clear 20 s
    assert raised.active and not cleared.active
    assert raised.severity == "major"
    assert raised.detail["method"] == "occupancy"
    assert float(raised.detail["occupied_fraction"]) > 0.2
    assert raised.snapshot_path is not None and raised.snapshot_path.is_file()
    img = cv2.imread(str(raised.snapshot_path))
    assert img is not None and img.shape[:2] == (360, 640)
    assert raised.observed_at.tzinfo is not None


def test_two_blockages_give_two_alarms(person_detector):
    scene = Scene(
        seed=2,
        obstructions=[
            Obstruction("boxes", 5.0, 50.0),
            Obstruction("motorcycle", 90.0, 140.0, rect=(0.3, 0.5, 0.4, 0.4)),
        ],
    )
    p = pipeline(spec([{**LANE, "dwell_s": 30, "clear_s": 10}]), person_detector, None)
    events = replay(p, scene, fps=2, duration_s=170)
    assert kinds(events) == ["fire_lane.blocked", "fire_lane.cleared"] * 2


def test_people_walking_through_never_trigger(person_detector):
    p = pipeline(spec([{**LANE, "dwell_s": 20, "clear_s": 10}]), person_detector, None)
    events = replay(p, people_walking_scene(seed=3, n=8, every_s=6.0), fps=5, duration_s=55)
    assert events == []
    assert p.stats.analysed > 0


def test_light_changes_and_exposure_flicker_do_not_alert(person_detector):
    p = pipeline(spec([{**LANE, "dwell_s": 10, "clear_s": 5}]), person_detector, None)
    assert replay(p, light_change_scene(seed=4), fps=2, duration_s=90) == []


@pytest.mark.parametrize("seed", [5, 6])
def test_detector_flicker_and_light_change_while_parked_do_not_realert(person_detector, seed):
    """A parked object, people passing whose detections flicker, exposure flicker and a light step."""
    from simulators.camera import Flicker

    scene = Scene(
        seed=seed,
        obstructions=[Obstruction("boxes", 5.0, 100.0)],
        walkers=[Walker(20.0 + 12 * i) for i in range(5)],
        lights=[LightChange(50.0, 1.25)],
        flickers=[Flicker(30.0, 80.0, rate_hz=1.5, amount=0.3)],
    )
    flicky = FlickeringDetector(person_detector, drop=0.4, seed=seed)
    p = pipeline(spec([{**LANE, "dwell_s": 15, "clear_s": 10}]), flicky, None)
    events = replay(p, scene, fps=2, duration_s=125)
    assert kinds(events) == ["fire_lane.blocked", "fire_lane.cleared"]


def test_the_gate_skips_unchanged_frames_but_rechecks(person_detector):
    p = pipeline(spec([{**LANE, "dwell_s": 10}]), person_detector, None)
    replay(p, Scene(seed=7, noise_sigma=1.0), fps=5, duration_s=30)
    # 150 frames of an empty lane: analysed only at the periodic re-check (every 5 s) and the first frame
    assert p.stats.frames == 150
    assert 6 <= p.stats.analysed <= 8
