"""Detector accuracy on real photographs, per class, at the configured thresholds; ms per frame per model.

    .venv/bin/python bench/detector_eval.py [--quick]

The labelled set is small and says so: the photographs of ``simulators/camera/photos/labels.json``
(boxes placed by hand; darknet's test images and scikit-image's astronaut, chelsea, coffee and
motorcycle), plus the camera simulator's composites of those photographs (bicycle / motorcycle / boxes /
dog in the lift, the pickup parked in the fire lane; boxes from where the photo was pasted). Without
``--quick`` each photograph is also scored mirrored, at half size, darkened and as a low-quality JPEG
(boxes transformed with it): these variants test robustness, they are not new objects, so the
instance counts are printed separately.

Scoring: per class (person, bicycle, car, truck, motorcycle; plus ``vehicle`` = car|truck|bus as
the fire-lane rule uses them: a second vehicle-class box on an already matched vehicle is not
counted), greedy by score, a detection is a true positive when its IoU with a
not-yet-matched labelled box of its class is ≥ 0.5; one that matches only a ``difficult`` box (mostly
hidden) is ignored; the rest are false positives. Recall is null when the set has no instance of a
class, precision null when nothing of the class was reported.

The NanoDet detector is configured exactly as in the shipped profile (``generic-ipc-analytics``:
labels, ``score_threshold``, ``class_thresholds``); the person model as its default spec. Both are
timed on the same images in the same run (detect() = preprocess + inference + decode; median).
Last line: ONE JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device_profiles import load_catalog
from device_profiles.camera import DetectorSpec
from edge.video.base import Box, Detection
from edge.video.detectors import Detector, load_detector
from edge.video.tracker import iou
from simulators.camera import scenes

CLASSES = ("person", "bicycle", "car", "truck", "motorcycle")
VEHICLES = frozenset({"car", "truck", "bus"})


@dataclass
class Truth:
    label: str
    box: Box  # normalised
    difficult: bool = False


@dataclass
class Sample:
    name: str
    image: Any  # BGR uint8
    truth: list[Truth]
    original: bool  # a photograph as labelled (not a variant or composite)


def _norm(box: list[float], w: int, h: int) -> Box:
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def photographs() -> list[Sample]:
    out = []
    for name, objects in scenes.photo_labels().items():
        img = scenes.labelled_photo(name)
        h, w = img.shape[:2]
        truth = [Truth(o["label"], _norm(o["box"], w, h), bool(o.get("difficult", False))) for o in objects]
        out.append(Sample(name, img, truth, True))
    return out


def variants(s: Sample) -> list[Sample]:
    """Mirrored, half size, darkened (gain 0.45 + noise), JPEG quality 30: same objects, other conditions."""
    flip = [Truth(t.label, (1 - t.box[2], t.box[1], 1 - t.box[0], t.box[3]), t.difficult) for t in s.truth]
    h, w = s.image.shape[:2]
    small = cv2.resize(s.image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    dark = np.clip(s.image.astype(np.float32) * 0.45 + rng.normal(0, 3, s.image.shape), 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", s.image, [cv2.IMWRITE_JPEG_QUALITY, 30])
    jpeg = cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else s.image
    return [
        Sample(f"{s.name}~flip", np.ascontiguousarray(s.image[:, ::-1]), flip, False),
        Sample(f"{s.name}~half", small, s.truth, False),
        Sample(f"{s.name}~dark", dark, s.truth, False),
        Sample(f"{s.name}~jpeg30", jpeg, s.truth, False),
    ]


def _pasted(rect: tuple[float, float, float, float], margin: float = 0.02) -> Box:
    """The object's box inside a pasted crop (``photo_object`` adds ``margin`` on each side)."""
    x, y, w, h = rect
    mx, my = w * margin / (1 + 2 * margin), h * margin / (1 + 2 * margin)
    return (x + mx, y + my, min(1.0, x + w - mx), min(1.0, y + h - my))


def _motorcycle_in(rect: tuple[float, float, float, float]) -> Box:
    """The labelled motorcycle inside ``scenes.motorcycle_photo()`` (crop x 20..720, y 40..480) pasted at rect."""
    bx = next(o["box"] for o in scenes.photo_labels()["skimage:motorcycle_left"] if o["label"] == "motorcycle")
    rel = ((bx[0] - 20) / 700, (bx[1] - 40) / 440, (bx[2] - 20) / 700, (min(bx[3], 480) - 40) / 440)
    x, y, w, h = rect
    return (x + rel[0] * w, y + rel[1] * h, min(1.0, x + rel[2] * w), min(1.0, y + rel[3] * h))


def composites() -> list[Sample]:
    """Frames of the camera scenes (real photos pasted into synthetic places), after the walker has left."""
    out: list[Sample] = []
    for thing, label in (("bicycle", "bicycle"), ("motorcycle", "motorcycle"), ("boxes", None), ("dog", "dog")):
        img = scenes.elevator_scene(seed=11, thing=thing).frame(8.0)
        rect = scenes.ELEVATOR_RECTS[thing]
        box = _pasted(rect) if thing != "motorcycle" else _motorcycle_in(rect)
        truth = [Truth(label, box)] if label else []
        if thing == "bicycle":  # dog.jpg's bicycle crop carries the dog sitting in front of it
            truth.append(Truth("dog", box, difficult=True))
        out.append(Sample(f"scene:elevator+{thing}", img, truth, False))
    lane = scenes.fire_lane_vehicle_scene(seed=12, arrive_s=1.0, stay_s=100.0)
    pickup = lane.obstructions[0].rect
    out.append(Sample("scene:fire_lane+pickup", lane.frame(10.0), [Truth("truck", _pasted(pickup))], False))
    return out


def score(
    samples: list[Sample], found: list[list[Detection]], classes: tuple[str, ...]
) -> dict[str, dict[str, int]]:
    counts = {c: {"tp": 0, "fp": 0, "fn": 0, "n": 0} for c in (*classes, "vehicle")}
    for s, dets in zip(samples, found, strict=True):
        for cls in counts:
            members = VEHICLES if cls == "vehicle" else {cls}
            truth = [t for t in s.truth if t.label in members]
            preds = sorted((d for d in dets if d.label in members), key=lambda d: -d.score)
            used: set[int] = set()
            for d in preds:
                best, best_iou = -1, 0.5
                for i, t in enumerate(truth):
                    if i in used:
                        continue
                    v = iou(d.box, t.box)
                    if v >= best_iou:
                        best, best_iou = i, v
                if best < 0 and cls == "vehicle" and any(iou(d.box, truth[i].box) >= 0.5 for i in used):
                    continue  # the same vehicle again under another vehicle class: the rule sees one vehicle
                if best < 0:
                    counts[cls]["fp"] += 1
                elif truth[best].difficult:
                    used.add(best)  # neither required nor a false positive
                else:
                    used.add(best)
                    counts[cls]["tp"] += 1
            missed = [i for i, t in enumerate(truth) if i not in used and not t.difficult]
            counts[cls]["fn"] += len(missed)
            counts[cls]["n"] += sum(1 for t in truth if not t.difficult)
    return counts


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 3) if den else None


def timed(det: Detector, samples: list[Sample], repeats: int) -> tuple[list[list[Detection]], float]:
    for s in samples[:3]:
        det.detect(s.image)  # warm-up
    found: list[list[Detection]] = []
    times: list[float] = []
    for s in samples:
        for r in range(repeats):
            t0 = time.perf_counter()
            dets = det.detect(s.image)
            times.append(time.perf_counter() - t0)
            if r == 0:
                found.append(dets)
    return found, statistics.median(times) * 1000


def nanodet_spec() -> DetectorSpec:
    """The detector of the shipped camera profile ``generic-ipc-analytics`` (NanoDet, its labels and thresholds)."""
    camera = load_catalog().get("generic-ipc-analytics").camera
    assert camera is not None
    return camera.detector


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="photographs and composites only, one timing pass")
    ap.add_argument("--show", action="store_true", help="print every detection per image")
    args = ap.parse_args()
    photos = photographs()
    samples = photos + composites()
    if not args.quick:
        samples += [v for s in photos for v in variants(s)]
    repeats = 1 if args.quick else 3
    spec = nanodet_spec()
    nanodet = load_detector(spec)
    person = load_detector(DetectorSpec())
    found, ms_nano = timed(nanodet, samples, repeats)
    found_person, ms_person = timed(person, samples, repeats)
    counts = score(samples, found, CLASSES)
    counts_person_ssd = score(samples, found_person, ("person",))["person"]
    originals = score([s for s in samples if s.original], [f for s, f in zip(samples, found, strict=True)
                                                           if s.original], CLASSES)  # fmt: skip

    if args.show:
        for s, dets in zip(samples, found, strict=True):
            print(f"  {s.name}: " + ", ".join(f"{d.label} {d.score:.2f}" for d in dets))
    thr = {lbl: spec.threshold_for(lbl) for lbl in spec.labels.values()}
    print(f"labelled set: {len(photos)} photographs, {len(samples) - len(photos)} composites/variants "
          f"({len(samples)} images); thresholds {thr}; IoU >= 0.5")  # fmt: skip
    print(f"{'class':<11} {'n':>4} {'n_orig':>6} {'tp':>4} {'fp':>4} {'fn':>4} {'recall':>7} {'precision':>9}")
    out: dict[str, Any] = {}
    for cls, c in counts.items():
        rec, prec = _ratio(c["tp"], c["tp"] + c["fn"]), _ratio(c["tp"], c["tp"] + c["fp"])
        n_orig = originals[cls]["n"]
        print(f"{cls:<11} {c['n']:>4} {n_orig:>6} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} "
              f"{rec if rec is not None else '-':>7} {prec if prec is not None else '-':>9}")  # fmt: skip
        out[f"recall_{cls}"], out[f"precision_{cls}"] = rec, prec
        out[f"instances_{cls}"], out[f"instances_original_{cls}"] = c["n"], n_orig
    cp = counts_person_ssd
    out["recall_person_ssd"] = _ratio(cp["tp"], cp["tp"] + cp["fn"])
    out["precision_person_ssd"] = _ratio(cp["tp"], cp["tp"] + cp["fp"])
    print(f"person model (SSDLite, person only): recall {out['recall_person_ssd']}, "
          f"precision {out['precision_person_ssd']}")  # fmt: skip
    out["ms_per_frame_nanodet"] = round(ms_nano, 2)
    out["ms_per_frame_person"] = round(ms_person, 2)
    out["nanodet_over_person_ms"] = round(ms_nano / ms_person, 3)
    out["images"] = len(samples)
    out["photographs"] = len(photos)
    print(f"ms per frame (median over {len(samples)} images x {repeats}): nanodet {out['ms_per_frame_nanodet']}, "
          f"person {out['ms_per_frame_person']} (ratio {out['nanodet_over_person_ms']})")  # fmt: skip
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
