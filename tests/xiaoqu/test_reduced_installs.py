"""A gateway-only and a backend-only install work on their own.

Each is built once per session in a fresh venv (``python -m venv`` + ``pip install 'xiaoqu-….whl[edge]'`` or
``[cloud]``, the project's wheel built once from a copy of the tree: a normal, non-editable install with its
dependencies from the package index). In the
gateway venv the real commands run: ``edge check``, ``profile validate``, ``onboard probe`` against a
pymodbus server (a simulated elevator), and ``edge run`` until its telemetry reaches the broker; a backend
command there says in one line which extra to install. The backend venv migrates a real database and
imports the backend without OpenCV or onnxruntime being installed at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_profiles import load_catalog
from simulators.modbus import ModbusDeviceServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SKIP_IN_COPY = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", "node_modules",
                                      ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "*.sqlite3*")
BACKEND_ONLY = ("psycopg", "fastapi", "uvicorn")
GATEWAY_ONLY = ("cv2", "onnxruntime", "pymodbus")


class Venv:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / "bin" / "python"
        self.xiaoqu = root / "bin" / "xiaoqu"

    def run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # Outside the source tree, so only the installed package can be imported.
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                              check=False)

    def has(self, module: str) -> bool:
        found = self.run(self.python, "-c", f"import importlib.util; print(importlib.util.find_spec({module!r}))")
        return found.stdout.strip() != "None"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("reduced-installs")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def wheel(build_dir: Path) -> Path:
    """The project's wheel, built once from a copy of the tree (pip builds in the tree: keep the worktree clean)."""
    source = build_dir / "src"
    shutil.copytree(REPO, source, ignore=SKIP_IN_COPY)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(build_dir / "dist"),
                           str(source)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"building the wheel failed:\n{done.stdout}\n{done.stderr}"
    (built,) = (build_dir / "dist").glob("xiaoqu-*.whl")
    return built


def _install(build_dir: Path, wheel: Path, extra: str) -> Venv:
    """A fresh venv with ``xiaoqu[extra]`` installed as a user would (dependencies from the index)."""
    venv = Venv(build_dir / f"venv-{extra}")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv.root)], check=True, timeout=120)
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv.python), "install", "-q", "--no-compile",
                           "--disable-pip-version-check", f"{wheel}[{extra}]"],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"pip install 'xiaoqu[{extra}]' failed:\n{done.stdout}\n{done.stderr}"
    return venv


@pytest.fixture(scope="session")
def edge_venv(build_dir: Path, wheel: Path) -> Venv:
    venv = _install(build_dir, wheel, "edge")
    assert not any(venv.has(m) for m in BACKEND_ONLY), "the gateway install pulled in a backend package"
    return venv


@pytest.fixture(scope="session")
def cloud_venv(build_dir: Path, wheel: Path) -> Venv:
    venv = _install(build_dir, wheel, "cloud")
    assert not any(venv.has(m) for m in GATEWAY_ONLY), "the backend install pulled in a gateway package"
    return venv


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _one_line_naming(done: subprocess.CompletedProcess[str], extra: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'xiaoqu[{extra}]'" in lines[0], done.stderr


def test_gateway_install_checks_configs_and_profiles(edge_venv: Venv, tmp_path: Path) -> None:
    out = _ok(edge_venv.run(edge_venv.xiaoqu, "edge", "check", "--config", REPO / "edge/examples/gateway.yaml"))
    assert "gw-b3" in out and "OK" in out
    config = tmp_path / "gateway.yaml"
    shutil.copy(REPO / "edge/examples/gateway.yaml", config)
    _ok(edge_venv.run(edge_venv.xiaoqu, "onboard", "add", "--gateway-config", config, "--profile", "acme-em200",
                      "--device-id", "b3-lift-9", "--building", "B3", "--modbus", "192.0.2.39:502"))
    assert "b3-lift-9" in config.read_text()
    _ok(edge_venv.run(edge_venv.xiaoqu, "edge", "check", "--config", config))
    _ok(edge_venv.run(edge_venv.xiaoqu, "profile", "validate", REPO / "device_profiles"))
    assert "acme-em200" in _ok(edge_venv.run(edge_venv.xiaoqu, "profile", "list"))


def test_gateway_install_names_the_extra_for_backend_commands(edge_venv: Venv) -> None:
    _one_line_naming(edge_venv.run(edge_venv.xiaoqu, "cloud", "migrate", "--dsn", "postgresql://nowhere/x"), "cloud")
    _one_line_naming(edge_venv.run(edge_venv.xiaoqu, "user", "add", "x", "--password", "12345678"), "cloud")


async def test_gateway_install_probes_and_runs_a_modbus_device(edge_venv: Venv, tmp_path: Path, site_id: str,
                                                                 mqtt_broker, mqtt_recorder) -> None:
    async with ModbusDeviceServer(load_catalog().get("acme-em200"), unit=3) as dev:
        dev.set("car.floor", 7)
        _host, port, unit = dev.endpoint
        probe = await asyncio.create_subprocess_exec(
            str(edge_venv.xiaoqu), "onboard", "probe", "--profile", "acme-em200", "--modbus", f"127.0.0.1:{port}",
            "--unit", str(unit), cwd=edge_venv.root, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(probe.communicate(), 120)
        assert probe.returncode == 0, out.decode() + err.decode()
        assert "car.floor" in out.decode() and "7" in out.decode()

        config = tmp_path / "gateway.yaml"
        config.write_text(json.dumps({
            "gateway_id": "gw-reduced", "site": site_id,
            "uplink": {"url": mqtt_broker.url}, "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
            "metrics_port": None,
            "devices": [{"id": "lift-1", "profile": "acme-em200", "location": {"site": site_id, "building": "B1"},
                         "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit": unit}}],
        }))
        recorder = mqtt_recorder([f"xq/v1/{site_id}/+/telemetry"])
        gateway = await asyncio.create_subprocess_exec(
            str(edge_venv.xiaoqu), "edge", "run", "--config", str(config), cwd=edge_venv.root,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            got = await asyncio.to_thread(recorder.wait_for, lambda m: "car.floor" in m.payload.decode(), 60)
            assert got.topic == f"xq/v1/{site_id}/gw-reduced/telemetry"
        finally:
            gateway.terminate()
            _, err = await asyncio.wait_for(gateway.communicate(), 30)
        assert "psycopg" not in err.decode() and "Traceback" not in err.decode(), err.decode()


def test_backend_install_migrates_without_the_video_stack(cloud_venv: Venv, pg_dsn: str) -> None:
    out = _ok(cloud_venv.run(cloud_venv.xiaoqu, "cloud", "migrate", "--dsn", pg_dsn))
    assert "applied" in out
    imported = _ok(cloud_venv.run(cloud_venv.python, "-c", (
        "import sys, xiaoqu.cli, cloud.serve, cloud.api.app, cloud.ingest.worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cv2', 'onnxruntime', 'numpy', 'pymodbus'}))")))
    assert imported.strip() == "[]"
    _one_line_naming(cloud_venv.run(cloud_venv.xiaoqu, "onboard", "probe", "--profile", "acme-em200",
                                    "--modbus", "127.0.0.1:1", "--unit", "1"), "edge")
