"""Gateway config: the shipped example validates; mistakes are reported with file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_profiles import SHIPPED_DIR
from edge.config import ConfigError, load_config
from xiaoqu.cli import app

EXAMPLE = Path(__file__).resolve().parents[2] / "edge" / "examples" / "gateway.yaml"


def test_example_config_is_valid() -> None:
    config, catalog = load_config(EXAMPLE)
    assert config.gateway_id == "gw-b3" and len(config.devices) == 7
    door_rule = next(r for r in config.linkage.rules if r.command == "release_all")
    assert door_rule.require_signals == 2
    assert config.outbox.path.is_absolute()
    assert "acme-em200" in catalog
    panel = config.device("b3-fire-panel")
    assert panel is not None and panel.zone_locations()[13].floor == 13


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gw.yaml"
    p.write_text(text)
    return p


BASE = """\
gateway_id: gw1
site: s1
outbox: {path: outbox.sqlite3}
devices:
  - id: lift1
    profile: acme-em200
    location: {site: s1, building: B1}
    connection: {kind: modbus_tcp, host: 127.0.0.1, port: 5020}
"""


def test_relative_outbox_path_and_defaults(tmp_path: Path) -> None:
    config, _ = load_config(_write(tmp_path, BASE))
    assert config.outbox.path == tmp_path.resolve() / "outbox.sqlite3"
    assert config.metrics_port == 9108 and config.telemetry.full_report_interval_s == 300


@pytest.mark.parametrize(("text", "expected"), [
    (BASE.replace("modbus_tcp, host", "modbus, host"), "gw.yaml:8: devices[0].connection"),
    (BASE.replace("acme-em200", "acme-em999"), "gw.yaml:6: devices[0].profile: unknown profile 'acme-em999'"),
    (BASE.replace("acme-em200", "acme-dc100"),
     "gw.yaml:8: devices[0].connection.kind: profile 'acme-dc100' speaks mqtt but the connection is modbus_tcp"),
    (BASE + "bogus: 1\n", "gw.yaml:9: bogus: unknown key"),
    (BASE + "linkage:\n  rules:\n    - {name: r, triggers: [fire.alarm], target_type: elevator, command: fly}\n",
     "gw.yaml:11: linkage.rules[0].command: no elevator profile has a command 'fly' (acme-em200)"),
    # the shared vocabulary: triggers are event types something raises; arguments fit the command
    (BASE + "linkage:\n  rules:\n    - name: r\n      triggers: [fire.alarm, fire.alrm]\n"
            "      target_type: elevator\n      command: fire_recall\n",
     "gw.yaml:12: linkage.rules[0].triggers[1]: no profile or gateway part raises 'fire.alrm'"),
    (BASE + "linkage:\n  rules:\n    - name: r\n      triggers: [fire.alarm]\n      target_type: elevator\n"
            "      command: hold_doors\n      args: {duration_s: 9000}\n",
     "gw.yaml:14: linkage.rules[0].command: target devices[0] (lift1): profile acme-em200: argument 'duration_s': "
     "9000 is above the maximum 600"),
    (BASE + "linkage:\n  rules:\n    - {name: r, triggers: [fire.alarm], target_type: sprinkler, command: x}\n",
     "gw.yaml:11: linkage.rules[0].command: no profile has device_type 'sprinkler'"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert expected in str(info.value), str(info.value)


def test_cli_check(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["edge", "check", "--config", str(EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["edge", "check", "--config", str(_write(tmp_path, BASE.replace("acme-em200", "x-y")))])
    assert bad.exit_code == 2


PANEL = """\
gateway_id: gw1
site: s1
outbox: {path: outbox.sqlite3}
devices:
  - id: fp
    profile: gst-fp200
    location: {site: s1, building: B3, floor: 1, area: fire control room}
    connection: {kind: modbus_tcp, host: 127.0.0.1, port: 5020}
    zones:
      12: {floor: 12}
      13: {floor: 13, area: 东侧走廊}
      14: {building: B3-annex, floor: 2}
"""


def test_zone_map_gives_each_zone_its_location(tmp_path: Path) -> None:
    config, _ = load_config(_write(tmp_path, PANEL))
    zones = config.devices[0].zone_locations()
    assert zones[12].model_dump(exclude_none=True) == {"site": "s1", "building": "B3", "floor": 12}
    assert zones[13].model_dump(exclude_none=True) == {"site": "s1", "building": "B3", "floor": 13, "area": "东侧走廊"}
    assert zones[14].building == "B3-annex"  # a zone may sit in another building than its panel


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("      14: {building: B3-annex, floor: 2}", "      33: {floor: 33}",
     "gw.yaml:12: devices[0].zones[33]: zone 33 is not an instance of profile gst-fp200 (it has 1..32)"),
    ("      14: {building: B3-annex, floor: 2}", "      14: {flor: 2}",
     "gw.yaml:12: devices[0].zones[14].flor: unknown key"),
    ("      14: {building: B3-annex, floor: 2}", "      14: {}",
     "gw.yaml:12: devices[0].zones[14]: a zone needs at least one of building, floor, unit, area"),
    ("      12: {floor: 12}", "      twelve: {floor: 12}", "gw.yaml:10: devices[0].zones.twelve"),
])
def test_zone_map_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, PANEL.replace(old, new)))
    assert expected in str(info.value), str(info.value)


def test_zone_map_on_a_profile_without_zones_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gw\.yaml:9: devices\[0\]\.zones\[1\]: .*it has no repeated events"):
        load_config(_write(tmp_path, BASE + "    zones: {1: {floor: 1}}\n"))


def test_camera_linkage_requests_must_exist_on_the_watched_device(tmp_path: Path) -> None:
    """The e-bike rule asks the watched elevator for hold_doors and voice_warning (both in acme-em200);
    watching a door controller instead is refused at load."""
    text = BASE + (
        "  - id: door1\n    profile: acme-dc100\n    location: {site: s1, building: B1}\n    connection: {kind: mqtt}\n"
        "  - id: cam1\n    profile: generic-ipc-analytics\n    location: {site: s1, building: B1}\n"
        "    connection: {kind: camera}\n    watches: WATCHED\n"
    )
    car_cam = (tmp_path / "profiles")
    car_cam.mkdir()
    (car_cam / "car-cam.yaml").write_text(
        "id: car-cam\nvendor: V\nmodel: M\ndevice_type: camera\nprotocol: camera\ncamera:\n"
        "  source: {kind: file, url: car.mp4}\n  rules:\n"
        "    - {name: car, kind: ebike_in_elevator, zone: [[0, 0], [1, 0], [1, 1]]}\n")
    text = f"profiles_dir: [{SHIPPED_DIR}, profiles]\n" + text.replace("generic-ipc-analytics", "car-cam")
    config, _ = load_config(_write(tmp_path, text.replace("WATCHED", "lift1")))
    assert config.devices[2].watches == "lift1"
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text.replace("WATCHED", "door1")))
    assert ("gw.yaml:18: devices[2].watches: camera rule 'car' asks for 'hold_doors' on door1: profile acme-dc100 "
            "has no command 'hold_doors'") in str(info.value)
