"""Simulated cameras: deterministic scenes (real photographs + compositing), MJPEG over HTTP, video files."""

from simulators.camera.mjpeg import MjpegCamera
from simulators.camera.scenes import (
    ELEVATOR_FLOOR_ZONE,
    FIRE_LANE_ZONE,
    Flicker,
    LightChange,
    Obstruction,
    Scene,
    Walker,
    elevator_scene,
    fire_lane_blockage_scene,
    light_change_scene,
    people_walking_scene,
    write_video,
)

__all__ = [
    "ELEVATOR_FLOOR_ZONE",
    "FIRE_LANE_ZONE",
    "Flicker",
    "LightChange",
    "MjpegCamera",
    "Obstruction",
    "Scene",
    "Walker",
    "elevator_scene",
    "fire_lane_blockage_scene",
    "light_change_scene",
    "people_walking_scene",
    "write_video",
]
