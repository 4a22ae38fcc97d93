"""Dispatch test fixtures: extra pools for racing engines (db, pool, clock from tests/cloud/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool


@pytest.fixture
async def pool_factory() -> AsyncIterator[Any]:
    pools: list[AsyncConnectionPool[Any]] = []

    async def make(dsn: str) -> AsyncConnectionPool[Any]:
        p: AsyncConnectionPool[Any] = AsyncConnectionPool(dsn, min_size=1, max_size=4, open=False)
        await p.open(wait=True)
        pools.append(p)
        return p

    yield make
    for p in pools:
        await p.close()
