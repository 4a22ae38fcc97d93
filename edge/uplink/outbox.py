"""The gateway's store-and-forward outbox: a SQLite (WAL) queue with priority lanes.

Every uplink message is committed here before it is sent. Telemetry, health and state rows are deleted
after the broker's PUBACK; rows the backend receipts (``contract.topics.RECEIPTED_KINDS``: events, so the
whole alarm lane, and command acks) are only *marked* on PUBACK — ``awaiting`` a receipt, with a re-send
time — and deleted when a ``Receipt`` from the backend names their message id (see :mod:`edge.uplink.mqtt`).
Guarantees (details and the kill -9 vs power-loss argument in ``docs/outbox.md``):

- ``put()`` returns only after its transaction committed. Lanes in ``OutboxConfig.fsync_lanes``
  (alarms and events by default) commit with ``synchronous=FULL`` (the WAL is fsynced: survives power
  loss); telemetry commits with ``synchronous=NORMAL`` (in the WAL, survives kill -9 of the process;
  a power cut may roll back the last telemetry commits).
- Past ``budget_bytes`` the oldest telemetry rows are dropped (then the new telemetry itself); alarms
  and events are never dropped, even past the budget.
- ``next_seq()`` hands out numbers from blocks reserved with an fsynced commit, so a number is never
  handed out twice, across restarts and kill -9 (a restart skips the rest of the last block).
- Row ids come from ``AUTOINCREMENT``: never reused, so within a lane a higher id is a younger row.
- Receipt state (``awaiting``, ``attempts``, ``next_try``) is in the same table, so it survives restarts and
  kill -9; an outbox file of an older version gains the columns when opened.
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
from contract.topics import RECEIPTED_KINDS
from edge.uplink.lanes import LANE_PRIORITY, LANES, Lane, lane_for

log = logging.getLogger(__name__)

ROW_OVERHEAD_BYTES = 64
"""Added to each payload's length when accounting against the budget (row header, index entry)."""

RECEIPTED: frozenset[str] = frozenset(k.value for k in RECEIPTED_KINDS)
"""Topic kinds whose rows carry their message id (``msg_id``) so a ``Receipt`` can find them."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    lane     INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    size     INTEGER NOT NULL,
    payload  BLOB    NOT NULL,
    msg_id   TEXT,                       -- message id of receipted kinds (event, cmd/ack); NULL otherwise
    awaiting INTEGER NOT NULL DEFAULT 0, -- 1: the broker acknowledged it; kept until a Receipt names msg_id
    attempts INTEGER NOT NULL DEFAULT 0, -- times the broker acknowledged it
    sent_at  REAL,                       -- awaiting rows: when the broker last acknowledged it (unix time)
    next_try REAL                        -- awaiting rows: when to send it again (unix time)
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_COLUMNS = {
    "msg_id": "ALTER TABLE outbox ADD COLUMN msg_id TEXT",
    "awaiting": "ALTER TABLE outbox ADD COLUMN awaiting INTEGER NOT NULL DEFAULT 0",
    "attempts": "ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    "sent_at": "ALTER TABLE outbox ADD COLUMN sent_at REAL",
    "next_try": "ALTER TABLE outbox ADD COLUMN next_try REAL",
}
"""Columns added since the first outbox version, with how to add them to an existing file."""

_INDEXES = """
DROP INDEX IF EXISTS outbox_lane_id;
CREATE INDEX IF NOT EXISTS outbox_lane_awaiting_id ON outbox (lane, awaiting, id);
CREATE INDEX IF NOT EXISTS outbox_msg_id ON outbox (msg_id) WHERE msg_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_next_try ON outbox (next_try) WHERE awaiting = 1;
"""


class OutboxConfig(StrictModel):
    path: Path = Field(description="SQLite file (WAL mode); created with its folder if missing")
    budget_bytes: int = Field(default=256 * 2**20, gt=0, description="past it telemetry is dropped oldest-first")
    fsync_lanes: tuple[Lane, ...] = Field(
        default=("alarm", "event"), description="lanes whose commits are fsynced (synchronous=FULL)"
    )
    seq_block: int = Field(default=1000, ge=1, description="sequence numbers reserved per fsynced commit")
    busy_timeout_ms: int = Field(default=5000, ge=0)


_Gone = tuple[int, int, int, int, str, str | None]
"""A deleted row: id, lane priority, size, awaiting, kind, message id."""


class OutboxRow(NamedTuple):
    id: int
    lane: Lane
    kind: str
    """The contract topic kind (``telemetry``, ``event``, ``state``, ``health``, ``cmd/ack``)."""
    payload: bytes
    msg_id: str | None = None
    """The message id, for rows of receipted kinds (``event``, ``cmd/ack``)."""


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
        self._upgrade()
        self._sync_full = False
        self._fsync_lanes = frozenset(config.fsync_lanes)

        self._depth: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._awaiting: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._bytes = 0
        self._max_id: dict[Lane, int] = dict.fromkeys(LANES, 0)
        for prio, count, size, max_id, awaiting in self._db.execute(
            "SELECT lane, count(*), coalesce(sum(size), 0), max(id), coalesce(sum(awaiting), 0) "
            "FROM outbox GROUP BY lane"
        ):
            lane = LANES[prio]
            self._depth[lane] = count
            self._awaiting[lane] = awaiting
            self._bytes += size
            self._max_id[lane] = max_id
        self._dropped = self._meta_get("dropped_telemetry_total")
        self._epoch = self._meta_get("epoch") or self._create_epoch()
        reserved = self._meta_get("seq_reserved")
        self._seq_next = reserved
        self._seq_limit = reserved
        log.info(
            "outbox %s opened: depth %s (awaiting a receipt: %s), %d bytes, seq from %d",
            config.path, self._depth, self._awaiting, self._bytes, reserved,
        )

    def _upgrade(self) -> None:
        """Bring an outbox file of an older version up to this schema (columns, indexes, message ids)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
        missing = [sql for name, sql in _COLUMNS.items() if name not in have]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql in missing:
                self._db.execute(sql)
            if missing:
                marks = ",".join("?" * len(RECEIPTED))
                filled = self._db.execute(
                    f"UPDATE outbox SET msg_id = json_extract(CAST(payload AS TEXT), '$.id') "
                    f"WHERE msg_id IS NULL AND kind IN ({marks})",
                    tuple(sorted(RECEIPTED)),
                ).rowcount
                log.info("outbox %s upgraded: added %d column(s), %d message id(s)", self.config.path,
                         len(missing), filled)
            for statement in _INDEXES.strip().split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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
        rows = []
        for m in messages:
            kind = KIND_FOR_MODEL[type(m)].value
            rows.append((lane_for(m), kind, encode(m), str(m.id) if kind in RECEIPTED else None))
        if rows:
            self.put_encoded(rows)

    def put_encoded(self, rows: Sequence[tuple[Lane, str, bytes, str | None]]) -> None:
        """Queue already-encoded ``(lane, topic kind, payload, message id)`` rows in one transaction.

        The message id is needed for rows of receipted kinds (``event``, ``cmd/ack``): a ``Receipt`` names it.
        """
        with self._lock:
            full = any(lane in self._fsync_lanes for lane, _, _, _ in rows)
            self._set_sync(full)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                depth = dict(self._depth)
                used = self._bytes
                max_id = dict(self._max_id)
                dropped = 0
                incoming = sum(len(p) + ROW_OVERHEAD_BYTES for _, _, p, _ in rows)
                excess = used + incoming - self.config.budget_bytes
                if excess > 0:
                    freed, count = self._drop_oldest_telemetry(excess)
                    used -= freed
                    depth["telemetry"] -= count
                    dropped += count
                    excess -= freed
                cur = self._db.cursor()
                for lane, kind, payload, msg_id in rows:
                    size = len(payload) + ROW_OVERHEAD_BYTES
                    if lane == "telemetry" and excess > 0:
                        # Nothing older is left to drop: the new telemetry itself goes, oldest first.
                        excess -= size
                        dropped += 1
                        continue
                    if msg_id is None:
                        cur.execute(
                            "INSERT INTO outbox (lane, kind, size, payload) VALUES (?, ?, ?, ?)",
                            (LANE_PRIORITY[lane], kind, size, payload),
                        )
                    else:
                        cur.execute(
                            "INSERT INTO outbox (lane, kind, size, payload, msg_id) VALUES (?, ?, ?, ?, ?)",
                            (LANE_PRIORITY[lane], kind, size, payload, msg_id),
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
                "SELECT id, size FROM outbox WHERE lane = ? AND awaiting = 0 AND id > ? ORDER BY id LIMIT 1000",
                (prio, last_id),
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
            self._db.execute("DELETE FROM outbox WHERE lane = ? AND awaiting = 0 AND id <= ?", (prio, last_id))
        return freed, count

    # -- reading and acknowledging (used by the uplink) -------------------------------------------

    def fetch(self, lane: Lane, after_id: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` not yet acknowledged rows of one lane with ids above ``after_id``, oldest first
        (rows awaiting a receipt are not returned: :meth:`claim_due` hands them out again when due)."""
        with self._lock:
            return [
                OutboxRow(row_id, lane, kind, payload, msg_id)
                for row_id, kind, payload, msg_id in self._db.execute(
                    "SELECT id, kind, payload, msg_id FROM outbox WHERE lane = ? AND awaiting = 0 AND id > ? "
                    "ORDER BY id LIMIT ?",
                    (LANE_PRIORITY[lane], after_id, limit),
                )
            ]

    def max_id(self, lane: Lane) -> int:
        """The highest row id ever committed in ``lane`` by this process (or found at open); 0 if none."""
        with self._lock:
            return self._max_id[lane]

    def delete(self, ids: Sequence[int]) -> int:
        """Delete acknowledged rows (ids already gone, e.g. dropped telemetry, are ignored); returns how many."""
        return self.settle(ids, ())

    def settle(
        self,
        delete: Sequence[int],
        awaiting: Sequence[int],
        *,
        now: float | None = None,
        first_s: float = 10.0,
        max_s: float = 60.0,
    ) -> int:
        """Record PUBACKs in one transaction: delete the rows in ``delete``; mark the rows in ``awaiting``
        as waiting for a receipt, to be sent again ``first_s`` after their first PUBACK, doubling per
        attempt up to ``max_s``. Ids already gone (receipted meanwhile, dropped) are ignored.
        Returns how many rows were deleted."""
        if not delete and not awaiting:
            return 0
        now = time.time() if now is None else now
        with self._lock:
            self._set_sync(False)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._delete_where("id", delete)
                flipped: list[int] = []
                for chunk in _chunks(awaiting):
                    marks = ",".join("?" * len(chunk))
                    # Backoff from the attempts so far: first_s, 2*first_s, 4*first_s, ... capped at max_s.
                    self._db.execute(
                        f"UPDATE outbox SET attempts = attempts + 1, sent_at = ?, "
                        f"next_try = ? + min(?, ? * (1 << min(attempts, 20))) WHERE id IN ({marks}) AND awaiting = 1",
                        (now, now, max_s, first_s, *chunk),
                    )
                    flipped += [
                        prio
                        for (prio,) in self._db.execute(
                            f"UPDATE outbox SET awaiting = 1, attempts = attempts + 1, sent_at = ?, "
                            f"next_try = ? + min(?, ?) WHERE id IN ({marks}) AND awaiting = 0 RETURNING lane",
                            (now, now, max_s, first_s, *chunk),
                        )
                    ]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._forget(gone)
            for prio in flipped:
                self._awaiting[LANES[prio]] += 1
            return len(gone)

    def receipt(self, msg_ids: Sequence[str]) -> list[OutboxRow]:
        """The backend committed these messages: delete their rows (awaiting or not; unknown ids, e.g. of a
        row already receipted, are ignored). Returns the rows deleted (without their payloads)."""
        if not msg_ids:
            return []
        with self._lock:
            self._set_sync(False)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._delete_where("msg_id", msg_ids)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._forget(gone)
            return [OutboxRow(row_id, LANES[prio], kind, b"", msg_id) for row_id, prio, _, _, kind, msg_id in gone]

    def claim_due(self, now: float, limit: int, hold_s: float, horizon_s: float) -> list[OutboxRow]:
        """Up to ``limit`` rows awaiting a receipt whose re-send time has come, in lane order then oldest first;
        their re-send time moves to ``now + hold_s`` so they are not handed out twice (their PUBACK then sets
        the next one). A re-send time more than ``horizon_s`` ahead counts as due (the wall clock went back)."""
        with self._lock:
            self._set_sync(False)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, lane, kind, payload, msg_id FROM outbox WHERE awaiting = 1 "
                    "AND (next_try <= ? OR next_try > ?) ORDER BY lane, id LIMIT ?",
                    (now, now + horizon_s, limit),
                ).fetchall()
                for chunk in _chunks([r[0] for r in rows]):
                    marks = ",".join("?" * len(chunk))
                    self._db.execute(f"UPDATE outbox SET next_try = ? WHERE id IN ({marks})", (now + hold_s, *chunk))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [OutboxRow(row_id, LANES[prio], kind, payload, msg_id) for row_id, prio, kind, payload, msg_id in rows]

    def make_due(self, ids: Sequence[int] = (), *, sent_before: float | None = None, now: float | None = None) -> int:
        """Bring re-sends forward to ``now``: the awaiting rows in ``ids`` (claimed but not sent when the link
        dropped), and with ``sent_before`` every awaiting row last acknowledged by the broker before that time
        (overdue: the backend answers others, so these were lost on the way). Returns how many rows changed."""
        now = time.time() if now is None else now
        changed = 0
        with self._lock:
            self._set_sync(False)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for chunk in _chunks(ids):
                    marks = ",".join("?" * len(chunk))
                    changed += self._db.execute(
                        f"UPDATE outbox SET next_try = ? WHERE id IN ({marks}) AND awaiting = 1", (now, *chunk)
                    ).rowcount
                if sent_before is not None:
                    changed += self._db.execute(
                        "UPDATE outbox SET next_try = ? WHERE awaiting = 1 AND next_try > ? AND sent_at < ?",
                        (now, now, sent_before),
                    ).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return changed

    def _delete_where(self, column: str, values: Sequence[int] | Sequence[str]) -> list[_Gone]:
        """DELETE rows whose ``column`` is in ``values`` (inside a transaction); the rows deleted."""
        gone: list[_Gone] = []
        for chunk in _chunks(values):
            marks = ",".join("?" * len(chunk))
            gone += self._db.execute(
                f"DELETE FROM outbox WHERE {column} IN ({marks}) RETURNING id, lane, size, awaiting, kind, msg_id",
                tuple(chunk),
            ).fetchall()
        return gone

    def _forget(self, gone: Sequence[_Gone]) -> None:
        for _, prio, size, awaiting, _, _ in gone:
            lane = LANES[prio]
            self._depth[lane] -= 1
            self._awaiting[lane] -= awaiting
            self._bytes -= size

    # -- getters ----------------------------------------------------------------------------------

    def depth(self) -> dict[Lane, int]:
        """Rows in the outbox per lane: not yet sent, in flight, and (alarm, event) awaiting a receipt."""
        with self._lock:
            return dict(self._depth)

    def awaiting_receipt(self) -> dict[Lane, int]:
        """Rows per lane the broker acknowledged that wait for the backend's receipt (part of :meth:`depth`)."""
        with self._lock:
            return dict(self._awaiting)

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


def _chunks(values: Sequence[int] | Sequence[str], size: int = 500) -> Iterable[Sequence[int] | Sequence[str]]:
    """``values`` in slices small enough for one statement's parameters."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
