"""The backend config: one typed BackendConfig, file:line: field errors, rules checked against the config
and the device profiles, ``xiaoqu cloud config check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.alarms.rules import DEFAULT_RULES
from cloud.auth.roles import Role
from cloud.config import BackendConfig, ConfigError, load_config, load_decision, read_config
from device_profiles import SHIPPED_DIR
from xiaoqu.cli import app

SECRET = "config-test-secret-0123456789abcdef"

GOOD = f"""\
database:
  dsn: postgresql://postgres@db.example:5432/xiaoqu
  retention_days: 14
mqtt:
  host: broker.example
  port: 8883
  username: serve
  password: serve-password
ingest:
  client_id: xq-ingest-a
  batch_max_wait_ms: 50
api:
  host: 0.0.0.0
  port: 8080
  jwt_secret: {SECRET}
  evidence_dir: evidence
decision:
  rules: rules.yaml
  notifications:
    - {{type: log}}
    - {{type: webhook, url: "https://hooks.example/xq", secret: s3cret-123, roles: [admin, property_manager]}}
  timer_interval_s: 2
"""

RULES = """\
ignore_events: [linkage.action]
dispatch:
  - name: entrapment
    alarm: elevator.entrapment
    incident: entrapment
escalation:
  critical:
    - {after: 1m, role: property_manager}
    - {after: 3m, role: admin}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return str(exc.value).splitlines()


def test_a_good_file_loads_typed_with_paths_relative_to_it(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    path = write(tmp_path, "cloud.yaml", GOOD)
    config = load_config(path)
    assert isinstance(config, BackendConfig)
    assert config.database.dsn.endswith("@db.example:5432/xiaoqu") and config.database.retention_days == 14
    assert config.require_api().port == 8080
    assert config.require_api().evidence_dir == tmp_path / "evidence"
    assert config.decision.rules == tmp_path / "rules.yaml"
    assert config.decision.timer_interval_s == 2
    # The broker is named once: ingest uses it too (ingest.mqtt unset).
    ingest = config.ingest_settings()
    assert (ingest.mqtt.host, ingest.mqtt.port, ingest.mqtt.username) == ("broker.example", 8883, "serve")
    assert ingest.client_id == "xq-ingest-a" and ingest.batch_max_wait_ms == 50
    publisher = config.publisher_settings()
    assert (publisher.host, publisher.port, publisher.client_id) == ("broker.example", 8883, "xiaoqu-decision")
    rules, catalog = load_decision(config, path)
    assert rules.dispatch[0].alarm == "elevator.entrapment"
    assert [s.role for s in rules.escalation_for("critical")] == [Role.PROPERTY_MANAGER, Role.ADMIN]
    assert "acme-em200" in catalog


def test_json_and_no_file_load_and_each_part_may_keep_its_own_broker_account(tmp_path: Path) -> None:
    assert load_config(None) == BackendConfig()
    data = {
        "ingest": {"mqtt": {"host": "b", "port": 1884, "username": "ingest", "password": "p1"}},
        "mqtt": {"host": "b", "port": 1884, "username": "serve", "password": "p2"},
    }
    config = load_config(write(tmp_path, "cloud.json", json.dumps(data)))
    assert config.ingest_settings().mqtt.username == "ingest"
    assert config.publisher_settings().username == "serve"
    # ingest.mqtt alone: the publisher uses it as well.
    only_ingest = load_config(write(tmp_path, "ingest.json", json.dumps({"ingest": data["ingest"]})))
    assert only_ingest.mqtt.username == "ingest" and only_ingest.publisher_settings().port == 1884


def test_unknown_keys_and_bad_values_are_refused_with_file_line_and_field(tmp_path: Path) -> None:
    text = GOOD.replace("  retention_days: 14\n", "  retention_days: 14\n  retension: 3\n").replace(
        "  port: 8883\n", "  port: 70000\n")
    path = write(tmp_path, "cloud.yaml", text + "debug: true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert problems(info) == [
        f"{path}:4: database.retension: unknown key (not part of the schema)",
        f"{path}:7: mqtt.port: Input should be less than or equal to 65535",
        f"{path}:24: debug: unknown key (not part of the schema)",
    ]


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud.yaml", "database:\n  dsn: [unclosed\napi: {}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: YAML syntax"):
        load_config(path)


def test_rules_naming_an_unknown_event_or_role_are_refused_with_file_line(tmp_path: Path) -> None:
    bad = RULES.replace("alarm: elevator.entrapment", "alarm: elevator.entrapmnet").replace(
        "role: admin}", "role: janitor}")
    write(tmp_path, "rules.yaml", bad)
    config = load_config(write(tmp_path, "cloud.yaml", GOOD))
    with pytest.raises(ConfigError) as info:
        load_decision(config)
    rules = str(tmp_path / "rules.yaml")
    assert problems(info) == [
        f"{rules}:9: escalation.critical[1].role: "
        "Input should be 'admin', 'property_manager', 'grid_worker' or 'installer'",
    ]
    write(tmp_path, "rules.yaml", RULES.replace("alarm: elevator.entrapment", "alarm: elevator.entrapmnet"))
    with pytest.raises(ConfigError) as info:
        load_decision(config)
    assert problems(info) == [
        f"{rules}:4: dispatch[0].alarm: no profile, camera rule, gateway or engine raises 'elevator.entrapmnet'",
    ]


def test_rules_are_checked_against_the_configs_notification_roles(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    text = GOOD.replace("    - {type: log}\n", "    - {type: log, roles: [installer, pm]}\n").replace(
        "roles: [admin, property_manager]", "roles: [admin]")
    path = write(tmp_path, "cloud.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert problems(info) == [
        f"{path}:20: decision.notifications[0].roles[1]: Input should be 'admin', 'property_manager', "
        "'grid_worker' or 'installer'",
    ]
    path = write(tmp_path, "cloud.yaml", text.replace("[installer, pm]", "[installer]"))
    with pytest.raises(ConfigError) as info:
        load_decision(load_config(path), path)
    assert problems(info) == [
        f"{tmp_path / 'rules.yaml'}:8: escalation.critical[0].role: no notification channel delivers to "
        f"'property_manager': every channel in {path} (decision.notifications) filters on other roles",
    ]


def test_rules_may_name_the_profiles_the_config_adds(tmp_path: Path) -> None:
    mine = tmp_path / "profiles"
    mine.mkdir()
    shipped = (SHIPPED_DIR / "door_access" / "acme-dc100.yaml").read_text(encoding="utf-8")
    write(mine, "my-dc1.yaml", shipped.replace("id: acme-dc100", "id: my-dc1"))
    write(tmp_path, "rules.yaml", RULES + "welfare: {door_profiles: [my-dc1]}\n")
    without = load_config(write(tmp_path, "cloud.yaml", GOOD))
    with pytest.raises(ConfigError, match=r"rules\.yaml:10: welfare\.door_profiles\[0\]: unknown profile 'my-dc1'"):
        load_decision(without)
    config = load_config(write(tmp_path, "cloud.yaml", GOOD + "  profiles: [profiles]\n"))
    assert config.decision.profiles == [mine]
    rules, catalog = load_decision(config)
    assert rules.welfare.door_profiles == ["my-dc1"] and "my-dc1" in catalog


def test_command_line_options_override_the_file(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    config = load_config(write(tmp_path, "cloud.yaml", GOOD))
    changed = config.with_options(dsn="postgresql://x@y/z", mqtt="other:1999", port=9000, rules=DEFAULT_RULES)
    assert changed.database.dsn == "postgresql://x@y/z" and changed.database.retention_days == 14
    assert (changed.mqtt.host, changed.mqtt.port, changed.mqtt.username) == ("other", 1999, "serve")
    assert changed.ingest_settings().mqtt.host == "other"
    assert changed.require_api().port == 9000 and changed.require_api().host == "0.0.0.0"
    assert changed.decision.rules == DEFAULT_RULES
    with pytest.raises(ConfigError, match="command line: --flavour"):
        config.with_options(flavour="fast")
    with pytest.raises(ConfigError, match="command line: api: required here"):
        BackendConfig().with_options(port=1)


def test_config_check_prints_ok_or_every_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    write(tmp_path, "rules.yaml", RULES)
    good = write(tmp_path, "cloud.yaml", GOOD)
    done = runner.invoke(app, ["cloud", "config", "check", str(good)])
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"OK: {good}: sections: database, mqtt, ingest, api, decision;")
    assert runner.invoke(app, ["cloud", "config", "check"]).output.startswith("OK: the defaults")
    bad = write(tmp_path, "bad.yaml", GOOD.replace("  host: 0.0.0.0\n", "  hots: 0.0.0.0\n"))
    done = runner.invoke(app, ["cloud", "config", "check", str(bad)])
    assert done.exit_code == 1
    assert f"{bad}:13: api.hots: unknown key (not part of the schema)" in done.output
    assert "OK" not in done.output
    _, doc = read_config(good)
    assert list(doc) == ["database", "mqtt", "ingest", "api", "decision"]


def test_serve_refuses_a_config_without_api(tmp_path: Path) -> None:
    path = write(tmp_path, "cloud.yaml", "database: {dsn: 'postgresql://x@y/z'}\n")
    done = CliRunner().invoke(app, ["cloud", "serve", "-c", str(path)])
    assert done.exit_code == 2
    assert f"{path}: api: required here" in done.output


def test_the_reference_is_current_and_its_example_is_valid(tmp_path: Path) -> None:
    from cloud.config_reference import DOC, render

    text = DOC.read_text(encoding="utf-8")
    assert text == render(), "run: python -m cloud.config_reference"
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert not [r for r in rows if r.endswith("|  |")], "a key without a meaning: add a description or a NOTE"
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "profiles").mkdir()
    write(tmp_path, "rules.yaml", DEFAULT_RULES.read_text(encoding="utf-8"))
    path = write(tmp_path, "cloud.yaml", example)
    config = load_config(path)
    assert config.require_api().evidence_dir == Path("/var/lib/xiaoqu/evidence")
    assert config.ingest_settings().mqtt.username == "xq-serve"
    load_decision(config, path)
