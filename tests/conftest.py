"""Fixtures shared by the whole suite: the real broker and database, and per-test ids.

Integration fixtures *fail* (never skip) when a service is missing: a missing broker or database
is a broken test environment, not a reason to pass.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mqtt_recorder import Recorder

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Broker:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mqtt_broker() -> Broker:
    """The Mosquitto at XQ_TEST_MQTT (default 127.0.0.1:1883)."""
    host, _, port = os.environ.get("XQ_TEST_MQTT", "127.0.0.1:1883").partition(":")
    broker = Broker(host, int(port or 1883))
    if not _reachable(broker.host, broker.port):
        pytest.fail(
            f"Mosquitto is not reachable at {broker.host}:{broker.port}; start it with "
            "'mosquitto -d -c /etc/mosquitto/mosquitto.conf'"
        )
    return broker


PG_ADMIN_DSN = os.environ.get("XQ_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_server() -> str:
    """Admin DSN of the PostgreSQL server used by the tests."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}")
    return PG_ADMIN_DSN


def _create_database(admin_dsn: str) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"xq_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin_dsn)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


def _drop_database(admin_dsn: str, dsn: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    dsn = _create_database(pg_server)
    try:
        yield dsn
    finally:
        _drop_database(pg_server, dsn)


@pytest.fixture(scope="session")
def pg_session_dsn(pg_server: str) -> Iterator[str]:
    """A fresh database shared by a whole test session (for read-mostly tests)."""
    dsn = _create_database(pg_server)
    try:
        yield dsn
    finally:
        _drop_database(pg_server, dsn)


@pytest.fixture
def site_id() -> str:
    """A site id no other test uses, so MQTT traffic of parallel runs never mixes."""
    return f"t{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def mqtt_recorder(mqtt_broker: Broker) -> Iterator[Callable[..., Recorder]]:
    """Make recorders subscribed to topics on the test broker (closed after the test)."""
    made: list[Recorder] = []

    def make(topics: list[str], url: str | None = None) -> Recorder:
        r = Recorder(url or mqtt_broker.url, topics)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()



async def until(cond: Callable[[], Any], what: str, timeout: float = 45.0) -> Any:
    """Wait (polling every 0.1 s) until ``cond()`` is truthy and return it; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of one query on a fresh connection."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()
