"""Rules YAML: the shipped default loads; mistakes are reported with file:line: field."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloud.alarms.rules import RulesError, load_rules, load_rules_text, parse_duration
from device_profiles import load_catalog


def test_default_rules_load():
    rules = load_rules()
    assert rules.correlation[0].min_signals == 2
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


def test_rules_speak_the_profiles_vocabulary():
    """Linkage plans name profiles and commands that exist (arguments checked); alarm types are ones some
    profile, camera rule, the gateway or the engine raises — checked at load, with file:line: field."""
    text = (
        "ignore_events: [linkage.action]\n"
        "correlation:\n"
        "  - {name: fire, signals: [fire.alarm, smoke.alrm], incident: fire, linkage: fire}\n"
        "dispatch:\n"
        "  - {name: trapped, alarm: elevator.entrapment, incident: entrapment}\n"
        "linkage:\n"
        "  fire:\n"
        "    steps:\n"
        "      - profiles: [acme-dc100, acme-dc999]\n"
        "        command: release_all\n"
        "      - profiles: [acme-em200]\n"
        "        command: fire_recall\n"
        "        args: {floor: 120}\n"
        "      - profiles: [generic-ipc-analytics]\n"
        "        command: voice_warning\n"
        "heartbeat: {profiles: {acme-sd11: 1h}}\n"
    )
    with pytest.raises(RulesError) as info:
        load_rules_text(text, "r.yaml")
    lines = str(info.value).splitlines()
    assert lines == [
        "r.yaml:9: linkage.fire.steps[0].profiles[1]: unknown profile 'acme-dc999'; known profiles: "
        + ", ".join(load_catalog().ids()),
        "r.yaml:12: linkage.fire.steps[1].command: profile acme-em200: argument 'floor': 120 is above the maximum 99",
        "r.yaml:15: linkage.fire.steps[2].command: profile generic-ipc-analytics has no command 'voice_warning' "
        "(has: none)",
        "r.yaml:3: correlation[0].signals[1]: no profile, camera rule, gateway or engine raises 'smoke.alrm'",
        "r.yaml:16: heartbeat.profiles.acme-sd11: unknown profile 'acme-sd11'; known profiles: "
        + ", ".join(load_catalog().ids()),
    ]
    fixed = (text.replace("acme-dc100, acme-dc999", "acme-dc100").replace("smoke.alrm", "smoke.alarm")
             .replace("{floor: 120}", "{floor: 1}").replace("generic-ipc-analytics", "acme-em200")
             .replace("acme-sd11", "acme-sd10"))
    rules = load_rules_text(fixed, "r.yaml")
    assert [s.command for s in rules.linkage["fire"].steps] == ["release_all", "fire_recall", "voice_warning"]
