"""The shipped NanoDet-g-416 (COCO-80) on real photographs, its GFL decoder, and the shipped models' hashes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from device_profiles.camera import DetectorSpec
from edge.video.base import Detection
from edge.video.detectors import (
    COCO80,
    MODELS_DIR,
    DetectorError,
    decode_nanodet,
    load_detector,
    nanodet_levels,
)
from edge.video.tracker import iou
from simulators.camera import labelled_photo, photo_labels

EVALUATED = {"person", "bicycle", "car", "truck", "motorcycle"}


def _norm_box(name: str, box: list[int]) -> tuple[float, float, float, float]:
    h, w = labelled_photo(name).shape[:2]
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def _matches(found: list[Detection], name: str, label: str) -> list[float]:
    truth = [_norm_box(name, o["box"]) for o in photo_labels()[name] if o["label"] == label]
    return [max((iou(d.box, t) for t in truth), default=0.0) for d in found if d.label == label]


def test_finds_the_bicycle_and_the_truck_in_dog_jpg(nanodet):
    found = nanodet.detect(labelled_photo("dog.jpg"))
    assert max(_matches(found, "dog.jpg", "bicycle"), default=0.0) >= 0.5, found
    # the pickup: COCO (and the hand label) says truck; the configured truck threshold admits it
    assert max(_matches(found, "dog.jpg", "truck"), default=0.0) >= 0.5, found
    assert {d.label for d in found} <= set(nanodet.labels.values())  # dog, bench … are not reported


@pytest.mark.parametrize(
    ("name", "label"),
    [("person.jpg", "person"), ("skimage:astronaut", "person"), ("skimage:motorcycle_left", "motorcycle")],
)
def test_finds_the_labelled_object_in_real_photographs(nanodet, name, label):
    found = nanodet.detect(labelled_photo(name))
    assert max(_matches(found, name, label), default=0.0) >= 0.5, found


@pytest.mark.parametrize("name", ["skimage:coffee", "skimage:chelsea", "eagle.jpg", "giraffe.jpg", "horses.jpg"])
def test_no_person_or_vehicle_where_there_is_none(nanodet, name):
    found = [d for d in nanodet.detect(labelled_photo(name)) if d.label in EVALUATED]
    assert found == [], found


def test_per_class_thresholds_decide_what_is_reported():
    labels = {0: "person", 2: "car", 7: "truck"}
    strict = load_detector(DetectorSpec(kind="onnx_nanodet", model="builtin:nanodet", input_size=None, labels=labels,
                                        score_threshold=0.3, class_thresholds={"truck": 0.95}))
    found = strict.detect(labelled_photo("dog.jpg"))
    assert "truck" not in {d.label for d in found}
    assert "car" in {d.label for d in found}  # the same pickup also scores as car, above 0.3


def _dist(ltrb_bins: tuple[float, float, float, float], bins: int = 11) -> np.ndarray:
    """A sharp distribution per side whose expectation is the given (half-)bin."""
    d = np.full((4, bins), -30.0, np.float32)
    for side, b in enumerate(ltrb_bins):
        d[side, int(np.floor(b))] = 30.0
        d[side, int(np.ceil(b))] = 30.0  # x.5: two equal bins, expectation in between
    return d.reshape(-1)


def test_gfl_decode_from_cell_centres_with_letterbox_and_class_aware_nms():
    size = (32, 32)  # stride 8 → 4×4 cells, stride 16 → 2×2
    s8, d8 = np.zeros((1, 16, 3), np.float32), np.zeros((1, 16, 44), np.float32)
    s16, d16 = np.zeros((1, 4, 3), np.float32), np.zeros((1, 4, 44), np.float32)
    # cell (col 2, row 2) at stride 8: centre (20, 20); distances 1.5, 1.5, 0.5, 0.5 bins × 8 px → (8, 8, 24, 24)
    s8[0, 2 * 4 + 2, 1] = 0.9
    d8[0, 2 * 4 + 2] = _dist((1.5, 1.5, 0.5, 0.5))
    s8[0, 2 * 4 + 2, 2] = 0.6  # the same box as class 2: a different class, kept
    # cell (col 0, row 1) at stride 16: centre (8, 24); 0, 1, 1, 0 bins × 16 px → (8, 8, 24, 24) again, class 1
    s16[0, 1 * 2 + 0, 1] = 0.5  # a duplicate of the first: suppressed
    d16[0, 1 * 2 + 0] = _dist((0, 1, 1, 0))
    s16[0, 3, 0] = 0.2  # below its threshold
    thresholds = np.array([0.3, 0.3, 0.3], np.float32)
    out = decode_nanodet([(8, s8, d8), (16, s16, d16)], input_size=size, thresholds=thresholds, nms_iou=0.45,
                         scale=1.0, pad=(0, 0), frame_size=size)
    assert [(c, round(s, 2)) for _, s, c in out] == [(1, 0.9), (2, 0.6)]
    assert out[0][0] == pytest.approx((8 / 32, 8 / 32, 24 / 32, 24 / 32))
    # a letterbox: frame 64×32 into 32×32 → scale 0.5, pad y 8; classes 0 and 2 not wanted (threshold > 1)
    out2 = decode_nanodet([(8, s8, d8)], input_size=size, thresholds=np.array([2.0, 0.3, 2.0], np.float32),
                          nms_iou=0.45, scale=0.5, pad=(0, 8), frame_size=(64, 32))
    assert len(out2) == 1 and out2[0][2] == 1
    assert out2[0][0] == pytest.approx((0.25, 0.0, 0.75, 1.0))  # (8, 8, 24, 24) → (16, 0, 48, 32) in the frame


def test_output_pairs_are_found_by_shape_and_odd_layouts_are_clear_errors():
    shapes = [("a", (1, 169, 80)), ("b", (1, 169, 44)), ("c", (1, 676, 80)), ("d", (1, 2704, 80)),
              ("e", (1, 676, 44)), ("f", (1, 2704, 44))]
    assert nanodet_levels(shapes, (416, 416)) == [(8, "d", "f", 11), (16, "c", "e", 11), (32, "a", "b", 11)]
    with pytest.raises(DetectorError, match="do not fit"):
        nanodet_levels([("a", (1, 100, 80)), ("b", (1, 100, 44))], (416, 416))
    with pytest.raises(DetectorError, match=r"\[1, N, K\]"):
        nanodet_levels([("a", (169, 80))], (416, 416))


def test_config_errors_are_clear():
    with pytest.raises(DetectorError, match="does not match the model's input"):
        load_detector(DetectorSpec(kind="onnx_nanodet", model="builtin:nanodet", input_size=(320, 320),
                                   labels={0: "person"}))
    # a NanoDet spec takes the model's input size, also after a round trip through JSON (remote config)
    nd = DetectorSpec(kind="onnx_nanodet", model="builtin:nanodet", labels={0: "person"})
    assert nd.input_size is None and DetectorSpec.model_validate(nd.model_dump()).input_size is None
    assert load_detector(DetectorSpec.model_validate_json(nd.model_dump_json())).size == (416, 416)  # type: ignore[attr-defined]
    with pytest.raises(DetectorError, match="outside the model's 80 classes"):
        load_detector(DetectorSpec(kind="onnx_nanodet", model="builtin:nanodet", labels={80: "thing"}))
    with pytest.raises(ValidationError, match=r"class_thresholds name labels not in detector\.labels: bus"):
        DetectorSpec(kind="onnx_nanodet", labels={0: "person"}, class_thresholds={"bus": 0.5})
    assert COCO80[1] == "bicycle" and COCO80[7] == "truck" and len(COCO80) == 80


def test_shipped_models_match_the_hashes_in_provenance():
    text = (MODELS_DIR / "PROVENANCE.txt").read_text(encoding="utf-8")
    for name in ("ssdlite_mobilenet_v2_person.onnx", "nanodet_g_416_coco.onnx"):
        section = text[text.index(f"{name} — provenance") :]
        expected = re.search(r"Result: [\d,]+ bytes,\s*sha256 ([0-9a-f]{64})", section)
        assert expected is not None, name
        assert hashlib.sha256(Path(MODELS_DIR / name).read_bytes()).hexdigest() == expected.group(1), name
    for licence in ("LICENSE-nanodet-Apache-2.0.txt", "NOTICE-nanodet.txt"):
        assert (MODELS_DIR / licence).stat().st_size > 500
