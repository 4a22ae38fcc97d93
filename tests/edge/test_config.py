"""Gateway config: the shipped example validates; mistakes are reported with file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

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
     "gw.yaml:11: linkage.rules[0]: target devices[0] (lift1, profile acme-em200) has no command 'fly'"),
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
