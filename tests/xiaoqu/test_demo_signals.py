"""``xiaoqu demo`` owns what it starts: a signal to its own pid (not its group) leaves nothing of it running.

The real demo (embedded Mosquitto and PostgreSQL, migrate, ingest, serve, the mini compound's simulator
and gateway) runs as a child process; once its gateway is started, the test records every descendant,
signals the demo's pid alone — SIGINT, SIGTERM, SIGHUP as ``kill`` or a closed SSH session would, or
SIGKILL — and then finds none of those processes alive, the embedded database's data directory unlocked
(no ``postmaster.pid``) and its ports free.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

# Long enough that the demo is still playing it when the signal comes.
SCENARIO = """\
name: long quiet drill
duration: 600
steps:
  - {at: 300, action: smoke, device: b1-f2-sd1, alarm: true, obscuration: 6.0}
"""


@dataclass(frozen=True)
class Proc:
    pid: int
    start: str  # start time in clock ticks: tells a reused pid apart
    cmdline: str


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, ppid, start time) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), fields[19]


def _descendants(root: int) -> list[Proc]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parents.setdefault(st[1], []).append(int(entry.name))
    found: list[Proc] = []
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        st = _stat(pid)
        if st is None:
            continue
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(Proc(pid, st[2], cmd))
        todo += parents.get(pid, [])
    return found


def _alive(p: Proc) -> bool:
    st = _stat(p.pid)
    return st is not None and st[2] == p.start and st[0] not in ("Z", "X")  # a zombie has ended


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


class Demo:
    """``python -m xiaoqu demo`` in a session of its own, its output read as it comes."""

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
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xiaoqu", "demo", "--config", str(config)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 240) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"the demo exited ({self.proc.returncode}) before {pattern!r}:\n{self.output}")
            time.sleep(0.2)
        pytest.fail(f"no {pattern!r} from the demo within {timeout:g}s:\n{self.output}")


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
    procs = _descendants(demo.proc.pid)
    commands = " | ".join(p.cmdline for p in procs)
    for part in ("mosquitto", "postgres -D", "cloud ingest", "cloud serve", "sim run", "edge run"):
        assert part in commands, f"{part!r} is not among the demo's processes: {commands}"
    return demo, procs, ports


def _assert_all_gone(demo: Demo, procs: list[Proc], ports: list[int]) -> None:
    deadline = time.monotonic() + 60  # the children stop in order, each stage bounded; this only avoids a hang
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.2)
    left = [f"{p.pid}: {p.cmdline}" for p in procs if _alive(p)]
    for p in procs:  # never leave them behind, even when the test fails
        if _alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    assert not left, "still running:\n" + "\n".join(left) + f"\ndemo output:\n{demo.output}"
    assert not (demo.work / "pgdata" / "postmaster.pid").exists(), "the embedded database's data dir is locked"
    assert not any(_listening(port) for port in ports), f"the broker or database still listens: {ports}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_to_the_demo_stops_everything_it_started(tmp_path: Path, work: Path, sig: signal.Signals) -> None:
    demo, procs, ports = _running_demo(tmp_path, work)
    try:
        os.kill(demo.proc.pid, sig)  # the pid alone, as `kill` sends it: not the process group
        code = demo.proc.wait(timeout=120)
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
    demo.proc.wait(timeout=30)
    _assert_all_gone(demo, procs, ports)
