"""The stateful events the gateway has raised and not yet cleared, kept across restarts.

Rules state lives in memory; without this file a gateway restarted while a zone is in alarm starts with
every event inactive and would never send the clear (the backend keeps one active alarm per device and key).
The emitter records a raise *before* the event goes into the outbox and forgets it *after* the clear went in,
so a crash in between errs towards one clear too many (harmless), never towards an alarm left up. On start
each device's rules are seeded from here (``DeviceRules.restore``); see docs/edge.md, "Restarts".

A small SQLite file beside the outbox (WAL, ``synchronous=FULL``: survives kill -9 and power loss).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from contract.messages import Location, Severity

logger = logging.getLogger(__name__)

FILE_NAME = "active_events.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS active_events (
    device      TEXT NOT NULL,
    key         TEXT NOT NULL,
    event       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    life_safety INTEGER NOT NULL,
    location    TEXT,             -- contract Location as JSON, NULL: the device's own
    PRIMARY KEY (device, key)
);
"""


@dataclass(frozen=True, slots=True)
class ActiveEvent:
    """One raised, not yet cleared event: what a clear sent on the gateway's behalf needs."""

    device: str
    key: str
    event: str
    severity: Severity
    life_safety: bool
    location: Location | None = None


class ActiveEventStore:
    """Thread-safe; every call is one committed (fsynced) statement."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def raised(self, ev: ActiveEvent) -> None:
        loc = ev.location.model_dump_json() if ev.location is not None else None
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO active_events (device, key, event, severity, life_safety, location) "
                "VALUES (?, ?, ?, ?, ?, ?)", (ev.device, ev.key, ev.event, ev.severity, int(ev.life_safety), loc),
            )

    def cleared(self, device: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM active_events WHERE device = ? AND key = ?", (device, key))

    def active(self, device: str | None = None) -> list[ActiveEvent]:
        """The active events (of one device), oldest device/key first."""
        sql = "SELECT device, key, event, severity, life_safety, location FROM active_events"
        args: tuple[str, ...] = ()
        if device is not None:
            sql, args = sql + " WHERE device = ?", (device,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY device, key", args).fetchall()
        out: list[ActiveEvent] = []
        for dev, key, event, severity, life_safety, loc in rows:
            location: Location | None = None
            if loc is not None:
                try:
                    location = Location.model_validate(json.loads(loc))
                except ValueError as exc:  # an unreadable place must not keep the clear from going out
                    logger.warning("%s: %s/%s: stored location unreadable (%s); the clear goes without it",
                                   self.path, dev, key, exc)
            out.append(ActiveEvent(dev, key, event, severity, bool(life_safety), location))
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()
