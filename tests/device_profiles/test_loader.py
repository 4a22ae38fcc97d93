import textwrap
from pathlib import Path

import pytest

from device_profiles import CompiledProfile, ProfileError, load_catalog, load_profile
from device_profiles.loader import SHIPPED_DIR

MINIMAL = """\
id: acme-thermo
vendor: Acme
model: T-1
device_type: thermometer
protocol: modbus_tcp
points:
  - name: temp
    register: {table: input, address: 0, type: int16, scale: 0.1}
    unit: °C
events:
  - type: temp.high
    severity: warning
    when: {point: temp, gt: 60}
heartbeat: {offline_after_s: 30}
"""


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_profiles_load():
    catalog = load_catalog()
    for pid in ("gst-fp200", "acme-em200", "acme-dc100", "acme-sd10", "generic-ipc-analytics"):
        assert pid in catalog, pid
    fp = CompiledProfile(catalog.get("gst-fp200"))
    assert {"zone1.fire", "zone32.fire", "panel.main_power_fault"} <= set(fp.points_by_name)
    fire = [e for e in fp.events if e.type == "fire.alarm"]
    assert len(fire) == 32 and all(e.life_safety and e.severity == "critical" for e in fire)
    assert fire[11].detail == {"zone": 12}
    assert fire[11].when is not None and fire[11].when.point == "zone12.fire"


def test_error_names_file_line_and_field(tmp_path):
    bad = MINIMAL.replace("type: int16", "type: uint15")
    path = _write(tmp_path, bad)
    with pytest.raises(ProfileError) as info:
        load_profile(path, "device_profiles/x/p.yaml")
    (issue,) = info.value.issues
    assert issue.line == 8
    assert issue.field == "points[0].register.type"
    assert str(issue).startswith("device_profiles/x/p.yaml:8: points[0].register.type: 'uint15' is not one of")


def test_every_error_is_listed(tmp_path):
    bad = MINIMAL.replace("unit: °C", "unit: °C\n    colour: red").replace("gt: 60", "gt: sixty")
    path = _write(tmp_path, bad)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    fields = {(i.line, i.field) for i in info.value.issues}
    assert (10, "points[0].colour") in fields
    assert any(f.startswith("events[0].when.gt") and line == 14 for line, f in fields)


def test_missing_field_points_at_parent(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("    severity: warning\n", ""))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    (issue,) = info.value.issues
    assert issue.field == "events[0].severity"
    assert issue.message == "required field is missing"
    assert issue.line == 11  # the event missing it


def test_semantic_errors(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("point: temp, gt", "point: tmp, gt"))
    with pytest.raises(ProfileError, match="unknown point 'tmp'"):
        load_profile(path)


def test_yaml_syntax_error_has_line(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("vendor: Acme", "vendor: [Acme"))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.issues[0].line is not None
    assert "YAML syntax" in str(info.value)


def test_duplicate_ids_across_files(tmp_path):
    _write(tmp_path, MINIMAL, "a.yaml")
    _write(tmp_path, MINIMAL, "b.yaml")
    with pytest.raises(ProfileError, match="already used"):
        load_catalog([tmp_path])


def test_sixth_device_type_is_just_a_file(tmp_path):
    """A new device type — here a water-pressure sensor on MQTT — needs a YAML file and no code."""
    from device_profiles.commands import render_mqtt, validate_args
    from device_profiles.conditions import EventTracker
    from device_profiles.mqtt_mapping import extract_scalar, fill_topic

    _write(tmp_path, """\
    id: acme-wp1
    vendor: Acme Water
    model: WP-1 hydrant pressure sensor
    device_type: hydrant_pressure
    protocol: mqtt
    mqtt: {prefix: "water/{device_id}"}
    points:
      - {name: pressure, unit: MPa, mqtt: {topic: "{prefix}/up", path: $.p.value}}
    events:
      - {type: hydrant.low_pressure, label: 消火栓压力低, severity: major, when: {point: pressure, lt: 0.1}, for: 30,
         clear: {point: pressure, ge: 0.15}}
    commands:
      - name: set_interval
        args: {seconds: {type: int, min: 10, max: 3600}}
        mqtt: {topic: "{prefix}/down", payload: {id: "{command_id}", interval: "{seconds}"}}
    heartbeat: {offline_after_s: 600}
    """, "wp1.yaml")
    catalog = load_catalog([SHIPPED_DIR, tmp_path])
    profile = catalog.get("acme-wp1")
    compiled = CompiledProfile(profile)
    (point,) = compiled.points
    assert point.mqtt is not None
    assert fill_topic(point.mqtt.topic, prefix=profile.mqtt.prefix, device_id="hp-7") == "water/hp-7/up"
    value = extract_scalar({"p": {"value": 0.05}}, point.mqtt.path)
    tracker = EventTracker(compiled.events)
    assert tracker.update({"pressure": value}, now=0.0) == []
    (raised,) = tracker.update({"pressure": value}, now=31.0)
    assert raised.active and raised.event.type == "hydrant.low_pressure"
    assert tracker.update({"pressure": 0.12}, now=40.0) == []  # hysteresis: not yet cleared
    (cleared,) = tracker.update({"pressure": 0.2}, now=41.0)
    assert not cleared.active
    cmd = profile.command("set_interval")
    assert cmd is not None
    pub = render_mqtt(cmd, validate_args(cmd, {"seconds": 60}), prefix="water/hp-7", device_id="hp-7", command_id="c1")
    assert pub.topic == "water/hp-7/down"
    assert pub.payload == {"id": "c1", "interval": 60}


def test_copy_of_a_shipped_profile_is_the_same_profile_but_a_changed_one_clashes(tmp_path):
    """A source checkout beside the installed package (``profile validate device_profiles``) is no clash;
    a profile that reuses a shipped id with other content is."""
    from device_profiles import SHIPPED_DIR

    shipped = SHIPPED_DIR / "smoke_detector" / "acme-sd10.yaml"
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "acme-sd10.yaml").write_bytes(shipped.read_bytes())
    assert "acme-sd10" in load_catalog([tmp_path / "copy"])
    (tmp_path / "changed").mkdir()
    (tmp_path / "changed" / "acme-sd10.yaml").write_bytes(shipped.read_bytes() + b"\n# local edit\n")
    with pytest.raises(ProfileError, match="already used"):
        load_catalog([tmp_path / "changed"])
