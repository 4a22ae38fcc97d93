"""Object detector plug-ins behind one small interface (``detect(frame) -> list[Detection]``).

Two ONNX Runtime layouts are supported, chosen through :data:`DETECTORS`:

- ``onnx_ssd``: TensorFlow-Object-Detection-API style, uint8 NHWC input, outputs ``boxes`` (normalised
  ymin, xmin, ymax, xmax), ``scores``, ``classes`` and optionally ``num_detections``. The shipped
  person model (``builtin:person``) is of this kind.
- ``onnx_yolo``: Ultralytics YOLOv8/YOLO11-style float NCHW input in [0, 1] with letterbox, output
  ``[1, 4+C, N]`` (or ``[1, N, 4+C]``; with ``yolo_objectness`` ``[1, N, 5+C]`` as YOLOv5/YOLOX export);
  boxes are centre x, y, width, height in input pixels; class-aware NMS here.
"""

from __future__ import annotations

import logging
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
BUILTIN_MODELS = {"builtin:person": MODELS_DIR / "ssdlite_mobilenet_v2_person.onnx"}


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


class OnnxSsdDetector:
    """SSD-style ONNX detector (boxes / scores / classes [/ num_detections])."""

    def __init__(self, spec: DetectorSpec, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.labels = dict(spec.labels)
        self.session = _session(resolve_model_path(spec.model, base_dir), spec.intra_op_threads)
        inp = self.session.get_inputs()[0]
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
            if score < self.spec.score_threshold or cid not in self.labels:
                continue
            y1, x1, y2, x2 = (float(np.clip(v, 0.0, 1.0)) for v in boxes[i])
            if x2 <= x1 or y2 <= y1:
                continue
            result.append(Detection((x1, y1, x2, y2), score, self.labels[cid], cid))
        return result


def letterbox(image: Image, size: tuple[int, int]) -> tuple[Image, float, tuple[int, int]]:
    """Resize keeping aspect into ``size`` (w, h), padding with grey 114; returns image, scale, (pad_x, pad_y)."""
    h, w = image.shape[:2]
    tw, th = size
    r = min(tw / w, th / h)
    nw, nh = round(w * r), round(h * r)
    px, py = (tw - nw) // 2, (th - nh) // 2
    out = np.full((th, tw, 3), 114, np.uint8)
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
    fw, fh = frame_size
    x1 = (cx - bw / 2 - pad[0]) / scale / fw
    y1 = (cy - bh / 2 - pad[1]) / scale / fh
    x2 = (cx + bw / 2 - pad[0]) / scale / fw
    y2 = (cy + bh / 2 - pad[1]) / scale / fh
    boxes = np.clip(np.stack([x1, y1, x2, y2], axis=1), 0.0, 1.0).astype(np.float32)
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
        self.session = _session(resolve_model_path(spec.model, base_dir), spec.intra_op_threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        if spec.input_size is not None:
            self.size = spec.input_size
        elif len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
            self.size = (int(shape[3]), int(shape[2]))
        else:
            self.size = (640, 640)
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
            score_threshold=self.spec.score_threshold,
            nms_iou=self.spec.nms_iou,
            scale=scale,
            pad=pad,
            frame_size=(w, h),
        )
        return [Detection(box, s, self.labels[c], c) for box, s, c in found if c in self.labels]


DETECTORS: dict[str, type[OnnxSsdDetector] | type[OnnxYoloDetector]] = {
    "onnx_ssd": OnnxSsdDetector,
    "onnx_yolo": OnnxYoloDetector,
}


def load_detector(spec: DetectorSpec, base_dir: Path | None = None) -> Detector:
    """Build the detector the spec names (explicit registry, no plug-in scanning)."""
    cls = DETECTORS[spec.kind]
    det = cls(spec, base_dir)
    log.info("detector %s loaded from %s", spec.kind, resolve_model_path(spec.model, base_dir))
    return det
