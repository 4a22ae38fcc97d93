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
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started; the message says what to install or configure."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, deadline_s: float, proc: subprocess.Popen[bytes], what: str) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise EmbeddedServiceError(f"{what} exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise EmbeddedServiceError(f"{what} did not listen on 127.0.0.1:{port} within {deadline_s:g}s")


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[str]:
    """A Mosquitto on a free loopback port; yields its URL."""
    from simulators.broker import MosquittoProcess

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise EmbeddedServiceError("no broker configured and no mosquitto binary found (apt-get install mosquitto)")
    data = workdir / "mqtt"
    data.mkdir(exist_ok=True)
    broker = MosquittoProcess(persistence=True, extra=["max_queued_messages 100000"], workdir=data)
    try:
        broker.start()
    except RuntimeError as exc:
        raise EmbeddedServiceError(f"embedded Mosquitto: {exc}") from None
    try:
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
def postgres(workdir: Path) -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port; yields its DSN.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    data = workdir / "pgdata"
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise EmbeddedServiceError("running as root needs a 'postgres' user for the embedded database") from None
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True,
    )
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {workdir} -c fsync=off"
    logfile = workdir / "postgres.log"
    started = subprocess.run([*run_as, pg_ctl, "-D", str(data), "-o", opts, "-l", str(logfile), "-w", "start"],
                             capture_output=True, check=False)
    if started.returncode != 0:
        raise EmbeddedServiceError(f"embedded PostgreSQL did not start: {started.stderr.decode(errors='replace')}")
    try:
        logger.info("embedded PostgreSQL on 127.0.0.1:%d", port)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, check=False)


@contextlib.contextmanager
def workdir(prefix: str = "xiaoqu-demo-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
