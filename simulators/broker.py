"""A Mosquitto process the simulation starts, stops and restarts (the broker-restart fault)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from xiaoqu.processes import spawn

logger = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MosquittoProcess:
    """``mosquitto -c conf`` on 127.0.0.1:``port`` (a free port by default), anonymous, optionally persistent.

    The one way the project starts a broker of its own: the simulator's broker-restart fault, the demo's
    embedded default, benchmarks and fault tests. ``extra`` adds config lines (e.g. ``max_queued_messages 0``).
    Logging is off (startup errors still reach stderr, which is read only when the broker fails to start).
    """

    host = "127.0.0.1"

    def __init__(self, port: int = 0, *, persistence: bool = True, binary: str = "mosquitto",
                 extra: list[str] | None = None, workdir: Path | None = None) -> None:
        self.port = port or _free_port()
        found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin")
        self.binary = found or binary
        self._own_dir = workdir is None
        self._dir = workdir or Path(tempfile.mkdtemp(prefix="xq-mosquitto-"))
        self.conf = self._dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "log_dest none"]
        if os.geteuid() == 0:
            # Started by root, mosquitto drops to the 'mosquitto' user, which cannot write into our folder.
            lines.append("user root")
        if persistence:
            lines += ["persistence true", f"persistence_location {self._dir}/", "autosave_interval 1"]
        lines += extra or []
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        # Ours: in a session of its own (a terminal's Ctrl-C reaches the owner, which stops it in order),
        # and SIGTERMed by the kernel if the owner dies, even by SIGKILL.
        self._proc = spawn([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    logger.info("mosquitto up on :%d (pid %d)", self.port, self._proc.pid)
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on :{self.port} within {timeout}s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None
        logger.info("mosquitto on :%d stopped", self.port)

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def kill(self) -> None:
        """SIGKILL (a crash: nothing is saved); resumes a paused broker first."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
            self._proc.kill()
            self._proc.wait(timeout=5)
        if self._proc is not None and self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP: the broker holds its connections but answers nothing."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)
