"""The backend's decision-side migrations (versions 100+), appended to ``cloud.db.migrate.MIGRATIONS``."""

from __future__ import annotations

from pathlib import Path

from cloud.db.migrate import MIGRATIONS, Migration

DECISION_MIGRATIONS: list[Migration] = [
    Migration(100, "users and audit log", Path("auth/migrations/100_auth.sql")),
    Migration(110, "alarms, timeline, incidents, suppression windows", Path("alarms/migrations/110_alarms.sql")),
    Migration(111, "one active alarm per device and key", Path("alarms/migrations/111_alarm_keys.sql")),
    Migration(120, "commands, work orders, roster, notifications", Path("dispatch/migrations/120_dispatch.sql")),
]


def all_migrations() -> list[Migration]:
    """Ingest's migrations followed by ours (without duplicates once the registry lists ours too)."""
    have = {m.version for m in MIGRATIONS}
    return list(MIGRATIONS) + [m for m in DECISION_MIGRATIONS if m.version not in have]
