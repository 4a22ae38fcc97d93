"""Shared helpers of the cloud benchmarks: a throw-away database, a private Mosquitto, output."""

from __future__ import annotations

import json
import socket
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
