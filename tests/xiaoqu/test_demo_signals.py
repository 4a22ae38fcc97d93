"""``xiaoqu demo`` owns what it starts: a signal to its own pid (not its group) leaves nothing of it running.

The real demo (embedded Mosquitto and PostgreSQL, migrate, ingest, serve, the mini compound's simulator
and gateway) runs as a child process; once its gateway is started, the test records every descendant,
signals the demo's pid alone — SIGINT, SIGTERM, SIGHUP as ``kill`` or a closed SSH session would, or
SIGKILL — and then finds none of those processes alive, the embedded database's data directory unlocked
(no ``postmaster.pid``) and its ports free.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from proc_tree import Child, Proc, descendants, left_running, listening

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

# Long enough that the demo is still playing it when the signal comes.
SCENARIO = """\
name: long quiet drill
duration: 600
steps:
  - {at: 300, action: smoke, device: b1-f2-sd1, alarm: true, obscuration: 6.0}
"""


class Demo(Child):
    """``python -m xiaoqu demo`` with a long scenario on the mini compound, in a work folder of the test's."""

    def __init__(self, tmp: Path, work: Path) -> None:
        scenario = tmp / "scenario.yaml"
        scenario.write_text(SCENARIO, encoding="utf-8")
        self.work = work
        config = tmp / "demo.yaml"
        config.write_text(
            f"layout: {REPO / 'simulators' / 'layouts' / 'mini.yaml'}\n"
            f"scenario: {scenario}\nstartup_delay_s: 0\nlinger_s: 0\n"
            f"workdir: {self.work}\ndatabase_name: xiaoqu_signals\n",
            encoding="utf-8",
        )
        super().__init__([sys.executable, "-m", "xiaoqu", "demo", "--config", str(config)], cwd=REPO)


@pytest.fixture
def work() -> Iterator[Path]:
    """The demo's work folder, where (as root) the embedded database's ``postgres`` user can reach it."""
    path = Path(tempfile.mkdtemp(prefix="xq-signals-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _running_demo(tmp_path: Path, work: Path) -> tuple[Demo, list[Proc], list[int]]:
    """A demo with everything up; its descendants and the ports of its broker and database."""
    demo = Demo(tmp_path, work)
    ports = [int(demo.wait_for(r"embedded Mosquitto: mqtt://127\.0\.0\.1:(\d+)").group(1)),
             int(demo.wait_for(r"embedded PostgreSQL: postgresql://postgres@127\.0\.0\.1:(\d+)").group(1))]
    demo.wait_for(r"gateway\(s\) started")
    procs = descendants(demo.proc.pid)
    commands = " | ".join(p.cmdline for p in procs)
    for part in ("mosquitto", "postgres -D", "cloud ingest", "cloud serve", "sim run", "edge run"):
        assert part in commands, f"{part!r} is not among the demo's processes: {commands}"
    return demo, procs, ports


def _assert_all_gone(demo: Demo, procs: list[Proc], ports: list[int]) -> None:
    left = left_running(procs)
    assert not left, "still running:\n" + "\n".join(left) + f"\ndemo output:\n{demo.output}"
    assert not (demo.work / "pgdata" / "postmaster.pid").exists(), "the embedded database's data dir is locked"
    assert not any(listening(port) for port in ports), f"the broker or database still listens: {ports}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_to_the_demo_stops_everything_it_started(tmp_path: Path, work: Path, sig: signal.Signals) -> None:
    demo, procs, ports = _running_demo(tmp_path, work)
    try:
        os.kill(demo.proc.pid, sig)  # the pid alone, as `kill` sends it: not the process group
        code = demo.finish()
    finally:
        _assert_all_gone(demo, procs, ports)
    assert code == 128 + sig, demo.output  # SIGINT too: the drill was cut short before its verdict
    assert f"stopped by {sig.name}" in demo.output
    assert "stopping gateways and simulator" in demo.output
    order = [demo.output.index(s) for s in ("stopping gateways and simulator", "stopping backend",
                                            "stopping the embedded broker and database")]
    assert order == sorted(order), demo.output


def test_children_stop_when_the_demo_is_killed(tmp_path: Path, work: Path) -> None:
    demo, procs, ports = _running_demo(tmp_path, work)
    os.kill(demo.proc.pid, signal.SIGKILL)  # nothing of the demo's own code runs: the kernel tells the children
    demo.finish()
    _assert_all_gone(demo, procs, ports)
