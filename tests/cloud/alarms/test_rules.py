"""Rules YAML: the shipped default loads; mistakes are reported with file:line: field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloud.alarms.rules import RulesError, load_rules, load_rules_text, parse_duration


def test_default_rules_load():
    rules = load_rules()
    assert rules.correlation[0].min_devices == 2
    assert rules.linkage["fire"].steps[1].command == "fire_recall"
    assert rules.work_orders.sla_for("entrapment").dispatch == timedelta(minutes=5)
    assert rules.work_orders.sla_for("unknown-type") == rules.work_orders.sla["default"]


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400), (30, 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_errors_name_file_line_and_field():
    text = "correlation:\n  - name: fire\n    signals: [fire.alarm]\n    incident: fire\n    window: soon\n"
    with pytest.raises(RulesError, match=r"^r\.yaml:5: correlation\[0\]\.window: .*30s, 5m"):
        load_rules_text(text, "r.yaml")


def test_unknown_key_and_missing_plan_are_refused():
    with pytest.raises(RulesError, match=r"r\.yaml:3: escalation\.critical\[0\]\.rol"):
        load_rules_text("escalation:\n  critical:\n    - {after: 1m, rol: admin}\n", "r.yaml")
    with pytest.raises(RulesError, match="no linkage plan named 'flood'"):
        load_rules_text("correlation:\n  - {name: x, signals: [a], incident: i, linkage: flood}\n", "r.yaml")
