"""The installer probe against a real pymodbus server started by the test, and through the real CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from conftest import free_port
from edge_agent_helpers import ModbusTestServer

from device_profiles import load_catalog
from device_profiles.modbus_codec import registers_from_raw
from edge.onboard import probe_modbus

pytestmark = pytest.mark.integration


def _elevator_registers() -> list[int]:
    regs = [0] * 11
    regs[0] = 7  # floor 7
    regs[1] = 2  # down
    regs[2] = 2  # doors open
    regs[3] = 2  # fire service
    regs[4] = 0b1011  # occupied, door zone, at base
    regs[5] = (1 << 7) | (1 << 13)  # trapped between floors, emergency call
    regs[6:8] = registers_from_raw(1.75, "float32")
    regs[8] = 80
    regs[9:11] = registers_from_raw(123456, "uint32")
    return regs


def Server(input_regs: list[int], input_size: int | None = None) -> ModbusTestServer:
    """A pymodbus server with one device (unit 3) whose input registers are ``input_regs``."""
    return ModbusTestServer(free_port(), {3: {"ir": input_regs}}, size=input_size or len(input_regs))


@pytest.fixture
async def elevator_server() -> AsyncIterator[ModbusTestServer]:
    async with Server(_elevator_registers()) as s:
        yield s


async def test_probe_decodes_every_elevator_point(elevator_server: ModbusTestServer) -> None:
    profile = load_catalog().get("acme-em200")
    report = await probe_modbus(profile, "127.0.0.1", elevator_server.port, unit=3)
    assert report.ok, [str(r) for r in report.failed]
    got = {r.name: r.value for r in report.results}
    assert got["car.floor"] == 7
    assert got["car.direction"] == "down"
    assert got["door.state"] == "open"
    assert got["service.mode"] == "fire_service"
    assert got["car.occupied"] is True
    assert got["car.running"] is False
    assert got["fault.trapped_between_floors"] is True
    assert got["fault.trapped_at_floor"] is False
    assert got["fault.emergency_call"] is True
    assert got["car.speed"] == 1.75
    assert got["car.load"] == 80
    assert got["car.run_count"] == 123456
    assert report.requests == 1


async def test_probe_names_the_failing_points() -> None:
    """A device whose register map is shorter than the profile: the probe says which points fail and why."""
    profile = load_catalog().get("acme-em200")
    async with Server(_elevator_registers(), input_size=6) as s:
        report = await probe_modbus(profile, "127.0.0.1", s.port, unit=3)
    assert not report.ok
    failed = {r.name: r.error for r in report.failed}
    assert set(failed) == {"car.speed", "car.load", "car.run_count"}
    assert all("illegal data address" in (e or "") for e in failed.values())
    assert {r.name for r in report.results if r.ok} >= {"car.floor", "fault.trapped_between_floors"}


async def test_probe_wrong_unit_and_no_device() -> None:
    profile = load_catalog().get("acme-em200")
    report = await probe_modbus(profile, "127.0.0.1", free_port(), unit=3, timeout_s=0.5)
    assert report.connect_error is not None
    assert "cannot connect" in report.connect_error


def test_cli_probe_pass_and_fail(elevator_server_sync: int) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "xiaoqu", "onboard", "probe", "--profile", "acme-em200",
         "--modbus", f"127.0.0.1:{elevator_server_sync}", "--unit", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "27/27 points read in 1 request(s): all passed" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "xiaoqu", "onboard", "probe", "--profile", "gst-fp200",
         "--modbus", f"127.0.0.1:{elevator_server_sync}", "--unit", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 1
    assert "illegal data address" in bad.stdout
    unknown = subprocess.run(
        [sys.executable, "-m", "xiaoqu", "onboard", "probe", "--profile", "nope", "--modbus", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=60,
    )
    assert unknown.returncode == 2
    assert "unknown profile 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


@pytest.fixture
def elevator_server_sync():
    """The elevator server in a background thread, for tests that run the CLI as a subprocess."""
    import threading

    loop = asyncio.new_event_loop()
    holder: list[ModbusTestServer] = []
    ready = threading.Event()

    async def start() -> None:
        holder.append(await Server(_elevator_registers()).__aenter__())

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    server = holder[0]
    yield server.port
    asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


async def test_probe_reads_a_simulated_fire_panel_and_elevator() -> None:
    """The simulators generate their register maps from the same profiles; the probe reads them back."""
    from simulators.modbus import ModbusDeviceServer

    catalog = load_catalog()
    async with ModbusDeviceServer(catalog.get("gst-fp200"), unit=2) as panel:
        panel.set("zone12.fire", True)
        panel.set("panel.main_power_fault", True)
        panel.set("panel.backup_voltage", 26.4)
        host, port, unit = panel.endpoint
        report = await probe_modbus(catalog.get("gst-fp200"), host, port, unit)
    assert report.ok, [f"{r.name}: {r.error}" for r in report.failed]
    got = {r.name: r.value for r in report.results}
    assert got["zone12.fire"] is True
    assert got["zone11.fire"] is False
    assert got["panel.main_power_fault"] is True
    assert got["panel.backup_voltage"] == pytest.approx(26.4)
    assert report.requests == 2  # system words + the zone table: two contiguous blocks

    async with ModbusDeviceServer(catalog.get("acme-em200"), unit=1) as lift:
        lift.set("car.floor", -2)
        lift.set("fault.trapped_between_floors", True)
        lift.set("car.speed", 0.0)
        host, port, unit = lift.endpoint
        report = await probe_modbus(catalog.get("acme-em200"), host, port, unit)
    assert report.ok, [f"{r.name}: {r.error}" for r in report.failed]
    got = {r.name: r.value for r in report.results}
    assert got["car.floor"] == -2
    assert got["fault.trapped_between_floors"] is True
    assert got["fault.overspeed"] is False
