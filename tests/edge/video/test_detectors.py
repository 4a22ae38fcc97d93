"""The real shipped ONNX person model on real photographs (scikit-image data), and the YOLO decoder."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from device_profiles.camera import DetectorSpec
from edge.video.detectors import DetectorError, decode_yolo, letterbox, load_detector, nms
from simulators.camera.scenes import motorcycle_photo


def _bgr(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        return cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


PHOTOS = {
    "astronaut": (lambda: _bgr(skimage.data.astronaut()), 1),
    "cameraman": (lambda: _bgr(skimage.data.camera()), 1),
    "astronaut+cameraman": (lambda: np.hstack([_bgr(skimage.data.astronaut()), _bgr(skimage.data.camera())]), 2),
    "coffee": (lambda: _bgr(skimage.data.coffee()), 0),
    "cat": (lambda: _bgr(skimage.data.chelsea()), 0),
    "rocket": (lambda: _bgr(skimage.data.rocket()), 0),
    "motorcycle": (motorcycle_photo, 0),
}


@pytest.mark.parametrize("name", list(PHOTOS))
def test_real_model_counts_persons_in_real_photographs(person_detector, name):
    make, expected = PHOTOS[name]
    found = person_detector.detect(make())
    assert len(found) == expected, [(d.label, round(d.score, 2), d.box) for d in found]
    for d in found:
        assert d.label == "person"
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1


def test_person_boxes_are_where_the_people_are(person_detector):
    pair = np.hstack([_bgr(skimage.data.astronaut()), _bgr(skimage.data.camera())])
    boxes = sorted(d.box for d in person_detector.detect(pair))
    centres = [(b[0] + b[2]) / 2 for b in boxes]
    assert centres[0] < 0.5 < centres[1]  # astronaut on the left half, cameraman on the right


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        load_detector(DetectorSpec(model=str(tmp_path / "nope.onnx")))


def test_invalid_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="cannot load"):
        load_detector(DetectorSpec(model=str(bad), kind="onnx_yolo", labels={0: "person"}))


def test_letterbox_keeps_aspect_and_centres():
    img = np.zeros((100, 200, 3), np.uint8)
    out, scale, pad = letterbox(img, (320, 320))
    assert out.shape == (320, 320, 3)
    assert scale == pytest.approx(1.6)
    assert pad == (0, 80)


def _yolo_tensor(rows: list[tuple[float, float, float, float, int, float]], num_classes: int, n: int = 50):
    a = np.zeros((n, 4 + num_classes), np.float32)
    for i, (cx, cy, w, h, c, s) in enumerate(rows):
        a[i, :4] = (cx, cy, w, h)
        a[i, 4 + c] = s
    return a.T[None]  # [1, 4+C, N] as YOLOv8/YOLO11 export


def test_yolo_decode_maps_letterboxed_boxes_back_and_suppresses_duplicates():
    # frame 200x100 letterboxed into 320x320: scale 1.6, pad y 80
    rows = [
        (160, 160, 64, 64, 2, 0.9),  # a car in the middle
        (162, 161, 64, 64, 2, 0.8),  # its duplicate
        (162, 161, 64, 64, 0, 0.7),  # a person at the same place (other class: kept)
        (40, 100, 20, 20, 1, 0.2),  # below threshold
    ]
    raw = _yolo_tensor(rows, num_classes=3)
    out = decode_yolo(
        raw, num_classes=3, objectness=False, score_threshold=0.3, nms_iou=0.45, scale=1.6, pad=(0, 80),
        frame_size=(200, 100),
    )  # fmt: skip
    assert [(c, round(s, 1)) for _, s, c in out] == [(2, 0.9), (0, 0.7)]
    (x1, y1, x2, y2), _, _ = out[0]
    assert (x1, y1, x2, y2) == pytest.approx((0.4, 0.3, 0.6, 0.7), abs=1e-3)


def test_yolo_decode_accepts_transposed_and_objectness_layouts():
    raw = _yolo_tensor([(160, 160, 64, 64, 1, 0.9)], num_classes=2)
    transposed = np.transpose(raw, (0, 2, 1))  # [1, N, 4+C]
    kw = {"score_threshold": 0.3, "nms_iou": 0.5, "scale": 1.0, "pad": (0, 0), "frame_size": (320, 320)}
    assert len(decode_yolo(transposed, num_classes=2, objectness=False, **kw)) == 1
    obj = np.zeros((1, 10, 7), np.float32)  # YOLOX/v5: cx, cy, w, h, obj, 2 classes
    obj[0, 0] = (100, 100, 50, 50, 0.5, 0.1, 0.9)
    obj[0, 1] = (200, 200, 50, 50, 0.2, 0.9, 0.0)  # 0.18 after objectness: dropped
    got = decode_yolo(obj, num_classes=2, objectness=True, **kw)
    assert [(c, round(s, 2)) for _, s, c in got] == [(1, 0.45)]
    with pytest.raises(DetectorError, match="does not fit"):
        decode_yolo(np.zeros((1, 9, 30), np.float32), num_classes=2, objectness=False, **kw)


def test_nms_keeps_best_of_overlapping():
    boxes = np.array([[0, 0, 1, 1], [0.05, 0, 1, 1], [2, 2, 3, 3]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.5) == [1, 2]
