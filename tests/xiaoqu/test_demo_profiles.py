"""``xiaoqu demo --profiles DIR --layout FILE``: an installer's own device type in the whole loop.

The profile is one nobody here has seen (a copy of the vendor gas detector under a new id, with its own
event type and label); the layout places one such device in a building. The real demo — embedded Mosquitto
and PostgreSQL, migrate, ingest, serve, the simulator replaying the profile's own examples, the gateway —
runs as a child process; the test reads the API as a property manager would: the device is listed with its
profile and place, its telemetry arrives typed, and its life-safety alarm is raised. Then Ctrl-C (SIGINT to
the demo alone) ends the open-ended run normally, with the summary, and nothing of it is left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from proc_tree import Child, descendants, left_running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DEVICE = "lpg-1801"
RISER = "b3-hydrant-riser"

LAYOUT = f"""\
site: {{id: mine, name: My compound}}
gateways: [{{id: my-gw}}]
buildings: [{{id: B3, name: 3号楼, floors: 20, gateway: my-gw}}]
devices:
  - {{id: {DEVICE}, profile: acme-lpg9, building: B3, floor: 18, unit: "1801", location: kitchen,
     replay: {{period_s: 2}}}}
  - {{id: {RISER}, profile: acme-hp30, building: B3, floor: -1, location: 水泵房, modbus: {{unit: 7}},
     replay: {{steps: [{{example: "riser drained, the transmitter's own low-pressure bit set", hold_s: 40}},
                      {{example: charged riser, hold_s: 20}}]}}}}
"""


def _custom_profile(folder: Path) -> None:
    """The shipped vendor gas detector as somebody else's device: new id, vendor, event type and label."""
    text = (REPO / "device_profiles" / "gas_detector" / "tianlan-gv40.yaml").read_text(encoding="utf-8")
    text = (text.replace("id: tianlan-gv40", "id: acme-lpg9").replace("vendor: Tianlan IoT", "vendor: Acme")
            .replace("gas.alarm", "lpg.leak").replace("燃气泄漏报警", "液化气泄漏"))
    folder.mkdir()
    (folder / "acme-lpg9.yaml").write_text(text, encoding="utf-8")
    # and the Modbus guide's transmitter with the register examples the guide (§8) adds to it
    guide = (REPO / "docs" / "profile-modbus.md").read_text(encoding="utf-8")
    section = guide[guide.index("## 8. Run the demo with your own profile"):]
    examples = section.split("```yaml")[1].split("\n", 1)[1].split("```")[0]
    hp30 = (REPO / "docs" / "examples" / "profiles" / "acme-hp30.yaml").read_text(encoding="utf-8")
    (folder / "acme-hp30.yaml").write_text(hp30 + examples, encoding="utf-8")


@pytest.fixture
def work() -> Iterator[Path]:
    """The demo's work folder, where (as root) the embedded database's ``postgres`` user can reach it."""
    path = Path(tempfile.mkdtemp(prefix="xq-profiles-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _poll(what: str, fn: Callable[[], Any], demo: Child, timeout: float = 120) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        assert demo.proc.poll() is None, f"the demo ended before {what}:\n{demo.output}"
        time.sleep(1)
    pytest.fail(f"no {what} within {timeout:g}s:\n{demo.output}")


def test_the_demo_runs_your_own_profile_and_device(tmp_path: Path, work: Path) -> None:
    profiles = tmp_path / "my-profiles"
    _custom_profile(profiles)
    layout = tmp_path / "my-layout.yaml"
    layout.write_text(LAYOUT, encoding="utf-8")
    config = tmp_path / "demo.yaml"
    config.write_text(f"startup_delay_s: 0\nlinger_s: 0\nworkdir: {work}\ndatabase_name: xiaoqu_profiles\n",
                      encoding="utf-8")
    demo = Child([sys.executable, "-m", "xiaoqu", "demo", "--config", str(config), "--profiles", str(profiles),
                  "--layout", str(layout)], cwd=tmp_path)
    procs: list[Any] = []
    try:
        up = demo.wait_for(r"backend up: (http://127\.0\.0\.1:\d+)/api/docs — log in as manager / (\S+)")
        api, password = up.group(1), up.group(2)
        demo.wait_for(r"gateway\(s\) started; no scenario")
        procs = descendants(demo.proc.pid)
        assert "replaying their profiles' samples: lpg-1801 (acme-lpg9), b3-hydrant-riser (acme-hp30)" in demo.output
        with httpx.Client(base_url=api, timeout=10) as http:
            token = http.post("/api/auth/token", data={"username": "manager", "password": password}).json()
            http.headers["Authorization"] = f"Bearer {token['access_token']}"

            def device() -> dict[str, Any] | None:
                rows = http.get("/api/devices", params={"site_id": "mine"}).json()
                return next((d for d in rows if d["id"] == DEVICE), None)

            dev = _poll("the device in the backend", device, demo)
            assert (dev["profile_id"], dev["gateway_id"], dev["building"], dev["floor"], dev["unit"]) == (
                "acme-lpg9", "my-gw", "B3", 18, "1801")

            def telemetry() -> dict[str, Any]:
                rows = http.get(f"/api/telemetry/{DEVICE}/latest").json()
                wanted = {"gas.concentration", "valve.state", "rssi_dbm"}  # the error sample has no rssi
                return {r["point"]: r for r in rows} if wanted <= {r["point"] for r in rows} else {}

            points = _poll("telemetry of the device", telemetry, demo)
            # typed as the profile says: a number from the vendor's string, a state from its enum map
            gas = points["gas.concentration"]
            assert gas["value"] in (3.5, 31.0) or (gas["value"], gas["quality"]) == (None, "bad"), gas
            assert points["valve.state"]["value_text"] in ("open", "closed", "fault")
            assert points["rssi_dbm"]["value"] in (-67, -69)

            def leak() -> dict[str, Any] | None:
                rows: list[dict[str, Any]] = []
                for active in ("true", "false"):
                    rows += http.get("/api/alarms", params={"active": active, "limit": 100}).json()
                return next((a for a in rows if a["type"] == "lpg.leak" and a["device_id"] == DEVICE), None)

            alarm = _poll("the device's leak alarm", leak, demo)
            assert (alarm["severity"], alarm["building"], alarm["floor"]) == ("critical", "B3", 18)
            # the console names it by your profile's label (the backend loaded your folder)
            labels = http.get("/api/labels").json()
            assert labels["event_types"]["lpg.leak"]["label"] == "液化气泄漏"
            assert "acme-lpg9" in labels["profiles"] and "acme-hp30" in labels["profiles"]

            # the Modbus transmitter: its pymodbus server holds the examples' register blocks, polled via the profile
            def pressure() -> dict[str, Any] | None:
                rows = http.get(f"/api/telemetry/{RISER}/latest").json()
                return next((r for r in rows if r["point"] == "pressure"), None)

            assert _poll("the transmitter's pressure", pressure, demo)["value"] in (0.0625, 0.375)

            def low_pressure() -> dict[str, Any] | None:
                rows: list[dict[str, Any]] = []
                for active in ("true", "false"):
                    rows += http.get("/api/alarms", params={"active": active, "limit": 100}).json()
                return next((a for a in rows if a["type"] == "hydrant.low_pressure" and a["device_id"] == RISER), None)

            assert _poll("the transmitter's low-pressure alarm", low_pressure, demo)["floor"] == -1
        os.kill(demo.proc.pid, signal.SIGINT)  # Ctrl-C, to the demo alone (its children have their own sessions)
        code = demo.finish()
    finally:
        if demo.proc.poll() is None:  # a failed check: stop it the same way
            os.kill(demo.proc.pid, signal.SIGINT)
            demo.finish()
        left = left_running(procs)
    assert not left, "still running:\n" + "\n".join(left) + f"\ndemo output:\n{demo.output}"
    assert code == 0, demo.output  # the open-ended run's normal end
    assert "Ctrl-C: the summary, then everything stops" in demo.output
    assert "lpg.leak" in demo.output  # live, and in the summary table
    assert not (work / "pgdata" / "postmaster.pid").exists(), "the embedded database's data dir is locked"
