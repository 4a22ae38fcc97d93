"""Layout files: the shipped compounds expand as documented; mistakes are reported as file:line: field."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from device_profiles.loader import load_catalog
from simulators.layout import LayoutError, load_layout

LAYOUTS = Path(__file__).resolve().parents[2] / "simulators" / "layouts"
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CATALOG = load_catalog()


def test_demo_compound() -> None:
    lay = load_layout(LAYOUTS / "demo.yaml", CATALOG)
    by_profile = Counter(d.profile for d in lay.devices)
    assert len(lay.buildings) == 6 and all(b.floors == 18 for b in lay.buildings)
    assert by_profile == {"gst-fp200": 6, "acme-em200": 12, "acme-dc100": 6 * 19, "acme-sd10": 6 * 36,
                          "generic-ipc-analytics": 2, "generic-ipc-elevator": 12}
    assert len(lay.devices) >= 300
    assert all(ID.match(d.id) for d in lay.devices)
    assert sorted(lay.gateways) == [f"b{i}-gw" for i in range(1, 7)]
    assert all(d.gateway is not None for d in lay.devices)
    served = {d.id for d in lay.served_by("b3-gw")}
    assert served >= {"b3-fp", "b3-el1", "b3-el2", "b3-door", "b3-f12-sd1", "b3-f12-sd2"}
    # the fire panel has its own port, the two lifts share one Modbus TCP gateway port (units 1 and 2)
    assert lay.device("b3-fp").bus is None and lay.device("b3-fp").params["zones"] == 18
    assert lay.buses["b3-lift-bus"].units == {1: "b3-el1", 2: "b3-el2"}
    assert lay.device("b3-f12-sd1").floor == 12 and lay.device("b3-f12-sd1").location == "F12 corridor east"
    assert lay.device("b3-el2-cam").source is not None and lay.device("b3-el2-cam").params["watches"] == "b3-el2"


def test_mini_and_prefix() -> None:
    lay = load_layout(LAYOUTS / "mini.yaml", CATALOG)
    assert len(lay.buildings) == 1 and lay.buildings[0].floors == 3
    p = lay.with_id_prefix("t1-")
    assert p.device("t1-b1-el2").bus == "t1-b1-lift-bus" and p.buses["t1-b1-lift-bus"].units[2] == "t1-b1-el2"
    assert p.id_prefix == "t1-" and set(p.gateways) == {"t1-b1-gw"}


BAD = """\
site: {id: s1}
buildings:
  - id: b1
    floors: 3
    gateway: g1
    buses: [{id: bus1}]
    devices:
      - {id: fp, profile: gst-fp999}
      - {id: el1, profile: acme-em200, modbus: {bus: bus2, unit: 1}}
      - {id: el2, profile: acme-em200, modbus: {bus: bus1, unit: 1}}
      - {id: el3, profile: acme-em200, modbus: {bus: bus1, unit: 1}}
      - {id: "d{floor}", profile: acme-dc100, per_floor: {first: 1}}
      - {id: d2, profile: acme-dc100}
      - {id: sd, profile: acme-sd10, modbus: {unit: 3}}
      - {id: cam, profile: generic-ipc-analytics}
"""


def test_semantic_errors_name_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    with pytest.raises(LayoutError) as err:
        load_layout(f, CATALOG, display="bad.yaml")
    text = str(err.value)
    assert "bad.yaml:8: buildings[0].devices[0].profile: unknown profile 'gst-fp999'" in text
    assert "bad.yaml:9: buildings[0].devices[1].modbus.bus: unknown bus 'bus2'" in text
    assert "bad.yaml:11: buildings[0].devices[3].modbus.unit: unit 1 on bus bus1 is already el2" in text
    assert "bad.yaml:13: buildings[0].devices[5].id: device id 'd2' is already used" in text
    assert "bad.yaml:14: buildings[0].devices[6].modbus: profile acme-sd10 speaks mqtt, not Modbus" in text
    assert "bad.yaml:15: buildings[0].devices[7]: a camera needs a source" in text


def test_schema_errors_name_file_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("site: {id: s1}\nbuildings:\n  - id: b1\n    floors: 0\n    colour: red\n")
    with pytest.raises(LayoutError) as err:
        load_layout(f, CATALOG, display="bad.yaml")
    text = str(err.value)
    assert "bad.yaml:4: buildings[0].floors:" in text
    assert "bad.yaml:5: buildings[0].colour: unknown key" in text
    f.write_text("site: {id: s1}\nbuildings: [\n")
    with pytest.raises(LayoutError, match=r"bad.yaml:\d+: YAML syntax"):
        load_layout(f, CATALOG, display="bad.yaml")
