"""Fan-out of alarm / order / incident / command changes to WebSocket subscribers, across processes.

:class:`ChangeBus` delivers a change to every subscriber queue of this process. With a
:class:`PgChangeRelay` attached, every change published here is also sent to the other API processes over
PostgreSQL ``NOTIFY xq_changes`` and every change they publish is delivered here: a browser connected to
any ``serve`` process sees every change, whichever process (engine or API request) made it.

NOTIFY payloads are limited to 8000 bytes: a change that does not fit (an alarm that folded hundreds of
devices) is stored in ``xq_change_payloads`` and the notification carries its row id instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection
from pydantic import ValidationError

from cloud.changes import Change

log = logging.getLogger(__name__)

CHANNEL = "xq_changes"
MAX_INLINE = 7900  # bytes of NOTIFY payload (PostgreSQL's limit is 8000)
KEEP_STORED = "10 minutes"  # stored (oversized) payloads older than this are deleted


class ChangeBus:
    """Publish a change once; every subscriber's bounded queue receives it (slow ones drop oldest)."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._queue_size = queue_size
        self._forward: Callable[[Change], None] | None = None

    def subscribe(self) -> asyncio.Queue[Change]:
        q: asyncio.Queue[Change] = asyncio.Queue(self._queue_size)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Change]) -> None:
        self._subscribers.discard(q)

    def forward_to(self, forward: Callable[[Change], None] | None) -> None:
        """Also hand every change published here to ``forward`` (the relay to the other processes)."""
        self._forward = forward

    def publish(self, change: Change) -> None:
        """A change made in this process: deliver it here and forward it to the other processes."""
        self.deliver(change)
        if self._forward is not None:
            self._forward(change)

    def deliver(self, change: Change) -> None:
        """Deliver to this process's subscribers only (a change another process made)."""
        for q in list(self._subscribers):
            if q.full():
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    pass
                log.warning("change subscriber is slow; dropped its oldest change")
            q.put_nowait(change)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


class PgChangeRelay:
    """Shares a :class:`ChangeBus` with the other API processes through PostgreSQL LISTEN/NOTIFY.

    ``run`` keeps two connections: one LISTENs on ``xq_changes`` and delivers other processes' changes to
    the local bus (its own are recognised by ``origin`` and skipped); one sends the local changes, in
    order, after the transaction that made them has committed. Both reconnect when the database goes away;
    a change that could not be sent while it was away is dropped with a warning (browsers re-fetch the
    lists when their WebSocket reconnects, but they are not told about a change that was lost here).
    """

    def __init__(self, bus: ChangeBus, dsn: str, *, queue_size: int = 10_000) -> None:
        self.bus = bus
        self.dsn = dsn
        self.origin = uuid.uuid4().hex[:12]
        self._outbox: asyncio.Queue[Change] = asyncio.Queue(queue_size)
        self.sent = 0
        self.received = 0
        bus.forward_to(self._enqueue)

    def _enqueue(self, change: Change) -> None:
        try:
            self._outbox.put_nowait(change)
        except asyncio.QueueFull:
            log.warning(
                "change relay backlog full; %s #%s not sent to the other processes",
                change.kind,
                change.id,
            )

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Relay until ``stop`` is set; ``ready`` is set once this process listens."""
        sender = asyncio.create_task(self._send_loop(stop))
        try:
            await self._listen_loop(stop, ready or asyncio.Event())
        finally:
            sender.cancel()
            try:
                await sender
            except asyncio.CancelledError:
                pass

    async def _listen_loop(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with await AsyncConnection.connect(
                    self.dsn, autocommit=True, application_name="xiaoqu-changes"
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    ready.set()
                    async for note in conn.notifies():
                        await self._receive(note.payload)
                        if stop.is_set():
                            break
            except psycopg.OperationalError as exc:
                log.warning("change relay lost the database (%s); listening again in 1 s", exc)
                await asyncio.sleep(1)

    async def _receive(self, payload: str) -> None:
        try:
            note = json.loads(payload)
        except json.JSONDecodeError:
            log.warning("ignoring malformed %s payload %r", CHANNEL, payload[:200])
            return
        if not isinstance(note, dict) or note.get("o") == self.origin:
            return
        raw = note.get("c")
        if raw is None and isinstance(note.get("ref"), int):
            try:  # not on the listening connection: it is busy waiting for notifications
                async with await AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    cur = await conn.execute("SELECT payload FROM xq_change_payloads WHERE id = %s", (note["ref"],))
                    row = await cur.fetchone()
            except psycopg.Error as exc:
                log.warning("change %s could not be read (%s); skipped", note["ref"], exc)
                return
            raw = row[0] if row else None
        try:
            change = Change.model_validate(raw)
        except ValidationError as exc:
            log.warning("ignoring %s payload without a valid change (%s): %r", CHANNEL, exc, payload[:200])
            return
        self.received += 1
        self.bus.deliver(change)

    async def _send_loop(self, stop: asyncio.Event) -> None:
        conn: AsyncConnection[Any] | None = None
        try:
            while not stop.is_set():
                change = await self._outbox.get()
                try:
                    if conn is None or conn.closed:
                        conn = await AsyncConnection.connect(
                            self.dsn, autocommit=True, application_name="xiaoqu-changes-out"
                        )
                    await self._send(conn, change)
                    self.sent += 1
                except psycopg.Error as exc:
                    log.warning("%s #%s not sent to the other processes: %s", change.kind, change.id, exc)
                    if conn is not None:
                        await conn.close()
                    conn = None
                    await asyncio.sleep(0.5)
        finally:
            if conn is not None:
                await conn.close()

    async def _send(self, conn: AsyncConnection[Any], change: Change) -> None:
        data = change.model_dump(mode="json")
        body = json.dumps({"o": self.origin, "c": data}, ensure_ascii=False)
        if len(body.encode()) <= MAX_INLINE:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, body))
            return
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO xq_change_payloads (payload) VALUES (%s) RETURNING id",
                (json.dumps(data),),
            )
            row = await cur.fetchone()
            assert row is not None
            await conn.execute(f"DELETE FROM xq_change_payloads WHERE ts < now() - interval '{KEEP_STORED}'")
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"o": self.origin, "ref": row[0]})))
