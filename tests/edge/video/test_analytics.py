"""VideoAnalytics end to end: a video file and a real MJPEG-over-HTTP camera read through OpenCV."""

from __future__ import annotations

import asyncio

from device_profiles.camera import CameraSpec
from edge.video import VideoAnalytics, VideoEvent
from simulators.camera import FIRE_LANE_ZONE, MjpegCamera, Obstruction, Scene, write_video


async def test_file_source_raises_and_clears_through_an_async_sink(tmp_path, person_detector):
    video = tmp_path / "lane.avi"
    scene = Scene(seed=8, obstructions=[Obstruction("boxes", 2.0, 12.0, move_s=0.0)])
    write_video(scene, video, fps=5, duration_s=22)
    spec = CameraSpec.model_validate({
        "source": {"kind": "file", "url": str(video), "sample_fps": 5, "realtime": False},
        "rules": [{"name": "lane", "kind": "fire_lane_blockage", "zone": FIRE_LANE_ZONE, "dwell_s": 4, "clear_s": 3}],
    })  # fmt: skip
    got: list[VideoEvent] = []

    async def sink(ev: VideoEvent) -> None:
        got.append(ev)

    analytics = VideoAnalytics("cam-file", spec, sink, tmp_path / "snaps", detector=person_detector)
    await asyncio.wait_for(analytics.run(), timeout=60)
    assert [e.kind for e in got] == ["fire_lane.blocked", "fire_lane.cleared"]
    assert got[0].camera_id == "cam-file" and got[0].snapshot_path is not None
    assert got[0].snapshot_path.parent == tmp_path / "snaps"


async def test_mjpeg_camera_that_stops_delivering_goes_offline_once_and_comes_back(tmp_path, person_detector):
    scene = Scene(seed=9)
    with MjpegCamera(scene.frame, fps=5) as cam:
        spec = CameraSpec.model_validate({
            "source": {"kind": "http_mjpeg", "url": cam.url, "sample_fps": 5, "offline_after_s": 1.0},
            "rules": [{"name": "lane", "kind": "fire_lane_blockage", "zone": FIRE_LANE_ZONE}],
        })  # fmt: skip
        got: list[VideoEvent] = []
        analytics = VideoAnalytics("cam-http", spec, got.append, tmp_path, detector=person_detector)
        task = asyncio.create_task(analytics.run())

        async def until(cond, limit=20.0):
            for _ in range(int(limit / 0.1)):
                if cond():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"timed out; events: {[e.kind for e in got]}, frames {analytics.frames}")

        await until(lambda: analytics.frames >= 5)
        cam.pause()
        await until(lambda: any(e.kind == "camera.offline" for e in got))
        await asyncio.sleep(1.5)
        cam.resume()
        await until(lambda: any(e.kind == "camera.online" for e in got))
        await analytics.stop()
        await asyncio.wait_for(task, timeout=15)
    assert [e.kind for e in got] == ["camera.offline", "camera.online"]
    assert got[0].active and not got[1].active


async def test_unreachable_camera_is_offline_and_stop_returns(tmp_path, person_detector):
    spec = CameraSpec.model_validate({
        "source": {"kind": "http_mjpeg", "url": "http://127.0.0.1:9/stream.mjpg", "offline_after_s": 0.5,
                   "reconnect_initial_s": 0.2, "reconnect_max_s": 0.5},
    })  # fmt: skip
    got: list[VideoEvent] = []
    analytics = VideoAnalytics("cam-dead", spec, got.append, tmp_path, detector=person_detector)
    task = asyncio.create_task(analytics.run())
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.1)
    await analytics.stop()
    await asyncio.wait_for(task, timeout=15)
    assert [e.kind for e in got] == ["camera.offline"]


async def test_shipped_elevator_profile_raises_the_ebike_alarm_by_class(tmp_path):
    """The catalog's lift-camera profile as shipped (NanoDet loaded by VideoAnalytics itself), a video file
    of dog.jpg's bicycle wheeled into the car: one e-bike alarm naming the bicycle."""
    from device_profiles import load_catalog
    from simulators.camera import elevator_scene

    shipped = load_catalog().get("generic-ipc-elevator").camera
    assert shipped is not None and shipped.detector.model == "builtin:nanodet"
    video = tmp_path / "car.avi"
    write_video(elevator_scene(seed=12, thing="bicycle"), video, fps=5, duration_s=14)
    spec = shipped.model_copy(update={"source": shipped.source.model_copy(
        update={"kind": "file", "url": str(video), "realtime": False})})  # fmt: skip
    got: list[VideoEvent] = []
    analytics = VideoAnalytics("cam-lift", spec, got.append, tmp_path / "snaps")
    await asyncio.wait_for(analytics.run(), timeout=120)
    assert [e.kind for e in got] == ["elevator.ebike_detected"]
    assert got[0].detail["object"] == "bicycle" and got[0].detail["method"] == "detection"
    assert got[0].linkage == ["hold_doors", "voice_warning"]
