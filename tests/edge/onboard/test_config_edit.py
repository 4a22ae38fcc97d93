"""`xiaoqu onboard add`: the device is appended, validated, and nothing else in the file changes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from device_profiles import load_catalog
from edge.config import load_config
from edge.onboard.config_edit import ConfigEditError, DeviceEntry, add_device

EXAMPLE = Path(__file__).resolve().parents[3] / "edge" / "examples" / "gateway.yaml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "gateway.yaml"
    path.write_text(text.replace("/var/lib/xiaoqu/gw-b3/outbox.sqlite3", "./outbox.sqlite3"), encoding="utf-8")
    return path


def _lift(device_id: str = "b3-lift-3", **kw: object) -> DeviceEntry:
    args: dict[str, object] = {
        "device_id": device_id, "profile": "acme-em200", "building": "B3", "area": "car 3",
        "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 5020, "unit": 3},
    }
    args.update(kw)
    return DeviceEntry(**args)  # type: ignore[arg-type]


def test_added_device_validates(config: Path) -> None:
    catalog = load_catalog()
    add_device(config, _lift(), catalog)
    cfg, _ = load_config(config, catalog)
    dev = cfg.device("b3-lift-3")
    assert dev is not None
    assert dev.location.site == "demo"
    assert dev.location.area == "car 3"
    assert dev.connection.kind == "modbus_tcp"


def test_only_lines_added(config: Path) -> None:
    import difflib

    before = config.read_text(encoding="utf-8").splitlines()
    add_device(config, _lift(), load_catalog())
    after = config.read_text(encoding="utf-8").splitlines()
    changes = [d for d in difflib.ndiff(before, after) if d[:1] in "+-"]
    assert changes
    assert all(d.startswith("+ ") for d in changes), changes
    assert any("id: b3-lift-3" in d for d in changes)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (_lift("b3-lift-1"), "already configured"),
        (_lift(profile="acme-em201"), "unknown profile 'acme-em201'; known profiles:"),
        (_lift(profile="acme-dc100"), "speaks mqtt, but the connection given is modbus_tcp"),
        (_lift(site="elsewhere"), "location.site 'elsewhere' is not 'demo'"),
        (_lift("bad id!"), "devices["),
    ],
)
def test_refused_edits_leave_the_file_alone(config: Path, entry: DeviceEntry, fragment: str) -> None:
    before = config.read_bytes()
    with pytest.raises(ConfigEditError) as info:
        add_device(config, entry, load_catalog())
    assert fragment in str(info.value)
    assert config.read_bytes() == before
    assert not list(config.parent.glob(".onboard-*"))


def test_cli_add(config: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "xiaoqu", "onboard", "add", "--gateway-config", str(config), "--profile", "acme-sd10",
         "--device-id", "b3-smoke-0501", "--building", "B3", "--floor", "5", "--unit", "0501", "--mqtt"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "b3-smoke-0501" in config.read_text(encoding="utf-8")
    again = subprocess.run(
        [sys.executable, "-m", "xiaoqu", "onboard", "add", "--gateway-config", str(config), "--profile", "acme-sd10",
         "--device-id", "b3-smoke-0501", "--building", "B3", "--mqtt"],
        capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 1
    assert "already configured" in again.stderr
    assert "Traceback" not in again.stderr


def test_add_uses_the_configs_profiles_dir_and_keeps_null(config: Path) -> None:
    """The gateway's own profile folder is where `onboard add` finds a local profile; `metrics_port: null`
    (metrics off) stays null instead of becoming an empty value."""
    local = config.parent / "profiles"
    local.mkdir()
    vendor = Path(__file__).resolve().parents[3] / "device_profiles" / "gas_detector" / "tianlan-gv40.yaml"
    (local / "local-gas.yaml").write_text(
        vendor.read_text(encoding="utf-8").replace("id: tianlan-gv40", "id: local-gas"), encoding="utf-8")
    text = config.read_text(encoding="utf-8").replace("\nmetrics_port: 9108", "\nmetrics_port: null")
    shipped = vendor.parents[1]  # profiles_dir replaces the shipped folder: name both
    config.write_text(f"profiles_dir: [./profiles, {shipped}]\n{text}", encoding="utf-8")
    entry = DeviceEntry(device_id="b3-gas-1801", profile="local-gas", building="B3", unit="1801",
                        connection={"kind": "mqtt"})
    add_device(config, entry)
    after = config.read_text(encoding="utf-8")
    assert re.search(r"^metrics_port: null\b", after, re.MULTILINE) and "b3-gas-1801" in after
    cfg, catalog = load_config(config)
    assert cfg.metrics_port is None and "local-gas" in catalog
