"""A gateway without a camera never loads the video stack (OpenCV, onnxruntime, numpy) nor httpx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("cv2", "onnxruntime", "numpy", "httpx")

PROBE = """
import json, sys
from pathlib import Path
from edge.config import load_config
from edge.agent import GatewayAgent
config, catalog = load_config(Path(sys.argv[1]))
agent = GatewayAgent(config, catalog, with_uplink=False)
print(json.dumps({m: m in sys.modules for m in sys.argv[2:]}))
agent.store.close()
"""


def _config(tmp_path: Path, camera: bool) -> Path:
    loc = "{site: s1, building: B1}"
    lines = [
        "gateway_id: gw-fp", "site: s1", "metrics_port: null", f"outbox: {{path: {tmp_path / 'outbox.sqlite3'}}}",
        "devices:",
        f"  - {{id: lift1, profile: acme-em200, location: {loc}, "
        "connection: {kind: modbus_tcp, host: 127.0.0.1, port: 1502}}",
    ]
    if camera:
        lines.append(f"  - {{id: cam1, profile: generic-ipc-analytics, location: {loc}, connection: {{kind: camera}}}}")
    path = tmp_path / "gateway.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _loaded(config: Path) -> dict[str, bool]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(config), *HEAVY], check=True, capture_output=True, text=True)
    result: dict[str, bool] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_no_camera_no_video_stack(tmp_path: Path) -> None:
    assert _loaded(_config(tmp_path, camera=False)) == dict.fromkeys(HEAVY, False)


def test_a_camera_loads_the_video_stack(tmp_path: Path) -> None:
    loaded = _loaded(_config(tmp_path, camera=True))
    assert loaded["cv2"] and loaded["onnxruntime"] and loaded["numpy"]
