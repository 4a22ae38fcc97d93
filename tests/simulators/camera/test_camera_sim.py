from __future__ import annotations

import urllib.request

import cv2
import numpy as np

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
