"""Scenario files: the shipped ones fit the demo compound; mistakes are reported as file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles.loader import load_catalog
from simulators.compound import SimulatedCompound
from simulators.layout import load_layout
from simulators.runner import check_scenario
from simulators.scenario import ScenarioError, SetPoint, load_scenario

ROOT = Path(__file__).resolve().parents[2] / "simulators"
CATALOG = load_catalog()
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_the_required_scenarios_ship() -> None:
    names = {p.stem for p in SHIPPED}
    assert names >= {"fire_drill", "elevator_entrapment", "door_forced_night", "fire_lane_blocked", "ebike_elevator",
                     "wan_cut", "broker_restart", "device_silent", "garbage", "slow_device"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenarios_fit_the_demo(path: Path) -> None:
    sim = SimulatedCompound(load_layout(ROOT / "layouts" / "demo.yaml", CATALOG), catalog=CATALOG)
    scenario = load_scenario(path)
    assert scenario.steps and scenario.end >= max(s.at for s in scenario.steps)
    assert check_scenario(scenario, sim) == []


def test_fire_drill_content() -> None:
    s = load_scenario(ROOT / "scenarios" / "fire_drill.yaml")
    devices = [getattr(st, "device", None) for st in s.ordered()]
    assert devices.index("b3-f12-sd1") < devices.index("b3-f12-sd2") < devices.index("b3-fp")
    panel = next(st for st in s.ordered() if isinstance(st, SetPoint))
    assert panel.as_dict() == {"zone12.fire": True}


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\nsteps:\n  - {at: 1, action: smoke, device: d1}\n  - {at: -2, action: explode}\n"
                 "  - {at: 3, action: set, device: d1}\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(f, display="bad.yaml")
    text = str(err.value)
    assert "bad.yaml:4: steps[1]" in text and "explode" in text
    assert "bad.yaml:5: steps[2]" in text and "point + value or values" in text


def test_check_against_layout_finds_unknown_devices_and_points(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nsteps:\n  - {at: 1, action: set, device: b1-fp, point: zone99.fire, value: true}\n"
                 "  - {at: 2, action: silent, device: nope}\n")
    sim = SimulatedCompound(load_layout(ROOT / "layouts" / "mini.yaml", CATALOG), catalog=CATALOG)
    problems = check_scenario(load_scenario(f), sim)
    assert any("no point 'zone99.fire'" in p for p in problems)
    assert any("unknown device 'nope'" in p for p in problems)
