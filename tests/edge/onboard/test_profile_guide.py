"""The profile guide (docs/profile-modbus.md) end to end: its example profile, added to the shipped catalog
from its own folder, probes a real pymodbus server that holds the pressure as a word-swapped (CDAB) float32.
The right word order passes with the right value at its precision; the wrong one fails with the reason;
the event the guide writes carries the pressure reading that raised it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from edge_agent_helpers import FakeClock, FakeOutbox, ModbusTestServer

from device_profiles import CompiledProfile, load_catalog, load_profile
from device_profiles.modbus_codec import registers_from_raw
from edge.onboard import probe_modbus
from edge.rules import DeviceRules, Emitter, TelemetryBatcher

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "profile-modbus.md"
EXAMPLE_DIR = ROOT / "docs" / "examples" / "profiles"
EXAMPLE = EXAMPLE_DIR / "acme-hp30.yaml"
UNIT = 7


def _registers(pressure_mpa: float) -> list[int]:
    """The transmitter's holding registers 40001-40011 as the vendor table describes them."""
    regs = [0] * 11
    # 40001-40002: FLOAT32, CDAB — the low word first. What the device really sends, built by hand from the
    # IEEE 754 big-endian words (AB CD) so the test does not trust the codec it checks.
    ab_cd = registers_from_raw(pressure_mpa, "float32")  # [AB, CD]
    regs[0:2] = [ab_cd[1], ab_cd[0]]  # CD AB
    regs[2] = (1 << 1) | (9 << 12)  # status: low pressure flag, signal quality 9
    regs[3] = 123  # 12.3 °C
    regs[4] = 2400  # 24.00 V
    regs[10] = 150  # low alarm threshold, kPa
    return regs


def _wrong_word_order(tmp_path: Path) -> Path:
    """The guide's profile as a first draft that took the vendor's "high word first" literally."""
    folder = tmp_path / "draft"
    folder.mkdir()
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "  word_order: little" in text
    (folder / "acme-hp30.yaml").write_text(text.replace("  word_order: little", "  word_order: big"), encoding="utf-8")
    return folder


def test_the_guide_uses_the_example_file() -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    assert "docs/examples/profiles/acme-hp30.yaml" in guide
    # The profile the guide shows is the file the test runs (no drift between the page and the file).
    body = EXAMPLE.read_text(encoding="utf-8").split("points:", 1)[1]
    for line in body.splitlines()[:12]:
        if line.strip() and not line.strip().startswith("#"):
            assert line in guide, f"the guide's profile differs from {EXAMPLE.name}: {line!r}"


async def test_right_word_order_passes_wrong_one_fails_with_the_reason(tmp_path: Path) -> None:
    catalog = load_catalog([EXAMPLE_DIR])  # added to the shipped profiles, not instead of them
    assert {"acme-hp30", "acme-em200", "gst-fp200"} <= set(catalog.ids())
    profile = catalog.get("acme-hp30")
    async with ModbusTestServer(free_port(), {UNIT: {"hr": _registers(0.35)}}) as server:
        report = await probe_modbus(profile, "127.0.0.1", server.port, UNIT)
        assert report.ok, [f"{r.name}: {r.error}" for r in report.failed]
        got = {r.name: r for r in report.results}
        assert got["pressure"].value == pytest.approx(0.35, abs=1e-6)
        assert got["pressure"].shown == "0.35"  # not 0.3499999940395355
        assert got["status.low_pressure"].value is True and got["status.sensor_fault"].value is False
        assert got["status.signal"].value == 9
        assert got["water_temperature"].shown == "12.3"
        assert got["supply_voltage"].shown == "24.00"
        assert got["low_alarm_threshold"].value == 150
        assert report.requests == 1  # 40001-40011 in one read (gap 40006-40010 bridged)

        wrong = load_profile(_wrong_word_order(tmp_path) / "acme-hp30.yaml")
        report = await probe_modbus(wrong, "127.0.0.1", server.port, UNIT)
    assert not report.ok
    (failed,) = report.failed  # only the float is affected: the status bits still decode
    assert failed.name == "pressure"
    assert failed.error == "4.17e-08 is below the plausible minimum 0.01 — check word_order/byte_order/scale"


async def test_the_low_pressure_event_carries_the_reading(tmp_path: Path) -> None:
    """Decoded from the server like the gateway's poll, then the profile's event: detail.pressure = 0.12."""
    profile = load_catalog([EXAMPLE_DIR]).get("acme-hp30")
    async with ModbusTestServer(free_port(), {UNIT: {"hr": _registers(0.12)}}) as server:
        report = await probe_modbus(profile, "127.0.0.1", server.port, UNIT)
    values = {r.name: r.value for r in report.results}
    assert values["pressure"] != 0.12  # float32: 0.11999999731779099
    clock, outbox = FakeClock(), FakeOutbox()
    emitter = Emitter(outbox, "gw1")
    rules = DeviceRules("hp-b3-1", CompiledProfile(profile), emitter, TelemetryBatcher(emitter, clock), clock)
    rules.ingest(values)
    clock.advance(11)  # for: 10
    rules.evaluate()
    (raised,) = outbox.events("hydrant.low_pressure")
    assert raised.active and raised.detail == {"pressure": 0.12}


@pytest.fixture
def server_in_thread() -> Iterator[int]:
    """The transmitter in a background thread, for the CLI run as a subprocess."""
    loop = asyncio.new_event_loop()
    holder: list[ModbusTestServer] = []
    ready = threading.Event()

    async def start() -> None:
        holder.append(await ModbusTestServer(free_port(), {UNIT: {"hr": _registers(0.35)}}).__aenter__())

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(10)
    yield holder[0].port
    asyncio.run_coroutine_threadsafe(holder[0].__aexit__(None, None, None), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)


def test_the_guides_commands(server_in_thread: int, tmp_path: Path) -> None:
    """What the guide tells the installer to run, as they would run it (output piped, not a terminal)."""
    def xiaoqu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xiaoqu", *args], capture_output=True, text=True, timeout=60,
                              cwd=ROOT)

    assert xiaoqu("profile", "validate", "docs/examples/profiles").returncode == 0
    shown = xiaoqu("profile", "show", "acme-hp30", "--profiles", "docs/examples/profiles")
    assert shown.returncode == 0, shown.stderr
    assert "word_order little" in shown.stdout and "bits 12-15 of holding 2" in shown.stdout
    target = f"127.0.0.1:{server_in_thread}"
    ok = xiaoqu("onboard", "probe", "--profile", "acme-hp30", "--profiles", "docs/examples/profiles",
                "--modbus", target, "--unit", str(UNIT))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "9/9 points read in 1 request(s): all passed" in ok.stdout
    row = next(line for line in ok.stdout.splitlines() if " pressure " in line)
    assert "0.35" in row and "MPa" in row
    bad = xiaoqu("onboard", "probe", "--profile", "acme-hp30", "--profiles", str(_wrong_word_order(tmp_path)),
                 "--modbus", target, "--unit", str(UNIT))
    assert bad.returncode == 1
    reason = "4.17e-08 is below the plausible minimum 0.01 — check word_order/byte_order/scale"
    row = next(line for line in bad.stdout.splitlines() if " pressure " in line and "│" in line)
    assert "FAIL" in row and reason in row  # the table row is not cut at 80 columns
    assert f"FAIL pressure (holding 0): {reason}" in bad.stdout
