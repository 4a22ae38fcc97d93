"""Database access shared by the backend's domains: config, connections and pools from a DSN.

Migrations live in :mod:`cloud.db.migrate`; each domain owns its SQL files.
"""

from __future__ import annotations

import logging
from typing import Literal

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool
from pydantic import Field

from contract.base import StrictModel

log = logging.getLogger(__name__)

Flavour = Literal["timescale", "native"]


class DatabaseConfig(StrictModel):
    """Where the database is and how telemetry is stored."""

    dsn: str = Field(default="postgresql://postgres@127.0.0.1:5432/xiaoqu", description="libpq connection string")
    flavour: Literal["auto", "timescale", "native"] = Field(
        default="auto",
        description="storage flavour chosen at migrate time: 'auto' uses TimescaleDB when the extension is available",
    )
    retention_days: int = Field(default=30, ge=1, description="raw telemetry kept this many days")
    rollup_retention_days: int = Field(default=400, ge=1, description="1-min/5-min/1-h rollups kept this many days")
    dedup_days: int = Field(default=7, ge=1, description="message ids remembered for idempotency this many days")
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=8, ge=1)


def connect(dsn: str, *, autocommit: bool = False, application_name: str = "xiaoqu") -> psycopg.Connection[TupleRow]:
    """One connection to the database at ``dsn``."""
    return psycopg.connect(dsn, autocommit=autocommit, application_name=application_name)


def pool(dsn: str, *, min_size: int = 1, max_size: int = 8, name: str = "xiaoqu") -> ConnectionPool:
    """A connection pool (opened, waiting for the first connection) for ``dsn``."""
    p = ConnectionPool(dsn, min_size=min_size, max_size=max_size, name=name, open=False,
                       kwargs={"application_name": name})
    p.open(wait=True)
    return p


__all__ = ["DatabaseConfig", "Flavour", "connect", "pool"]
