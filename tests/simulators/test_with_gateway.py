"""The simulated compound drives the real gateway agent (``xiaoqu edge run``) with the config
``gateway-config`` writes: two smoke detectors on one floor → the gateway's local linkage releases the
doors (the door firmware answers the command) and recalls the lifts (Modbus writes the elevators obey)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_profiles.loader import load_catalog
from simulators.compound import SimulatedCompound
from simulators.gateway_config import build_gateway_config, write_gateway_config
from simulators.layout import load_layout

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog()


async def test_fire_on_one_floor_releases_doors_and_recalls_lifts(tmp_path: Path, site_id: str) -> None:
    layout = load_layout(ROOT / "simulators" / "layouts" / "mini.yaml", CATALOG).with_id_prefix(f"{site_id}-")
    p = f"{site_id}-"
    async with SimulatedCompound(layout, catalog=CATALOG, cameras=False, uplink_proxy=True) as sim:
        config = tmp_path / "gw.yaml"
        write_gateway_config(build_gateway_config(layout, CATALOG, f"{p}b1-gw", sim.port_map()), config)
        log = (tmp_path / "edge.log").open("w")
        edge = subprocess.Popen([sys.executable, "-c", "from xiaoqu.cli import main; main()", "edge", "run",
                                 "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            sim.device(f"{p}b1-el1").set("car.floor", 3)
            sim.mqtt_device(f"{p}b1-f2-sd1").set_obscuration(6.0)
            sim.mqtt_device(f"{p}b1-f2-sd2").set_obscuration(7.0)
            door, el1, el2 = sim.mqtt_device(f"{p}b1-door"), sim.device(f"{p}b1-el1"), sim.device(f"{p}b1-el2")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and edge.poll() is None:
                if (door.state["mode"] == "released" and el1.get("service.mode") == "fire_service"
                        and el2.get("service.mode") == "fire_service"):
                    break
                await asyncio.sleep(0.2)
            assert edge.poll() is None, (tmp_path / "edge.log").read_text()[-3000:]
            assert door.state["mode"] == "released" and door.unlocked
            assert el1.get("car.floor") == 1 and el1.get("door.state") == "open" and el1.get("car.at_base_floor")
            assert el2.get("service.mode") == "fire_service"
            assert sim.device(f"{p}b1-fp").requests_served > 0  # the gateway polls the panel
        finally:
            edge.terminate()
            edge.wait(15)
            log.close()
