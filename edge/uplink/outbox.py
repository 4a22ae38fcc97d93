"""The gateway's store-and-forward outbox: a SQLite (WAL) queue with priority lanes.

Every uplink message is committed here before it is sent and deleted only after the broker's PUBACK
(see :mod:`edge.uplink.mqtt`). Guarantees (details and the kill -9 vs power-loss argument in
``docs/outbox.md``):

- ``put()`` returns only after its transaction committed. Lanes in ``OutboxConfig.fsync_lanes``
  (alarms and events by default) commit with ``synchronous=FULL`` (the WAL is fsynced: survives power
  loss); telemetry commits with ``synchronous=NORMAL`` (in the WAL, survives kill -9 of the process;
  a power cut may roll back the last telemetry commits).
- Past ``budget_bytes`` the oldest telemetry rows are dropped (then the new telemetry itself); alarms
  and events are never dropped, even past the budget.
- ``next_seq()`` hands out numbers from blocks reserved with an fsynced commit, so a number is never
  handed out twice, across restarts and kill -9 (a restart skips the rest of the last block).
- Row ids come from ``AUTOINCREMENT``: never reused, so within a lane a higher id is a younger row.
"""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from pydantic import Field

from contract.base import StrictModel
from contract.codec import KIND_FOR_MODEL, encode
from contract.messages import Message
from edge.uplink.lanes import LANE_PRIORITY, LANES, Lane, lane_for

log = logging.getLogger(__name__)

ROW_OVERHEAD_BYTES = 64
"""Added to each payload's length when accounting against the budget (row header, index entry)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    lane    INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    size    INTEGER NOT NULL,
    payload BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_lane_id ON outbox (lane, id);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class OutboxConfig(StrictModel):
    path: Path = Field(description="SQLite file (WAL mode); created with its folder if missing")
    budget_bytes: int = Field(default=256 * 2**20, gt=0, description="past it telemetry is dropped oldest-first")
    fsync_lanes: tuple[Lane, ...] = Field(
        default=("alarm", "event"), description="lanes whose commits are fsynced (synchronous=FULL)"
    )
    seq_block: int = Field(default=1000, ge=1, description="sequence numbers reserved per fsynced commit")
    busy_timeout_ms: int = Field(default=5000, ge=0)


class OutboxRow(NamedTuple):
    id: int
    lane: Lane
    kind: str
    """The contract topic kind (``telemetry``, ``event``, ``state``, ``health``, ``cmd/ack``)."""
    payload: bytes


class Outbox:
    """A durable, thread-safe priority queue of encoded uplink messages (synchronous; calls are fast)."""

    def __init__(self, config: OutboxConfig, gateway_id: str) -> None:
        self.config = config
        self.gateway_id = gateway_id
        self._lock = threading.Lock()
        config.path.parent.mkdir(parents=True, exist_ok=True)
        # One process per outbox file: two uplinks draining (and deleting from) one queue would be a bug.
        self._lock_file = open(config.path.with_name(config.path.name + ".lock"), "a+b")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise RuntimeError(f"outbox {config.path} is already open in another process") from None
        self._db = sqlite3.connect(config.path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={int(config.busy_timeout_ms)}")
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"outbox {config.path}: SQLite refused WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-16000")
        self._db.execute("PRAGMA journal_size_limit=67108864")
        self._db.executescript(_SCHEMA)
        self._sync_full = False
        self._fsync_lanes = frozenset(config.fsync_lanes)

        self._depth: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._bytes = 0
        self._max_id: dict[Lane, int] = dict.fromkeys(LANES, 0)
        for prio, count, size, max_id in self._db.execute(
            "SELECT lane, count(*), coalesce(sum(size), 0), max(id) FROM outbox GROUP BY lane"
        ):
            lane = LANES[prio]
            self._depth[lane] = count
            self._bytes += size
            self._max_id[lane] = max_id
        self._dropped = self._meta_get("dropped_telemetry_total")
        self._epoch = self._meta_get("epoch") or self._create_epoch()
        reserved = self._meta_get("seq_reserved")
        self._seq_next = reserved
        self._seq_limit = reserved
        log.info("outbox %s opened: depth %s, %d bytes, seq from %d", config.path, self._depth, self._bytes, reserved)

    # -- sequence numbers -------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """This outbox's boot epoch (ms since 1970 when its file was created), sent in every message: a new
        outbox (re-imaged gateway, new SD card) is a new epoch, and the backend orders by (epoch, seq)."""
        return self._epoch

    def _create_epoch(self) -> int:
        epoch = time.time_ns() // 1_000_000
        self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        return self._meta_get("epoch")

    def next_seq(self) -> int:
        """The next per-gateway sequence number: increasing, never handed out twice, even across kill -9."""
        with self._lock:
            if self._seq_next >= self._seq_limit:
                limit = self._seq_next + self.config.seq_block
                self._set_sync(True)
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._meta_set("seq_reserved", limit)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._seq_limit = limit
            seq = self._seq_next
            self._seq_next += 1
            return seq

    # -- writing ----------------------------------------------------------------------------------

    def put(self, message: Message) -> None:
        """Queue one message; durable when this returns (see the module docstring for what durable means)."""
        self.put_many((message,))

    def put_many(self, messages: Iterable[Message]) -> None:
        """Queue several messages in one transaction (one commit, so much faster than ``put`` in a loop)."""
        rows = [(lane_for(m), KIND_FOR_MODEL[type(m)].value, encode(m)) for m in messages]
        if rows:
            self.put_encoded(rows)

    def put_encoded(self, rows: Sequence[tuple[Lane, str, bytes]]) -> None:
        """Queue already-encoded ``(lane, topic kind, payload)`` rows in one transaction."""
        with self._lock:
            full = any(lane in self._fsync_lanes for lane, _, _ in rows)
            self._set_sync(full)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                depth = dict(self._depth)
                used = self._bytes
                max_id = dict(self._max_id)
                dropped = 0
                incoming = sum(len(p) + ROW_OVERHEAD_BYTES for _, _, p in rows)
                excess = used + incoming - self.config.budget_bytes
                if excess > 0:
                    freed, count = self._drop_oldest_telemetry(excess)
                    used -= freed
                    depth["telemetry"] -= count
                    dropped += count
                    excess -= freed
                cur = self._db.cursor()
                for lane, kind, payload in rows:
                    size = len(payload) + ROW_OVERHEAD_BYTES
                    if lane == "telemetry" and excess > 0:
                        # Nothing older is left to drop: the new telemetry itself goes, oldest first.
                        excess -= size
                        dropped += 1
                        continue
                    cur.execute(
                        "INSERT INTO outbox (lane, kind, size, payload) VALUES (?, ?, ?, ?)",
                        (LANE_PRIORITY[lane], kind, size, payload),
                    )
                    assert cur.lastrowid is not None
                    max_id[lane] = cur.lastrowid
                    depth[lane] += 1
                    used += size
                if dropped:
                    self._meta_set("dropped_telemetry_total", self._dropped + dropped)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth, self._bytes, self._max_id = depth, used, max_id
            if dropped:
                self._dropped += dropped
                log.warning(
                    "outbox over its budget of %d bytes: dropped %d oldest telemetry messages (%d in total)",
                    self.config.budget_bytes,
                    dropped,
                    self._dropped,
                )

    def _drop_oldest_telemetry(self, excess: int) -> tuple[int, int]:
        """Delete the oldest telemetry rows until ``excess`` bytes are freed (inside a transaction)."""
        freed = count = 0
        prio = LANE_PRIORITY["telemetry"]
        last_id = 0
        while freed < excess:
            batch = self._db.execute(
                "SELECT id, size FROM outbox WHERE lane = ? AND id > ? ORDER BY id LIMIT 1000", (prio, last_id)
            ).fetchall()
            if not batch:
                break
            for row_id, size in batch:
                last_id = row_id
                freed += size
                count += 1
                if freed >= excess:
                    break
        if count:
            self._db.execute("DELETE FROM outbox WHERE lane = ? AND id <= ?", (prio, last_id))
        return freed, count

    # -- reading and acknowledging (used by the uplink) -------------------------------------------

    def fetch(self, lane: Lane, after_id: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows of one lane with ids above ``after_id``, oldest first."""
        with self._lock:
            return [
                OutboxRow(row_id, lane, kind, payload)
                for row_id, kind, payload in self._db.execute(
                    "SELECT id, kind, payload FROM outbox WHERE lane = ? AND id > ? ORDER BY id LIMIT ?",
                    (LANE_PRIORITY[lane], after_id, limit),
                )
            ]

    def max_id(self, lane: Lane) -> int:
        """The highest row id ever committed in ``lane`` by this process (or found at open); 0 if none."""
        with self._lock:
            return self._max_id[lane]

    def delete(self, ids: Sequence[int]) -> int:
        """Delete acknowledged rows (ids already gone, e.g. dropped telemetry, are ignored); returns how many."""
        if not ids:
            return 0
        with self._lock:
            self._set_sync(False)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone: list[tuple[int, int]] = []
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    gone += self._db.execute(
                        f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING lane, size", tuple(chunk)
                    ).fetchall()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for prio, size in gone:
                self._depth[LANES[prio]] -= 1
                self._bytes -= size
            return len(gone)

    # -- getters ----------------------------------------------------------------------------------

    def depth(self) -> dict[Lane, int]:
        with self._lock:
            return dict(self._depth)

    def bytes_used(self) -> int:
        """Bytes accounted against the budget (payloads plus a fixed per-row overhead)."""
        with self._lock:
            return self._bytes

    def dropped_telemetry_total(self) -> int:
        """Telemetry messages dropped over the budget since the outbox file was created."""
        with self._lock:
            return self._dropped

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lock_file.close()  # releases the flock (the kernel also does on kill -9)

    # -- internals --------------------------------------------------------------------------------

    def _set_sync(self, full: bool) -> None:
        if full != self._sync_full:
            self._db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
            self._sync_full = full

    def _meta_get(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _meta_set(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
