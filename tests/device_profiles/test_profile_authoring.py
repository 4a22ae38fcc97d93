"""What a profile author needs: an own folder adds to the shipped catalog, plausible ranges and display
precision, readings copied into events, unknown points reported at the event's line, ``profile show``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_profiles import CompiledProfile, ProfileError, load_catalog, load_profile
from device_profiles.loader import SHIPPED_DIR

HP = """\
id: acme-hp1
vendor: Acme
model: HP-1
device_type: hydrant_pressure
protocol: modbus_tcp
modbus: {word_order: little}
points:
  - {name: pressure, unit: MPa, register: {table: holding, address: 0, type: float32}, range: {min: 0, max: 1.6},
     precision: 2}
  - {name: status.fault, register: {table: holding, address: 2, bit: 0}}
  - {name: "zone{n}.p", repeat: {count: 2}, register: {table: holding, address: 10}, precision: 1,
     range: {max: 100}}
events:
  - type: hydrant.fault
    severity: minor
    when: {point: status.fault, eq: true}
    readings: [pressure]
  - type: zone.low
    severity: major
    repeat: {count: 2}
    when: {point: "zone{n}.p", lt: 1}
    readings: ["zone{n}.p", pressure]
"""


def _write(folder: Path, text: str, name: str = "p.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_own_folder_adds_to_the_shipped_catalog(tmp_path: Path) -> None:
    _write(tmp_path / "mine", HP)
    catalog = load_catalog([tmp_path / "mine"])
    assert "acme-hp1" in catalog and "acme-em200" in catalog and "gst-fp200" in catalog
    assert len(catalog) == len(load_catalog()) + 1
    # The shipped folder named again (old configs did: profiles_dir: [<shipped>, mine]) is loaded once.
    assert load_catalog([SHIPPED_DIR, tmp_path / "mine"]).ids() == catalog.ids()
    assert load_catalog([tmp_path / "mine"], shipped=False).ids() == ["acme-hp1"]


def test_an_id_clash_with_a_shipped_profile_names_both_files(tmp_path: Path) -> None:
    path = _write(tmp_path / "mine", "# my copy\n" + HP.replace("id: acme-hp1", "id: acme-em200"))
    with pytest.raises(ProfileError) as info:
        load_catalog([tmp_path / "mine"])
    (issue,) = info.value.issues
    assert issue.file.endswith(str(path.name)) and issue.line == 2 and issue.field == "id"
    assert "profile id 'acme-em200' is already used by" in issue.message
    assert "elevator/acme-em200.yaml" in issue.message


def test_range_and_precision(tmp_path: Path) -> None:
    compiled = CompiledProfile(load_profile(_write(tmp_path, HP)))
    p = compiled.points_by_name["pressure"]
    assert p.display(0.3499999940395355) == "0.35" and p.rounded(0.3499999940395355) == 0.35
    assert p.implausible(0.35) is None and p.implausible(1.6) is None
    assert p.implausible(4.173370982130109e-08) is None  # 0 ≤ 4e-08: plausible by range alone …
    assert p.implausible(-4.43e-08) == (
        "-4.43e-08 is below the plausible minimum 0.0 — check word_order/byte_order/scale")
    assert p.implausible(3.4e38) == "3.4e+38 is above the plausible maximum 1.6 — check word_order/byte_order/scale"
    assert p.implausible(float("nan")) == "nan is not a finite number — check word_order/byte_order/scale"
    zone = compiled.points_by_name["zone2.p"]
    assert zone.implausible(250) == "250 is above the plausible maximum 100.0 — check byte_order/type/scale"
    assert zone.implausible(-5) is None  # no minimum
    assert compiled.points_by_name["status.fault"].display(True) == "True"


@pytest.mark.parametrize(("snippet", "field", "message"), [
    ("range: {min: 2, max: 1}", "points[0].range", "min 2 is above max 1"),
    ("range: {}", "points[0].range", "a range needs min, max or both"),
    ("precision: 12", "points[0].precision", "less than or equal to 9"),
])
def test_bad_range_or_precision_is_refused_at_its_line(tmp_path: Path, snippet: str, field: str, message: str) -> None:
    text = HP.replace("range: {min: 0, max: 1.6},\n     precision: 2", snippet)
    with pytest.raises(ProfileError) as info:
        load_profile(_write(tmp_path, text))
    (issue,) = info.value.issues
    assert issue.field == field and message in issue.message and issue.line == 8


def test_readings_are_expanded_per_instance(tmp_path: Path) -> None:
    compiled = CompiledProfile(load_profile(_write(tmp_path, HP)))
    events = {e.key: e for e in compiled.events}
    assert events["zone.low#2"].readings == ("zone2.p", "pressure")
    values = {"pressure": 0.3499999940395355, "zone2.p": 0.25, "zone1.p": 7}
    assert compiled.readings_detail(events["zone.low#2"], values) == {"zone2.p": 0.2, "pressure": 0.35}
    assert compiled.readings_detail(events["hydrant.fault"], {}) == {}  # no value yet: left out


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), [
    ("when: {point: status.fault, eq: true}", "when: {point: status.falt, eq: true}", 16, "events[0].when",
     "events[0] (hydrant.fault): condition refers to unknown point 'status.falt'"),
    ("readings: [pressure]\n", "readings: [presure]\n", 17, "events[0].readings[0]",
     "events[0] (hydrant.fault): readings names unknown point 'presure'"),
    ('readings: ["zone{n}.p", pressure]', 'readings: ["zone{n}.q"]', 22, "events[1].readings[0]",
     "readings names unknown point 'zone1.q'"),
])
def test_unknown_point_is_reported_at_the_events_line(tmp_path: Path, old: str, new: str, line: int, field: str,
                                                      message: str) -> None:
    assert old in HP
    with pytest.raises(ProfileError) as info:
        load_profile(_write(tmp_path, HP.replace(old, new)))
    (issue,) = info.value.issues
    assert (issue.line, issue.field) == (line, field), str(issue)
    assert message in issue.message


def test_profile_show_lists_decoding_range_precision_and_bit_points(tmp_path: Path) -> None:
    from xiaoqu.profile_cmd import app

    _write(tmp_path / "mine", HP)
    result = CliRunner().invoke(app, ["show", "acme-hp1", "--profiles", str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in result.output.splitlines() if line.startswith("│")}
    assert rows["pressure"][1:7] == ["holding 0", "float32", "word_order little, byte_order big", "MPa", "", "0..1.6"]
    assert rows["pressure"][7] == "2"
    assert rows["status.fault"][1:3] == ["bit 0 of holding 2", "bool"]  # not uint16
    assert rows["zone1.p"][6:8] == ["..100", "1"]
    assert rows["hydrant.fault"][-1] == "pressure"  # the event's readings
