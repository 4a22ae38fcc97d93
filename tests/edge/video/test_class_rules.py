"""Rules by class with the real NanoDet on composites of real photographs.

E-bike in the lift: dog.jpg's bicycle (and the Middlebury motorcycle) wheeled into the car fire; a person
alone, a trolley-load of boxes, a dog do not. Fire lane: dog.jpg's pickup parked beyond the dwell raises one
alarm naming the vehicle class; a vehicle driving through does not; boxes (no class) fall back to occupancy
and say so.
"""

from __future__ import annotations

import pytest
from video_test_helpers import pipeline, replay, spec

from simulators.camera import (
    ELEVATOR_FLOOR_ZONE,
    FIRE_LANE_ZONE,
    elevator_scene,
    fire_lane_blockage_scene,
    fire_lane_drive_through_scene,
    fire_lane_vehicle_scene,
)

CAR = {"name": "car-1", "kind": "ebike_in_elevator", "zone": ELEVATOR_FLOOR_ZONE, "labels": ["bicycle", "motorcycle"],
       "dwell_s": 2, "clear_s": 5, "min_frames": 3}  # fmt: skip
LANE = {"name": "lane-n", "kind": "fire_lane_blockage", "zone": FIRE_LANE_ZONE, "dwell_s": 20, "clear_s": 10}


@pytest.mark.parametrize("thing", ["bicycle", "motorcycle"])
def test_ebike_alarm_fires_when_a_bike_enters_the_car(nanodet, tmp_path, thing):
    p = pipeline(spec([CAR]), nanodet, tmp_path)
    events = replay(p, elevator_scene(seed=1, thing=thing), fps=5, duration_s=14)
    assert [e.kind for _, e in events] == ["elevator.ebike_detected"]
    t, raised = events[0]
    assert 4.0 < t <= 10.0  # wheeled in at 4 s (1.5 s), + 3 analysed frames + 2 s dwell
    assert raised.detail["method"] == "detection" and raised.detail["object"] == thing
    assert raised.linkage == ["hold_doors", "voice_warning"]
    assert raised.snapshot_path is not None and raised.snapshot_path.is_file()


def test_ebike_alarm_clears_when_the_bike_leaves(nanodet):
    p = pipeline(spec([CAR]), nanodet, None)
    scene = elevator_scene(seed=2, thing="bicycle", person=False)
    events = replay(p, scene, fps=5, duration_s=20)
    events += replay(p, elevator_scene(seed=2, person=False), fps=5, duration_s=12, start_s=20)
    assert [e.kind for _, e in events] == ["elevator.ebike_detected", "elevator.ebike_cleared"]


@pytest.mark.parametrize("thing", [None, "boxes", "dog"])
def test_person_alone_or_with_a_trolley_or_a_dog_is_not_an_ebike(nanodet, thing):
    p = pipeline(spec([CAR]), nanodet, None)
    assert replay(p, elevator_scene(seed=3, thing=thing, person=True), fps=5, duration_s=16) == []


def test_parked_vehicle_alarm_names_its_class_and_clears(nanodet, tmp_path):
    p = pipeline(spec([LANE]), nanodet, tmp_path)
    scene = fire_lane_vehicle_scene(seed=4, arrive_s=5.0, stay_s=40.0)
    events = replay(p, scene, fps=2, duration_s=75)
    assert [e.kind for _, e in events] == ["fire_lane.blocked", "fire_lane.cleared"]
    t, raised = events[0]
    assert raised.detail["method"] == "detection"
    assert raised.detail["object"] in ("car", "truck")  # the pickup: NanoDet scores it as car, COCO says truck
    assert 5.0 + 20.0 <= t <= 5.0 + 3.0 + 3.0 + 20.0 + 3.0  # arrives, stops (3 s), still 3 s, dwell 20 s
    assert raised.snapshot_path is not None and raised.snapshot_path.is_file()


def test_vehicle_driving_through_the_lane_is_not_a_blockage(nanodet):
    p = pipeline(spec([LANE]), nanodet, None)
    assert replay(p, fire_lane_drive_through_scene(seed=5, every_s=15.0, n=3), fps=2, duration_s=50) == []


def test_unknown_objects_fall_back_to_occupancy_and_say_so(nanodet):
    p = pipeline(spec([LANE]), nanodet, None)
    events = replay(p, fire_lane_blockage_scene(seed=6, arrive_s=5.0, stay_s=60.0), fps=2, duration_s=40)
    assert [e.kind for _, e in events] == ["fire_lane.blocked"]
    assert events[0][1].detail["method"] == "occupancy"
    assert events[0][1].detail["object"] == "unclassified occupancy"
