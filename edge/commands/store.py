"""Command ids seen recently, with their outcome, in a small SQLite table: a duplicate delivery (QoS 1
redelivery, a backend retry, a restart) re-sends the stored ack and never executes twice."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands_seen (
    id       TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    status   TEXT NOT NULL,
    reason   TEXT,
    seen_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_seen_at ON commands_seen (seen_at);
"""


@dataclass(frozen=True, slots=True)
class SeenCommand:
    id: str
    device: str
    status: str
    reason: str | None


class SeenStore:
    def __init__(self, path: Path, keep: int = 10_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def get(self, command_id: str) -> SeenCommand | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, device, status, reason FROM commands_seen WHERE id = ?", (command_id,)
            ).fetchone()
        return SeenCommand(*row) if row else None

    def record(self, command_id: str, device: str, status: str, reason: str | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO commands_seen (id, device, status, reason, seen_at) VALUES (?, ?, ?, ?, ?)",
                (command_id, device, status, reason, time.time()),
            )
            self._db.execute(
                "DELETE FROM commands_seen WHERE id IN (SELECT id FROM commands_seen ORDER BY seen_at DESC "
                "LIMIT -1 OFFSET ?)", (self.keep,),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
