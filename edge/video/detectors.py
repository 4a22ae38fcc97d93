"""Object detector plug-ins behind one small interface (``detect(frame) -> list[Detection]``).

Two ONNX Runtime layouts are supported, chosen through :data:`DETECTORS`:

- ``onnx_ssd``: TensorFlow-Object-Detection-API style, uint8 NHWC input, outputs ``boxes`` (normalised
  ymin, xmin, ymax, xmax), ``scores``, ``classes`` and optionally ``num_detections``. The shipped
  person model (``builtin:person``) is of this kind.
- ``onnx_yolo``: Ultralytics YOLOv8/YOLO11-style float NCHW input in [0, 1] with letterbox, output
  ``[1, 4+C, N]`` (or ``[1, N, 4+C]``; with ``yolo_objectness`` ``[1, N, 5+C]`` as YOLOv5/YOLOX export);
  boxes are centre x, y, width, height in input pixels; class-aware NMS here.
- ``onnx_nanodet``: NanoDet (GFL head) as shipped in ``builtin:nanodet`` (NanoDet-g-416, COCO-80):
  letterbox to the model's input, BGR normalised by mean/std, per stride a class-score output
  ``[1, N, C]`` (sigmoid applied) and a box-distribution output ``[1, N, 4*(R+1)]``; the distance to
  each side is the expectation of a softmax over R+1 bins, times the stride, from the cell centre
  ``((i + 0.5) * stride, (j + 0.5) * stride)``. Per-class thresholds, class-aware NMS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from device_profiles.camera import DetectorSpec
from edge.video.base import Detection, Image

log = logging.getLogger(__name__)

_ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(ort.capi.onnxruntime_pybind11_state, n)
    for n in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile")
    if hasattr(ort.capi.onnxruntime_pybind11_state, n)
)
_LOAD_ERRORS: tuple[type[Exception], ...] = (RuntimeError, *_ORT_ERRORS)

MODELS_DIR = Path(__file__).with_name("models")
BUILTIN_MODELS = {
    "builtin:person": MODELS_DIR / "ssdlite_mobilenet_v2_person.onnx",
    "builtin:nanodet": MODELS_DIR / "nanodet_g_416_coco.onnx",
}

#: The 80 COCO class names in the order of COCO-80 detectors' score columns (NanoDet, YOLO).
COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


class Detector(Protocol):
    labels: dict[int, str]

    def detect(self, image: Image) -> list[Detection]: ...


class DetectorError(ValueError):
    """The model cannot be loaded or its outputs do not fit the configured layout."""


def resolve_model_path(model: str, base_dir: Path | None = None) -> Path:
    if model in BUILTIN_MODELS:
        return BUILTIN_MODELS[model]
    p = Path(model)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return p


def _session(path: Path, threads: int) -> ort.InferenceSession:
    if not path.is_file():
        raise DetectorError(f"detector model not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except _LOAD_ERRORS as exc:
        raise DetectorError(f"cannot load ONNX model {path}: {exc}") from exc


def nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression on x1, y1, x2, y2 boxes; returns kept indices, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[iou <= iou_threshold]
    return keep


def _open_model(spec: DetectorSpec, base_dir: Path | None) -> tuple[ort.InferenceSession, ort.NodeArg]:
    """The spec's ONNX session and its (single) input."""
    session = _session(resolve_model_path(spec.model, base_dir), spec.intra_op_threads)
    return session, session.get_inputs()[0]


def _static_input_size(shape: Sequence[object]) -> tuple[int, int] | None:
    """(width, height) of an NCHW input with a fixed size; None when the model leaves it open."""
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return (int(shape[3]), int(shape[2]))
    return None


class OnnxSsdDetector:
    """SSD-style ONNX detector (boxes / scores / classes [/ num_detections])."""

    def __init__(self, spec: DetectorSpec, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.labels = dict(spec.labels)
        self.session, inp = _open_model(spec, base_dir)
        self.input_name = inp.name
        self.uint8_input = inp.type == "tensor(uint8)"
        names = [o.name for o in self.session.get_outputs()]
        self.out_idx = {key: self._find(names, key) for key in ("boxes", "scores", "classes")}
        num = [i for i, n in enumerate(names) if "num" in n.lower()]
        self.num_idx = num[0] if num else None

    @staticmethod
    def _find(names: list[str], key: str) -> int:
        for i, n in enumerate(names):
            if key in n.lower():
                return i
        raise DetectorError(f"SSD model has no output named like {key!r} (outputs: {names})")

    def preprocess(self, image: Image) -> NDArray[np.generic]:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.spec.input_size is not None:
            rgb = cv2.resize(rgb, self.spec.input_size, interpolation=cv2.INTER_AREA)
        x = rgb[None]
        return x if self.uint8_input else x.astype(np.float32)

    def infer(self, x: NDArray[np.generic]) -> list[NDArray[np.float32]]:
        return list(self.session.run(None, {self.input_name: x}))

    def detect(self, image: Image) -> list[Detection]:
        outs = self.infer(self.preprocess(image))
        boxes = np.asarray(outs[self.out_idx["boxes"]], np.float32).reshape(-1, 4)
        scores = np.asarray(outs[self.out_idx["scores"]], np.float32).reshape(-1)
        classes = np.asarray(outs[self.out_idx["classes"]]).reshape(-1)
        n = int(np.asarray(outs[self.num_idx]).reshape(-1)[0]) if self.num_idx is not None else len(scores)
        result: list[Detection] = []
        for i in range(min(n, len(scores))):
            score = float(scores[i])
            cid = int(classes[i])
            if cid not in self.labels or score < self.spec.threshold_for(self.labels[cid]):
                continue
            y1, x1, y2, x2 = (float(np.clip(v, 0.0, 1.0)) for v in boxes[i])
            if x2 <= x1 or y2 <= y1:
                continue
            result.append(Detection((x1, y1, x2, y2), score, self.labels[cid], cid))
        return result


def letterbox(
    image: Image, size: tuple[int, int], fill: tuple[int, int, int] = (114, 114, 114)
) -> tuple[Image, float, tuple[int, int]]:
    """Resize keeping aspect into ``size`` (w, h), padding with ``fill``; returns image, scale, (pad_x, pad_y)."""
    h, w = image.shape[:2]
    tw, th = size
    r = min(tw / w, th / h)
    nw, nh = round(w * r), round(h * r)
    px, py = (tw - nw) // 2, (th - nh) // 2
    out = np.empty((th, tw, 3), np.uint8)
    out[:] = fill
    out[py : py + nh, px : px + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, r, (px, py)


def decode_yolo(
    raw: NDArray[np.float32],
    *,
    num_classes: int,
    objectness: bool,
    score_threshold: float,
    nms_iou: float,
    scale: float,
    pad: tuple[int, int],
    frame_size: tuple[int, int],
) -> list[tuple[tuple[float, float, float, float], float, int]]:
    """Decode a YOLO output tensor into (normalised box, score, class index) after class-aware NMS."""
    a = np.asarray(raw, np.float32)
    if a.ndim == 3:
        a = a[0]
    if a.ndim != 2:
        raise DetectorError(f"YOLO output must be [1, 4+C, N] or [1, N, 4+C], got shape {raw.shape}")
    width = 4 + int(objectness) + num_classes
    if a.shape[0] == width and a.shape[1] != width:
        a = a.T  # [4+C, N] -> [N, 4+C]
    elif a.shape[1] != width:
        raise DetectorError(
            f"YOLO output shape {raw.shape} does not fit {num_classes} classes"
            f"{' + objectness' if objectness else ''} (expected a dimension of {width})"
        )
    cls_scores = a[:, 4 + int(objectness) :]
    if objectness:
        cls_scores = cls_scores * a[:, 4:5]
    cls = np.argmax(cls_scores, axis=1)
    score = cls_scores[np.arange(len(cls)), cls]
    keep = score >= score_threshold
    if not np.any(keep):
        return []
    a, cls, score = a[keep], cls[keep], score[keep]
    cx, cy, bw, bh = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return class_aware_nms(xyxy, score, cls, nms_iou=nms_iou, scale=scale, pad=pad, frame_size=frame_size)


def class_aware_nms(
    xyxy: NDArray[np.float32],
    score: NDArray[np.float32],
    cls: NDArray[np.int64],
    *,
    nms_iou: float,
    scale: float,
    pad: tuple[int, int],
    frame_size: tuple[int, int],
) -> list[tuple[tuple[float, float, float, float], float, int]]:
    """Letterboxed input-pixel boxes → normalised frame boxes, then NMS per class; best first."""
    fw, fh = frame_size
    px, py = pad
    norm = (xyxy - np.array([px, py, px, py], np.float32)) / scale / np.array([fw, fh, fw, fh], np.float32)
    boxes = np.clip(norm, 0.0, 1.0).astype(np.float32)
    out: list[tuple[tuple[float, float, float, float], float, int]] = []
    offset = boxes + cls[:, None].astype(np.float32) * 2.0  # class-aware NMS in one pass
    for i in nms(offset, score.astype(np.float32), nms_iou):
        b = boxes[i]
        if b[2] > b[0] and b[3] > b[1]:
            out.append(((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(score[i]), int(cls[i])))
    return out


class OnnxYoloDetector:
    """YOLOv8/YOLO11/YOLOX-style ONNX detector (letterbox, [1, 4+C, N] output, NMS)."""

    def __init__(self, spec: DetectorSpec, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.labels = dict(spec.labels)
        self.session, inp = _open_model(spec, base_dir)
        self.input_name = inp.name
        self.size = spec.input_size or _static_input_size(inp.shape) or (640, 640)
        self.num_classes = max(self.labels) + 1

    def detect(self, image: Image) -> list[Detection]:
        h, w = image.shape[:2]
        boxed, scale, pad = letterbox(image, self.size)
        x = cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        raw = np.asarray(self.session.run(None, {self.input_name: x})[0], np.float32)
        found = decode_yolo(
            raw,
            num_classes=self.num_classes,
            objectness=self.spec.yolo_objectness,
            score_threshold=self.spec.min_threshold(),
            nms_iou=self.spec.nms_iou,
            scale=scale,
            pad=pad,
            frame_size=(w, h),
        )
        return [
            Detection(box, s, self.labels[c], c)
            for box, s, c in found
            if c in self.labels and s >= self.spec.threshold_for(self.labels[c])
        ]


#: NanoDet's input normalisation (BGR order), from the upstream config.
NANODET_MEAN = (103.53, 116.28, 123.675)
NANODET_STD = (57.375, 57.12, 58.395)


def nanodet_levels(
    shapes: list[tuple[str, tuple[int, ...]]], input_size: tuple[int, int]
) -> list[tuple[int, str, str, int]]:
    """Pair the per-stride outputs of a NanoDet export: (stride, score output, distribution output, bins).

    Outputs are paired by N = (W/stride)·(H/stride) in their shape [1, N, K]; of a pair, the narrower is
    the distribution (K = 4 sides × bins) if K is a multiple of 4, else the wider (COCO: 44 vs 80)."""
    w, h = input_size
    by_n: dict[int, list[tuple[str, int]]] = {}
    for name, shape in shapes:
        if len(shape) != 3 or shape[0] != 1:
            raise DetectorError(f"NanoDet output {name!r} must be [1, N, K], got {list(shape)}")
        by_n.setdefault(int(shape[1]), []).append((name, int(shape[2])))
    levels: list[tuple[int, str, str, int]] = []
    for n, outs in by_n.items():
        stride = next((s for s in (8, 16, 32, 64, 128) if (w // s) * (h // s) == n and w % s == 0 and h % s == 0), None)
        if stride is None or len(outs) != 2:
            raise DetectorError(
                f"NanoDet outputs with N={n} do not fit input {w}x{h} at strides 8..128 in score/box pairs: {outs}"
            )
        (a, ka), (b, kb) = sorted(outs, key=lambda o: o[1])
        dist, score = ((a, ka), (b, kb)) if ka % 4 == 0 else ((b, kb), (a, ka))
        if dist[1] % 4 != 0:
            raise DetectorError(f"NanoDet box output {dist[0]!r} width {dist[1]} is not 4 sides x bins")
        levels.append((stride, score[0], dist[0], dist[1] // 4))
    return sorted(levels)


def decode_nanodet(
    levels: list[tuple[int, NDArray[np.float32], NDArray[np.float32]]],
    *,
    input_size: tuple[int, int],
    thresholds: NDArray[np.float32],
    nms_iou: float,
    scale: float,
    pad: tuple[int, int],
    frame_size: tuple[int, int],
) -> list[tuple[tuple[float, float, float, float], float, int]]:
    """GFL decode of (stride, scores [N, C], distributions [N, 4*bins]) per level, then class-aware NMS.

    ``thresholds`` holds one score threshold per class column (above 1 = class not wanted). A cell may
    yield several classes (as NanoDet's own multi-class NMS does)."""
    w = input_size[0]
    all_boxes: list[NDArray[np.float32]] = []
    all_scores: list[NDArray[np.float32]] = []
    all_cls: list[NDArray[np.int64]] = []
    for stride, scores, dist in levels:
        s = scores.reshape(scores.shape[-2], scores.shape[-1])
        cell, cls = np.nonzero(s >= thresholds[None, : s.shape[1]])
        if cell.size == 0:
            continue
        bins = dist.shape[-1] // 4
        d = dist.reshape(-1, 4, bins)[cell].astype(np.float32)
        d = np.exp(d - d.max(axis=2, keepdims=True))
        d /= d.sum(axis=2, keepdims=True)
        ltrb = (d @ np.arange(bins, dtype=np.float32)) * stride  # [M, 4]
        gw = w // stride
        cx = (cell % gw + 0.5).astype(np.float32) * stride
        cy = (cell // gw + 0.5).astype(np.float32) * stride
        all_boxes.append(np.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], axis=1))
        all_scores.append(s[cell, cls])
        all_cls.append(cls.astype(np.int64))
    if not all_boxes:
        return []
    return class_aware_nms(
        np.concatenate(all_boxes),
        np.concatenate(all_scores),
        np.concatenate(all_cls),
        nms_iou=nms_iou,
        scale=scale,
        pad=pad,
        frame_size=frame_size,
    )


class OnnxNanodetDetector:
    """NanoDet (GFL head) ONNX detector: letterbox, mean/std BGR input, per-stride outputs, class-aware NMS."""

    def __init__(self, spec: DetectorSpec, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.labels = dict(spec.labels)
        self.session, inp = _open_model(spec, base_dir)
        self.input_name = inp.name
        model_size = _static_input_size(inp.shape)
        if model_size is not None and spec.input_size is not None and spec.input_size != model_size:
            raise DetectorError(f"detector.input_size {spec.input_size} does not match the model's input {model_size}")
        size = model_size or spec.input_size
        if size is None:
            raise DetectorError("detector.input_size is needed: the NanoDet model's input has no fixed size")
        self.size = size
        raw_outs = [(o.name, list(o.shape)) for o in self.session.get_outputs()]
        if not all(isinstance(d, int) for _, sh in raw_outs for d in sh):
            raise DetectorError(f"NanoDet outputs need static shapes, got {raw_outs}")
        outs = [(name, tuple(int(d) for d in sh)) for name, sh in raw_outs]
        self.levels = nanodet_levels(outs, self.size)
        self.output_names = [o[0] for o in outs]
        num_classes = dict(outs)[self.levels[0][1]][2]
        bad = [c for c in self.labels if not 0 <= c < num_classes]
        if bad:
            raise DetectorError(f"detector.labels {bad} are outside the model's {num_classes} classes")
        # one threshold per class column; classes not in labels are never reported
        self.thresholds = np.full(num_classes, 2.0, np.float32)
        for c, label in self.labels.items():
            self.thresholds[c] = spec.threshold_for(label)
        self.mean = np.array(NANODET_MEAN, np.float32)
        self.inv_std = 1.0 / np.array(NANODET_STD, np.float32)
        fill = tuple(round(m) for m in NANODET_MEAN)
        self.fill: tuple[int, int, int] = (fill[0], fill[1], fill[2])

    def preprocess(self, image: Image) -> tuple[NDArray[np.float32], float, tuple[int, int]]:
        boxed, scale, pad = letterbox(image, self.size, self.fill)
        x = (boxed.astype(np.float32) - self.mean) * self.inv_std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), scale, pad

    def infer(self, x: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        outs = self.session.run(None, {self.input_name: x})
        return {n: np.asarray(o, np.float32) for n, o in zip(self.output_names, outs, strict=True)}

    def detect(self, image: Image) -> list[Detection]:
        h, w = image.shape[:2]
        x, scale, pad = self.preprocess(image)
        raw = self.infer(x)
        found = decode_nanodet(
            [(stride, raw[sn], raw[dn]) for stride, sn, dn, _ in self.levels],
            input_size=self.size,
            thresholds=self.thresholds,
            nms_iou=self.spec.nms_iou,
            scale=scale,
            pad=pad,
            frame_size=(w, h),
        )
        return [Detection(box, s, self.labels[c], c) for box, s, c in found]


DETECTORS: dict[str, type[OnnxSsdDetector] | type[OnnxYoloDetector] | type[OnnxNanodetDetector]] = {
    "onnx_ssd": OnnxSsdDetector,
    "onnx_yolo": OnnxYoloDetector,
    "onnx_nanodet": OnnxNanodetDetector,
}


def load_detector(spec: DetectorSpec, base_dir: Path | None = None) -> Detector:
    """Build the detector the spec names (explicit registry, no plug-in scanning)."""
    cls = DETECTORS[spec.kind]
    det = cls(spec, base_dir)
    log.info("detector %s loaded from %s", spec.kind, resolve_model_path(spec.model, base_dir))
    return det
