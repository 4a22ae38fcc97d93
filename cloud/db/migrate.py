"""Versioned schema migrations, applied in order, re-runnable.

The registry :data:`MIGRATIONS` is explicit and ordered. Each domain owns its SQL files
(``cloud/<domain>/migrations/NNN_name.sql``); a migration may have one file per storage flavour
(``timescale`` / ``native``) instead of one shared file. Applied versions are recorded in
``schema_migrations`` together with the flavour, which is chosen once (at the first migrate) and
kept afterwards.

Versions 1-99 belong to devices and ingest; 100+ to alarms, incidents, commands, work orders, users,
audit (append them to :data:`MIGRATIONS`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
from psycopg.rows import TupleRow

from cloud.db import DatabaseConfig, Flavour, connect

log = logging.getLogger(__name__)

CLOUD = Path(__file__).resolve().parent.parent
LOCK_KEY = 0x78715F6D  # advisory lock held while migrating ("xq_m")


class MigrationError(RuntimeError):
    """A migration could not be applied (the message names the version and the file)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path | None = None
    """The SQL file for both flavours (relative to ``cloud/``), or None when :attr:`variants` is used."""
    variants: dict[Flavour, Path] = field(default_factory=dict)
    """One SQL file per flavour (relative to ``cloud/``)."""
    transactional: bool = True

    def sql_path(self, flavour: Flavour) -> Path:
        rel = self.variants.get(flavour) or self.path
        if rel is None:
            raise MigrationError(f"migration {self.version} ({self.name}) has no SQL for flavour {flavour!r}")
        return CLOUD / rel

    def sql(self, flavour: Flavour) -> str:
        return self.sql_path(flavour).read_text(encoding="utf-8")


MIGRATIONS: list[Migration] = [
    Migration(1, "device registry", Path("devices/migrations/001_registry.sql")),
    Migration(5, "device presence (offline_since), gateway boot epoch", Path("devices/migrations/005_presence.sql")),
    Migration(10, "ingest messages, events, acks, dead letters", Path("ingest/migrations/010_messages.sql")),
    Migration(11, "event keys and locations", Path("ingest/migrations/011_event_keys.sql")),
    Migration(12, "probe results on command acks", Path("ingest/migrations/012_ack_probe.sql")),
    Migration(
        20,
        "telemetry and rollups",
        variants={
            "native": Path("ingest/migrations/020_telemetry.native.sql"),
            "timescale": Path("ingest/migrations/020_telemetry.timescale.sql"),
        },
    ),
    Migration(100, "users and audit log", Path("auth/migrations/100_auth.sql")),
    Migration(110, "alarms, timeline, incidents, suppression windows", Path("alarms/migrations/110_alarms.sql")),
    Migration(111, "one active alarm per device and key", Path("alarms/migrations/111_alarm_keys.sql")),
    Migration(120, "commands, work orders, roster, notifications", Path("dispatch/migrations/120_dispatch.sql")),
    Migration(125, "command outcomes: refused, late answers", Path("dispatch/migrations/125_command_outcomes.sql")),
    Migration(130, "gateway config versions", Path("gateways/migrations/130_gateway_config.sql")),
    Migration(160, "console: site time zone and layout, relayed changes", Path("web/migrations/160_console.sql")),
]


def plan(flavour: Flavour, migrations: list[Migration] | None = None) -> list[tuple[Migration, str]]:
    """The migrations in order with the SQL each runs for ``flavour`` (also used by the tests)."""
    items = MIGRATIONS if migrations is None else migrations
    versions = [m.version for m in items]
    if versions != sorted(set(versions)):
        raise MigrationError(f"migration versions must be unique and increasing, got {versions}")
    return [(m, m.sql(flavour)) for m in items]


_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    flavour    text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def timescale_available(conn: psycopg.Connection[TupleRow]) -> bool:
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def stored_flavour(conn: psycopg.Connection[TupleRow]) -> Flavour | None:
    """The flavour the database was migrated with, or None if it never was."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("SELECT flavour FROM schema_migrations ORDER BY version LIMIT 1").fetchone()
    if row is None:
        return None
    value = str(row[0])
    if value not in ("timescale", "native"):
        raise MigrationError(f"schema_migrations records an unknown flavour {value!r}")
    return value  # type: ignore[return-value]


def _resolve(conn: psycopg.Connection[TupleRow], wanted: Literal["auto", "timescale", "native"]) -> Flavour:
    existing = stored_flavour(conn)
    if existing is not None:
        if wanted != "auto" and wanted != existing:
            raise MigrationError(
                f"the database was migrated with the {existing!r} flavour; it cannot be switched to {wanted!r}"
            )
        return existing
    if wanted == "auto":
        return "timescale" if timescale_available(conn) else "native"
    if wanted == "timescale" and not timescale_available(conn):
        raise MigrationError("flavour 'timescale' asked for, but the timescaledb extension is not available")
    return wanted


@dataclass(frozen=True)
class MigrateResult:
    flavour: Flavour
    applied: list[int]
    already: list[int]


def migrate(config: DatabaseConfig, migrations: list[Migration] | None = None) -> MigrateResult:
    """Apply every migration not yet applied, in order; safe to run again and from several processes."""
    with connect(config.dsn, autocommit=True, application_name="xiaoqu-migrate") as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            return _migrate_locked(conn, config, migrations)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _migrate_locked(
    conn: psycopg.Connection[TupleRow], config: DatabaseConfig, migrations: list[Migration] | None
) -> MigrateResult:
    conn.execute(_BOOTSTRAP)
    flavour = _resolve(conn, config.flavour)
    done = {int(v): str(c) for v, c in conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()}
    applied: list[int] = []
    already: list[int] = []
    for migration, sql in plan(flavour, migrations):
        checksum = hashlib.sha256(sql.encode()).hexdigest()
        if migration.version in done:
            already.append(migration.version)
            if done[migration.version] != checksum:
                log.warning(
                    "migration %d (%s) changed since it was applied; edit by adding a new migration instead",
                    migration.version,
                    migration.name,
                )
            continue
        where = f"migration {migration.version} ({migration.name}, {migration.sql_path(flavour)})"
        log.info("applying %s [%s]", where, flavour)
        try:
            if migration.transactional:
                with conn.transaction():
                    conn.execute(sql.encode())
                    _record(conn, migration, flavour, checksum)
            else:
                conn.execute(sql.encode())
                _record(conn, migration, flavour, checksum)
        except psycopg.Error as exc:
            raise MigrationError(f"{where} failed: {exc}") from exc
        applied.append(migration.version)
    return MigrateResult(flavour=flavour, applied=applied, already=already)


def _record(conn: psycopg.Connection[TupleRow], migration: Migration, flavour: Flavour, checksum: str) -> None:
    conn.execute(
        "INSERT INTO schema_migrations (version, name, flavour, checksum) VALUES (%s, %s, %s, %s)",
        (migration.version, migration.name, flavour, checksum),
    )
