"""``xiaoqu sim run`` / ``check`` / ``gateway-config`` end to end (the run starts its own Mosquitto)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulators.cli import app

ROOT = Path(__file__).resolve().parents[2] / "simulators"
runner = CliRunner()


@pytest.mark.integration
def test_run_writes_report_and_ports_then_a_gateway_config(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: cli\nsteps:\n"
                        "  - {at: 1, action: set, device: b1-fp, point: zone3.fire, value: true}\n"
                        "  - {at: 2, action: door, device: b1-door, event: forced_open}\n"
                        "  - {at: 3, action: wan, state: cut}\n"
                        "  - {at: 4, action: broker, op: restart}\n"
                        "  - {at: 5, action: camera, device: b1-el1-cam, scene: ebike}\n")
    report, ports = tmp_path / "report.json", tmp_path / "ports.json"
    result = runner.invoke(app, ["run", "--layout", str(ROOT / "layouts" / "mini.yaml"), "--scenario", str(scenario),
                                 "--seed", "5", "--speed", "10", "--report", str(report), "--ports-file", str(ports),
                                 "--no-cameras"])
    assert result.exit_code == 0, result.output
    assert "injected: 4 ok, 1 skipped, 0 failed" in result.output
    data = json.loads(report.read_text())
    assert [r["action"] for r in data["injected"]] == ["set", "door", "wan", "broker", "camera"]
    assert data["seed"] == 5 and data["speed"] == 10.0 and data["devices"]["mqtt"] == 7
    assert data["injected"][0]["params"] == {"point": "zone3.fire", "value": True}
    p = json.loads(ports.read_text())
    assert p["modbus"]["b1-el2"]["unit"] == 2 and p["uplink_proxy"].startswith("mqtt://127.0.0.1:")
    out = tmp_path / "gw.yaml"
    result = runner.invoke(app, ["gateway-config", "--layout", str(ROOT / "layouts" / "mini.yaml"), "--gateway",
                                 "b1-gw", "--ports-file", str(ports), "--out", str(out)])
    assert result.exit_code == 0, result.output
    from edge.config import load_config

    config, _ = load_config(out)
    fp = config.device("b1-fp")
    assert fp is not None and fp.connection.kind == "modbus_tcp" and fp.connection.port == p["modbus"]["b1-fp"]["port"]
    assert config.uplink.url == p["uplink_proxy"] and len(config.devices) == 10  # no camera: not running
    # the panel's zone n is floor n (params.zones: 3 wired), so zone 3's alarm is at F3, not in the control room
    assert fp.zones is not None and sorted(fp.zones) == [1, 2, 3]
    assert fp.zone_locations()[3].model_dump(exclude_none=True) == {"site": "mini", "building": "b1", "floor": 3}


def test_check_reports_counts_and_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--layout", str(ROOT / "layouts" / "demo.yaml"),
                                 "--scenario", str(ROOT / "scenarios" / "fire_drill.yaml")])
    assert result.exit_code == 0, result.output
    assert "362 devices" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {id: s}\nbuildings:\n  - {id: b1, floors: 2, devices: [{id: x, profile: nope}]}\n")
    result = runner.invoke(app, ["check", "--layout", str(bad)])
    assert result.exit_code == 2 and "unknown profile 'nope'" in result.output
