"""Shared helpers of the cloud benchmarks: a throw-away database, a private Mosquitto, a private PostgreSQL
cluster that can be restarted, output."""

from __future__ import annotations

import json
import socket
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_database(admin_dsn: str = ADMIN_DSN) -> Iterator[str]:
    name = f"xq_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_dsn)
    params["dbname"] = name
    try:
        yield make_conninfo(**params)  # type: ignore[arg-type]
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def private_mosquitto() -> Iterator[int]:
    """A Mosquitto of our own on a free port, with unbounded queues (the system one is shared)."""
    from simulators.broker import MosquittoProcess

    broker = MosquittoProcess(persistence=False, extra=["max_queued_messages 0", "max_inflight_messages 100"])
    broker.start()
    try:
        yield broker.port
    finally:
        broker.cleanup()


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def emit(result: dict[str, Any]) -> None:
    """The benchmark's single JSON object, always the last line."""
    print(json.dumps(result, sort_keys=True))


class PrivatePostgres:
    """A throw-away PostgreSQL cluster of our own (initdb in ``workdir``, a free loopback port) that a
    benchmark may stop and start again — the shared server cannot be restarted. Uses the machine's
    server binaries (Debian's ``/usr/lib/postgresql/<version>/bin``); as root it runs as ``postgres``."""

    def __init__(self, workdir: Path) -> None:
        import glob
        import os
        import pwd
        import shutil

        def binary(name: str) -> str:
            found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                          reverse=True)), None)
            if found is None:
                raise RuntimeError(f"no PostgreSQL server binary {name!r} (apt-get install postgresql)")
            return found

        self.initdb, self.pg_ctl = binary("initdb"), binary("pg_ctl")
        self.workdir = workdir
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(workdir, pw.pw_uid, pw.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        import subprocess

        done = subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.data), *args], capture_output=True,
                              check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")

    def init(self) -> None:
        import subprocess

        subprocess.run([*self.run_as, self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off"
        self._ctl("-o", opts, "-l", str(self.workdir / "postgres.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")
