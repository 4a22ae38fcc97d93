"""Embedded defaults for ``xiaoqu demo``: a private Mosquitto and a private PostgreSQL when none is named.

Both run on free loopback ports with their data in a temporary folder and stop with the demo. They use
the machine's installed server binaries (Debian's ``mosquitto`` and ``postgresql`` packages); nothing is
downloaded.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xiaoqu import processes

logger = logging.getLogger(__name__)


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started; the message says what to install or configure."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[str]:
    """A Mosquitto on a free loopback port; yields its URL."""
    from simulators.broker import MosquittoProcess

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise EmbeddedServiceError("no broker configured and no mosquitto binary found (apt-get install mosquitto)")
    data = workdir / "mqtt"
    data.mkdir(exist_ok=True)
    broker = MosquittoProcess(persistence=True, extra=["max_queued_messages 100000"], workdir=data)
    try:  # stopped however the block ends, a signal in the middle of the start included
        try:
            broker.start()
        except RuntimeError as exc:
            raise EmbeddedServiceError(f"embedded Mosquitto: {exc}") from None
        logger.info("embedded Mosquitto on 127.0.0.1:%d", broker.port)
        yield broker.url
    finally:
        broker.cleanup()


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise EmbeddedServiceError(
            f"no database configured and no PostgreSQL server binaries ({name}) found (apt-get install postgresql)"
        )
    return candidates[0]


@contextlib.contextmanager
def postgres(workdir: Path, *, grace_s: float = 20.0) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port; yields its DSN.

    The postmaster runs in the foreground as our child (not daemonised by ``pg_ctl``), so it is ours to
    stop: SIGINT (a fast shutdown) when the block ends, and the same signal from the kernel if this
    process dies, even by SIGKILL — the data directory is never left locked by an orphan. PostgreSQL
    refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """
    initdb, postgres_bin = _pg_bin("initdb"), _pg_bin("postgres")
    data = workdir / "pgdata"
    port = free_port()
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise EmbeddedServiceError("running as root needs a 'postgres' user for the embedded database") from None
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    made = processes.run([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
                         capture_output=True, cwd=workdir, timeout=120, **as_user)
    if made.returncode != 0:
        raise EmbeddedServiceError(f"initdb failed: {made.stderr.decode(errors='replace').strip()}")
    logfile = workdir / "postgres.log"
    with logfile.open("ab") as log:
        proc = processes.spawn(
            [postgres_bin, "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
             "-k", str(workdir), "-c", "fsync=off"],
            death_signal=signal.SIGINT, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, **as_user,
        )
    try:
        _wait_ready(data, proc, 60, logfile)
        logger.info("embedded PostgreSQL on 127.0.0.1:%d (pid %d)", port, proc.pid)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        processes.stop([proc], sig=signal.SIGINT, grace_s=grace_s, group=True)


def _wait_ready(data: Path, proc: subprocess.Popen[Any], deadline_s: float, logfile: Path) -> None:
    """Until the postmaster says "ready" in postmaster.pid (as ``pg_ctl -w`` does)."""
    pidfile = data / "postmaster.pid"
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise EmbeddedServiceError(f"embedded PostgreSQL exited with code {proc.returncode}; {logfile}:\n{tail}")
        with contextlib.suppress(OSError):
            lines = pidfile.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        time.sleep(0.1)
    raise EmbeddedServiceError(f"embedded PostgreSQL was not ready within {deadline_s:g}s; see {logfile}")


@contextlib.contextmanager
def workdir(prefix: str = "xiaoqu-demo-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
