"""Event keys: what identifies one alarm condition at a device (one alarm per device and key in the backend)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from device_profiles import CompiledProfile, ProfileError, load_catalog, load_profile

PROFILE = """\
id: acme-lift
vendor: Acme
model: L-1
device_type: elevator
protocol: modbus_tcp
points:
  - {name: trapped_at_floor, register: {table: input, address: 0, bit: 0}}
  - {name: trapped_between, register: {table: input, address: 0, bit: 1}}
  - {name: "loop{n}.fault", repeat: {count: 4}, register: {table: input, address: 10, bit: 0}}
events:
  - {type: elevator.entrapment, severity: critical, when: {point: trapped_at_floor, eq: true}}
  - type: elevator.entrapment
    severity: critical
    when: {point: trapped_between, eq: true}
  - {type: loop.fault, severity: minor, repeat: {count: 4}, when: {point: "loop{n}.fault", eq: true}}
"""


def _load(tmp_path: Path, text: str) -> CompiledProfile:
    path = tmp_path / "lift.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return CompiledProfile(load_profile(path, "profiles/lift.yaml"))


def test_shipped_keys_are_type_or_type_and_instance() -> None:
    catalog = load_catalog()
    panel = CompiledProfile(catalog.get("gst-fp200"))
    fire = [e for e in panel.events if e.type == "fire.alarm"]
    assert [e.key for e in fire[:2]] == ["fire.alarm#1", "fire.alarm#2"] and fire[11].key == "fire.alarm#12"
    assert next(e.key for e in panel.events if e.type == "fire.bus_fault") == "fire.bus_fault"
    assert panel.instances == set(range(1, 33))
    lift = CompiledProfile(catalog.get("acme-em200"))
    assert [e.key for e in lift.events if e.type == "elevator.entrapment"] == [
        "elevator.entrapment.at_floor", "elevator.entrapment.between_floors"]
    for profile in catalog:  # every shipped profile: one key per row instance
        keys = [e.key for e in CompiledProfile(profile).events]
        assert len(keys) == len(set(keys)), profile.id


def test_keys_do_not_shift_when_a_row_is_added(tmp_path: Path) -> None:
    """Keys come from the row, not its position: adding a row above leaves the others' keys as they were."""
    text = PROFILE.replace("    when: {point: trapped_between, eq: true}\n",
                           "    key: elevator.entrapment.between\n    when: {point: trapped_between, eq: true}\n")
    before = [e.key for e in _load(tmp_path, text).events]
    grown = text.replace("events:\n", "events:\n  - {type: elevator.inspection, severity: info,"
                                      " when: {point: trapped_at_floor, eq: false}}\n")
    after = [e.key for e in _load(tmp_path, grown).events]
    assert after == ["elevator.inspection", *before]
    assert before[:3] == ["elevator.entrapment", "elevator.entrapment.between", "loop.fault#1"]


def test_explicit_key_with_instance(tmp_path: Path) -> None:
    text = PROFILE.replace("{type: loop.fault, severity: minor,",
                           '{type: loop.fault, key: "loop{n}/fault", severity: minor,')
    text = text.replace("    when: {point: trapped_between, eq: true}\n",
                        "    key: elevator.entrapment.between\n    when: {point: trapped_between, eq: true}\n")
    keys = [e.key for e in _load(tmp_path, text).events]
    assert keys[2:] == ["loop1/fault", "loop2/fault", "loop3/fault", "loop4/fault"]


def test_two_rows_with_one_key_are_refused_at_the_second_row(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, PROFILE)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.field) == ("profiles/lift.yaml", 12, "events[1]")
    assert str(issue).startswith("profiles/lift.yaml:12: events[1]: key 'elevator.entrapment' is already used by "
                                 "events[0]")
    # an explicit key on the second row that collides points at that key's line
    clash = PROFILE.replace("    when: {point: trapped_between, eq: true}\n",
                            "    key: loop.fault#2\n    when: {point: trapped_between, eq: true}\n")
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, clash.replace("{type: elevator.entrapment, severity", "{type: elevator.stuck, severity"))
    (issue,) = info.value.issues
    assert (issue.line, issue.field) == (16, "events[2]")  # loop.fault#2 again: refused at the loop row
    assert "key 'loop.fault#2' is already used by events[1]" in issue.message


@pytest.mark.parametrize(("row", "message"), [
    ('{type: loop.fault, key: loop.fault, severity: minor, repeat: {count: 4},'
     ' when: {point: "loop{n}.fault", eq: true}}',
     "a repeated event's key must contain {n}"),
    ('{type: loop.fault, key: "loop{n}", severity: minor, when: {point: "loop1.fault", eq: true}}',
     "{n} in a key needs repeat"),
    ('{type: loop.fault, key: "loop fault", severity: minor, when: {point: "loop1.fault", eq: true}}',
     "String should match pattern"),
])
def test_bad_keys_name_the_row(tmp_path: Path, row: str, message: str) -> None:
    loop_row = '{type: loop.fault, severity: minor, repeat: {count: 4}, when: {point: "loop{n}.fault", eq: true}}'
    text = PROFILE.replace(loop_row, row)
    text = text.replace("    when: {point: trapped_between, eq: true}\n",
                        "    key: elevator.entrapment.between\n    when: {point: trapped_between, eq: true}\n")
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, text)
    assert any(i.line == 16 and message in i.message for i in info.value.issues), str(info.value)
