"""Gateway footprint: memory, CPU and cold start of ``xiaoqu edge run`` with 100 Modbus devices x 10 points.

    .venv/bin/python bench/gateway_footprint.py [--quick] [--runs N] [--devices N] [--seconds S]

Runs the real CLI (``xiaoqu edge run --config …``) as a child process against 100 pymodbus device
servers (another process, bench/_modbus_farm.py) and a private Mosquitto, twice: without video, then with one
camera (a file source looped in real time at the profile's 5 fps, the shipped ONNX person detector).

- cold_start_s: from spawning the process to the first telemetry batch received on the broker (a
  subscriber in this process) — imports, config and profile loading, connects, first poll, first batch.
  cold_start_cpu_s: the CPU time the process had used by then (wall time on a loaded machine is mostly
  waiting for a core; this figure is not).
- rss_mb_*: the child's resident set (VmRSS of /proc/PID/status), median of samples over the steady window.
- cpu_pct_of_core: the child's user+system CPU over the steady window / wall time (% of one core).
- baseline: a bare ``python -c 'import time'`` interpreter's RSS measured in the same run
  (rss_ratio_to_python_baseline), and the RSS an import of each stack adds (import_mb_*), each in a fresh
  interpreter, so one sees what a module costs a gateway.

Prints the figures, then ONE JSON object as the last line (medians of --runs). Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from ruamel.yaml import YAML

from bench._common import emit, median, private_mosquitto
from bench._modbus_farm import BENCH_PROFILE, start_servers

SITE = "bench-fp"
GATEWAY = "gw-fp"
ROOT = Path(__file__).resolve().parents[1]
XIAOQU = [sys.executable, "-m", "xiaoqu"]

# Each line runs in a fresh interpreter; the figure is its RSS after the import minus a bare interpreter's.
IMPORT_STACKS = {
    "cli": "import xiaoqu.cli",
    "edge_agent": "import edge.agent",
    "video": "import edge.video",
}


VIDEO_LIBS = ("/cv2/", "/onnxruntime/", "/numpy/")  # shared objects of the video stack in /proc/PID/maps


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _import_rss_mb(statement: str) -> float:
    # VmRSS, not ru_maxrss: Linux carries the parent's peak over exec into the child's ru_maxrss.
    code = f"{statement}\nimport os; print(open(f'/proc/{{os.getpid()}}/status').read().split('VmRSS:')[1].split()[0])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    return int(out.stdout.split()[-1]) / 1024


def _write_profiles(folder: Path, video: Path) -> None:
    yaml = YAML()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "bench-meter.yaml").open("w") as f:
        yaml.dump(BENCH_PROFILE, f)
    cam = YAML(typ="safe").load((ROOT / "device_profiles/camera/generic-ipc-analytics.yaml").read_text())
    cam["id"] = "bench-camera"
    cam["camera"]["source"].update({"kind": "file", "url": str(video), "loop": True, "realtime": True})
    with (folder / "bench-camera.yaml").open("w") as f:
        yaml.dump(cam, f)


def _write_config(path: Path, ports: list[int], profiles: Path, broker_port: int, camera: bool) -> None:
    loc = {"site": SITE, "building": "B1"}
    devices: list[dict[str, Any]] = [
        {"id": f"m{i}", "profile": "bench-meter", "location": loc,
         "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit": 1}}
        for i, port in enumerate(ports)
    ]
    if camera:
        devices.append({"id": "cam1", "profile": "bench-camera", "location": loc, "connection": {"kind": "camera"}})
    from device_profiles.loader import SHIPPED_DIR

    config = {
        "gateway_id": GATEWAY, "site": SITE, "metrics_port": None,
        "uplink": {"url": f"mqtt://127.0.0.1:{broker_port}"},
        "outbox": {"path": str(path.parent / "outbox.sqlite3")},
        "profiles_dir": [str(SHIPPED_DIR), str(profiles)],
        "devices": devices,
    }
    with path.open("w") as f:
        YAML().dump(config, f)


class FirstTelemetry:
    """Subscribes to the gateway's telemetry topic; records when the first batch arrives."""

    def __init__(self, port: int) -> None:
        self.first_at: float | None = None
        self.batches = 0
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-fp-sub")
        self.client.on_connect = lambda c, *_: c.subscribe(f"xq/v1/{SITE}/{GATEWAY}/telemetry", qos=0)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("the bench subscriber did not connect")

    def _on_message(self, *_: Any) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.batches += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_gateway(config: Path, broker_port: int, settle_s: float, seconds: float) -> dict[str, float]:
    sub = FirstTelemetry(broker_port)
    t0 = time.perf_counter()
    proc = subprocess.Popen([*XIAOQU, "edge", "run", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while sub.first_at is None:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"the gateway exited with {proc.returncode}: {err}")
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("no telemetry within 120 s")
            time.sleep(0.01)
        cold = sub.first_at - t0
        cold_cpu = _cpu_s(proc.pid)  # CPU the process used to get there (read just after: an upper bound)
        time.sleep(settle_s)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        video_libs = any(lib in maps for lib in VIDEO_LIBS)
        c0, w0, b0 = _cpu_s(proc.pid), time.perf_counter(), sub.batches
        samples: list[int] = []
        while time.perf_counter() - w0 < seconds:
            samples.append(_rss_kb(proc.pid))
            time.sleep(0.5)
        cpu = 100.0 * (_cpu_s(proc.pid) - c0) / (time.perf_counter() - w0)
        batches_per_s = (sub.batches - b0) / (time.perf_counter() - w0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sub.close()
    return {"cold_start_s": cold, "cold_start_cpu_s": cold_cpu,
            "rss_mb": statistics.median(samples) / 1024, "rss_mb_max": max(samples) / 1024,
            "cpu_pct": cpu, "batches_per_s": batches_per_s, "video_libs": float(video_libs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--runs", type=int, default=None, help="repetitions (medians); default 3, --quick 1")
    ap.add_argument("--seconds", type=float, default=None, help="steady window per run")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (8.0 if args.quick else 30.0)
    settle = 3.0 if args.quick else 10.0
    faulthandler.dump_traceback_later(runs * 2 * (seconds + settle + 150) + 120, exit=True)

    bare = _import_rss_mb("import time")
    imports = {name: _import_rss_mb(stmt) - bare for name, stmt in IMPORT_STACKS.items()}

    servers, ports = start_servers(args.devices)
    results: dict[str, list[dict[str, float]]] = {"no_video": [], "one_camera": []}
    try:
        with tempfile.TemporaryDirectory(prefix="xq-fp-") as tmp, private_mosquitto() as broker_port:
            work = Path(tmp)
            video = work / "scene.avi"
            from simulators.camera.scenes import people_walking_scene, write_video

            write_video(people_walking_scene(seed=1), video, fps=5, duration_s=20)
            _write_profiles(work / "profiles", video)
            for _ in range(runs):
                for case, camera in (("no_video", False), ("one_camera", True)):
                    run_dir = work / f"{case}-{len(results[case])}"
                    run_dir.mkdir()
                    _write_config(run_dir / "gateway.yaml", ports, work / "profiles", broker_port, camera)
                    results[case].append(run_gateway(run_dir / "gateway.yaml", broker_port, settle, seconds))
    finally:
        servers.terminate()
        servers.wait(10)

    def med(case: str, key: str) -> float:
        return median([r[key] for r in results[case]])

    n = args.devices
    print(f"xiaoqu edge run, {n} Modbus devices x 10 points at 1 Hz, private Mosquitto; "
          f"median of {runs} run(s), {seconds:g} s steady window after {settle:g} s")
    for case in results:
        print(f"  {case:10s}: RSS {med(case, 'rss_mb'):.1f} MB (max {med(case, 'rss_mb_max'):.1f}), "
              f"CPU {med(case, 'cpu_pct'):.1f} % of a core, cold start {med(case, 'cold_start_s'):.2f} s "
              f"({med(case, 'cold_start_cpu_s'):.2f} s of CPU), "
              f"{med(case, 'batches_per_s'):.2f} telemetry batches/s, video stack loaded: "
              f"{'yes' if med(case, 'video_libs') else 'no'}")
    print(f"  baseline: bare python interpreter {bare:.1f} MB RSS; ratio gateway/baseline "
          f"{med('no_video', 'rss_mb') / bare:.2f}x")
    print("  import cost over a bare interpreter: " + ", ".join(f"{k} +{v:.1f} MB" for k, v in imports.items()))
    emit({
        "devices": n,
        "points_per_device": 10,
        "runs": runs,
        "seconds": seconds,
        "rss_mb_no_video": round(med("no_video", "rss_mb"), 1),
        "rss_mb_one_camera": round(med("one_camera", "rss_mb"), 1),
        "cpu_pct_of_core": round(med("no_video", "cpu_pct"), 2),
        "cpu_pct_of_core_one_camera": round(med("one_camera", "cpu_pct"), 2),
        "cold_start_s": round(med("no_video", "cold_start_s"), 2),
        "cold_start_s_one_camera": round(med("one_camera", "cold_start_s"), 2),
        "cold_start_cpu_s": round(med("no_video", "cold_start_cpu_s"), 2),
        "video_stack_loaded_no_video": bool(med("no_video", "video_libs")),
        "rss_mb_python_baseline": round(bare, 1),
        "rss_ratio_to_python_baseline": round(med("no_video", "rss_mb") / bare, 2),
        **{f"import_mb_{k}": round(v, 1) for k, v in imports.items()},
    })


if __name__ == "__main__":
    main()
