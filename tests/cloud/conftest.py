"""Fixtures shared by the backend tests: a migrated, seeded database, a pool, a fake clock, the rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from cloud.alarms.rules import Rules, load_rules
from cloud.alarms.testkit import migrate_all, seed
from contract.clock import FakeClock


@pytest.fixture
def db(pg_dsn: str) -> str:
    migrate_all(pg_dsn)
    seed(pg_dsn)
    return pg_dsn


@pytest.fixture
async def pool(db: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    p: AsyncConnectionPool[Any] = AsyncConnectionPool(db, min_size=1, max_size=4, open=False)
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))


@pytest.fixture
def rules() -> Rules:
    return load_rules()
