"""The generated gateway config maps each fire-panel zone to its floor (zone n = floor n in the layouts)."""

from __future__ import annotations

from pathlib import Path

from device_profiles.loader import load_catalog
from edge.config import load_config
from simulators.gateway_config import build_gateway_config, write_gateway_config
from simulators.layout import load_layout

ROOT = Path(__file__).resolve().parents[2] / "simulators"


def test_demo_panel_zone_12_is_floor_12_of_b3(tmp_path: Path) -> None:
    catalog = load_catalog()
    layout = load_layout(ROOT / "layouts" / "demo.yaml", catalog)
    modbus = {d.id: {"host": "127.0.0.1", "port": 15020, "unit": 1} for d in layout.devices
              if d.protocol == "modbus_tcp"}
    data = build_gateway_config(layout, catalog, "b3-gw", {"modbus": modbus})
    out = tmp_path / "b3-gw.yaml"
    write_gateway_config(data, out)
    assert "    12:\n      floor: 12\n" in out.read_text(encoding="utf-8")
    config, _ = load_config(out)
    panel = config.device("b3-fp")
    assert panel is not None and panel.location.floor == 1  # the panel hangs in the fire control room …
    assert panel.zones is not None and len(panel.zones) == 18  # … its 18 wired zones are the 18 floors
    zone12 = panel.zone_locations()[12]
    assert (zone12.building, zone12.floor) == ("b3", 12)
    # nothing but fire panels get a zone map
    assert [d.id for d in config.devices if d.zones] == ["b3-fp"]
