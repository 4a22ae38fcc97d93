"""Test helpers for process ownership: a process's descendants from /proc, whether they are still alive,
and a child whose output is read as it comes (so a test can wait for a line)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


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


def descendants(root: int) -> list[Proc]:
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


def alive(p: Proc) -> bool:
    st = _stat(p.pid)
    return st is not None and st[2] == p.start and st[0] not in ("Z", "X")  # a zombie has ended


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def left_running(procs: list[Proc], wait_s: float = 60) -> list[str]:
    """Those of ``procs`` still alive after up to ``wait_s`` (which only avoids a hang); they are then
    SIGKILLed so a failing test leaves nothing behind."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(alive(p) for p in procs):
        time.sleep(0.2)
    left = [f"{p.pid}: {p.cmdline}" for p in procs if alive(p)]
    for p in procs:
        if alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    return left


class Child:
    """A command in a session of its own (so only what the test sends reaches it), output read as it comes."""

    def __init__(self, args: list[str], **popen: Any) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env={**os.environ, "COLUMNS": "200"}, **popen)
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
                pytest.fail(f"{self.proc.args} exited ({self.proc.returncode}) before {pattern!r}:\n{self.output}")
            time.sleep(0.2)
        pytest.fail(f"no {pattern!r} from {self.proc.args} within {timeout:g}s:\n{self.output}")

    def finish(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
