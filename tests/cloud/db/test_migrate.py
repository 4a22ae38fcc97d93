"""Migrations: ordered, recorded, re-runnable; the flavour is chosen once."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from cloud.db import DatabaseConfig
from cloud.db.migrate import MIGRATIONS, Migration, MigrationError, migrate, plan, stored_flavour

pytestmark = pytest.mark.integration

TABLES = {
    "sites",
    "grids",
    "gateways",
    "devices",
    "telemetry",
    "telemetry_1m",
    "telemetry_5m",
    "telemetry_1h",
    "ingested_messages",
    "events",
    "command_acks",
    "dead_letters",
}


def test_registry_is_ordered_and_every_file_exists() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions))
    for flavour in ("native", "timescale"):
        for migration, sql in plan(flavour):
            assert sql.strip(), migration


def test_migrate_is_rerunnable_and_keeps_the_flavour(pg_dsn: str) -> None:
    db = DatabaseConfig(dsn=pg_dsn)  # auto: no timescaledb on this server → native
    first = migrate(db)
    assert first.flavour == "native" and first.applied == [m.version for m in MIGRATIONS]
    again = migrate(db)
    assert again.applied == [] and again.already == first.applied
    with psycopg.connect(pg_dsn) as conn:
        names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert names >= TABLES
        assert stored_flavour(conn) == "native"
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(MIGRATIONS),)
    with pytest.raises(MigrationError, match="cannot be switched"):
        migrate(db.model_copy(update={"flavour": "timescale"}))


def test_timescale_refused_when_extension_missing(pg_dsn: str) -> None:
    with pytest.raises(MigrationError, match="not available"):
        migrate(DatabaseConfig(dsn=pg_dsn, flavour="timescale"))


def test_failed_migration_names_file_and_is_not_recorded(pg_dsn: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE ok_table (id int); SELECT no_such_function();")
    extra = [*MIGRATIONS, Migration(MIGRATIONS[-1].version + 1000, "broken", bad)]
    with pytest.raises(MigrationError, match=r"migration \d+ \(broken"):
        migrate(DatabaseConfig(dsn=pg_dsn), extra)
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (MIGRATIONS[-1].version,)
        assert conn.execute("SELECT to_regclass('ok_table')").fetchone() == (None,)
