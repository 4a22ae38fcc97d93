"""The transaction of one batch, and what the writers share inside it.

:func:`batch_transaction` opens the batch's one transaction (commit on leaving, rollback on an error) on an
autocommit connection. :class:`BatchContext` is the state the writers add to while it is open: the cursor,
the devices known to exist, the dead letters found so far, the receipts and the device presence observed.
:func:`notify` announces committed ids with ``pg_notify`` in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import psycopg
from psycopg.rows import TupleRow

from cloud.ingest.models import DeadLetter

Conn = psycopg.Connection[TupleRow]
Cursor = psycopg.Cursor[TupleRow]

NOTIFY_CHANNEL = "xq_events"
NOTIFY_MAX_BYTES = 7900


@contextmanager
def batch_transaction(conn: Conn) -> Iterator[Cursor]:
    """One transaction block and a cursor in it; committed when the block is left without an error."""
    with conn.transaction(), conn.cursor() as cur:
        yield cur


@dataclass(slots=True)
class BatchContext:
    """What the writers of one batch share while its transaction is open."""

    cur: Cursor
    known: set[str]
    """Device ids that exist (registered before, or announced by a birth in this batch)."""
    dead: list[DeadLetter]
    duplicates: int = 0
    """Messages already stored (or repeated in the batch): the database's ``ON CONFLICT`` guards count here."""
    sites: dict[str, str] = field(default_factory=dict)
    receipts: dict[tuple[str, str], list[UUID]] = field(default_factory=dict)
    device_seen: dict[str, datetime] = field(default_factory=dict)

    def receipt(self, site: str, gw: str, message_id: UUID) -> None:
        self.receipts.setdefault((site, gw), []).append(message_id)


def newer(target: dict[str, datetime], key: str, ts: datetime) -> None:
    """Keep the newest time per key."""
    old = target.get(key)
    if old is None or ts > old:
        target[key] = ts


def notify_payloads(key: str, ids: list[str]) -> list[str]:
    """``{"<key>": [ids…]}`` JSON texts, each at most :data:`NOTIFY_MAX_BYTES` (PostgreSQL refuses a NOTIFY
    payload of 8000 bytes or more, and a refused batch falls back to one transaction per message)."""
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(json.dumps({key: []}))
    for i in ids:
        item = len(json.dumps(i).encode()) + 2  # the quoted id and its ", " separator
        if chunk and size + item > NOTIFY_MAX_BYTES:
            payloads.append(json.dumps({key: chunk}))
            chunk, size = [], len(json.dumps({key: []}))
        chunk.append(i)
        size += item
    if chunk:
        payloads.append(json.dumps({key: chunk}))
    return payloads


def notify(cur: Cursor, key: str, ids: list[str]) -> None:
    """``pg_notify`` ``{"<key>": [ids…]}`` in chunks below PostgreSQL's 8000-byte payload limit."""
    payloads = notify_payloads(key, ids)
    if payloads:
        cur.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", (NOTIFY_CHANNEL, payloads))
