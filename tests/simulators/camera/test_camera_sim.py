from __future__ import annotations

import urllib.request

import cv2
import numpy as np
import pytest

from simulators.camera import MjpegCamera, Obstruction, Scene, elevator_scene, fire_lane_blockage_scene, write_video


def test_scenes_are_deterministic_given_a_seed():
    a, b, c = fire_lane_blockage_scene(seed=1), fire_lane_blockage_scene(seed=1), fire_lane_blockage_scene(seed=2)
    for t in (0.0, 15.0, 120.4):
        assert np.array_equal(a.frame(t), b.frame(t))
    assert not np.array_equal(a.frame(15.0), c.frame(15.0))


def test_obstruction_arrives_stays_and_leaves():
    s = Scene(seed=1, obstructions=[Obstruction("boxes", 10.0, 40.0)])
    empty, parked, gone = s.frame(5.0), s.frame(25.0), s.frame(60.0)
    assert np.abs(parked.astype(int) - empty.astype(int)).mean() > 5
    assert np.abs(gone.astype(int) - empty.astype(int)).mean() < 3


def test_elevator_with_and_without_ebike_differ():
    with_bike, without = elevator_scene(1, ebike=True, person=False), elevator_scene(1, ebike=False, person=False)
    assert np.abs(with_bike.frame(10).astype(int) - without.frame(10).astype(int)).mean() > 10


def test_mjpeg_over_http_is_read_by_opencv():
    scene = fire_lane_blockage_scene(seed=3)
    with MjpegCamera(scene.frame, fps=10) as cam:
        cap = cv2.VideoCapture(cam.url, cv2.CAP_FFMPEG)
        try:
            assert cap.isOpened()
            frames = [cap.read() for _ in range(3)]
        finally:
            cap.release()
        with urllib.request.urlopen(f"http://127.0.0.1:{cam.port}/snapshot.jpg", timeout=5) as resp:
            assert resp.headers["Content-Type"] == "image/jpeg"
            snap = cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR)
    assert all(ok and img.shape == (360, 640, 3) for ok, img in frames)
    assert snap.shape == (360, 640, 3)


def test_scene_written_to_a_video_file_reads_back(tmp_path):
    path = tmp_path / "scene.avi"
    n = write_video(fire_lane_blockage_scene(seed=4), path, fps=5, duration_s=3)
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert n == count == 15


def test_every_compound_camera_scene_renders_and_the_photo_scenes_show_their_photos():
    import simulators.camera as cam_mod
    from simulators.camera.scenes import ELEVATOR_RECTS, bicycle_photo, pickup_photo
    from simulators.compound import CAMERA_SCENES, SimCamera

    sim = SimCamera.__new__(SimCamera)  # the scene switch only, without its MJPEG server
    sim._mod, sim.seed = cam_mod, 3
    for name in CAMERA_SCENES:
        sim.set_scene(name)
        assert sim.scene_name == name and sim._scene.frame(12.0).shape == (360, 640, 3)
    # the e-bike scene pastes dog.jpg's bicycle where ELEVATOR_RECTS says, the car scene dog.jpg's pickup
    sim.set_scene("ebike")
    x, y, w, h = ELEVATOR_RECTS["bicycle"]
    x0, y0, pw, ph = int(x * 640), int(y * 360), int(w * 640), int(h * 360)
    patch = sim._scene.frame(12.0)[y0 + 5 : y0 + ph - 5, x0 + 5 : x0 + pw - 5].astype(int)
    ref = cv2.resize(bicycle_photo(), (pw, ph), interpolation=cv2.INTER_AREA)[5:-5, 5:-5].astype(int)
    assert np.abs(patch - ref).mean() < 12  # the photo, up to sensor noise
    assert pickup_photo().shape[1] > pickup_photo().shape[0] * 2  # the pickup crop (231x97 px) from the hand box
    with pytest.raises(ValueError, match="fire_lane_car"):
        sim.set_scene("nope")
