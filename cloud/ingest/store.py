"""Writing one batch of received MQTT messages to the database, in one transaction.

The batch is decoded and sorted by message kind; then one transaction
(:func:`~cloud.ingest.writers.tx.batch_transaction`) runs the writer of each kind in :mod:`cloud.ingest.writers`
— gateway state, telemetry (binary COPY), events, command acks, health, and last the dead letters any of them
found — and announces new events, acks and gateway state changes with ``pg_notify('xq_events', …)``, so
listeners hear of them only once they are committed. Duplicates are guarded by the database
(``ON CONFLICT (id) DO NOTHING``). :meth:`BatchWriter.write` returns only after the commit; the worker
acknowledges the MQTT messages after that. The ids of every event and command ack now in the database
(stored by this batch, or found already stored) are handed back per gateway in ``CommittedBatch.receipts``,
for the receipts the worker publishes after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID

import psycopg

from cloud.db import Flavour
from cloud.devices.registry import DeviceDirectory
from cloud.ingest.models import CommittedBatch, DeadLetter, DecodedBatch, Inbound, Received, merge
from cloud.ingest.writers import telemetry as telemetry_writer
from cloud.ingest.writers.acks import write_acks
from cloud.ingest.writers.dead_letters import write_dead_letters
from cloud.ingest.writers.events import write_events
from cloud.ingest.writers.health import write_health
from cloud.ingest.writers.state import birth_devices, write_states
from cloud.ingest.writers.telemetry import EPOCH, QUALITY, minute_ranges, write_telemetry
from cloud.ingest.writers.tx import (
    NOTIFY_CHANNEL,
    NOTIFY_MAX_BYTES,
    BatchContext,
    Conn,
    batch_transaction,
    newer,
    notify,
    notify_payloads,
)
from contract.codec import decode
from contract.errors import ContractError
from contract.messages import CommandAck, Event, GatewayState, HealthReport, Message, TelemetryBatch
from contract.topics import Topic

log = logging.getLogger(__name__)

__all__ = [
    "EPOCH",
    "NOTIFY_CHANNEL",
    "NOTIFY_MAX_BYTES",
    "QUALITY",
    "BatchWriter",
    "CommittedBatch",
    "DeadLetter",
    "Inbound",
    "PartitionCache",
    "merge",
    "minute_ranges",
    "notify_payloads",
]


class BatchWriter:
    """Decodes and stores batches on one connection (not thread-safe: one writer per connection).

    The connection must be in autocommit mode: each batch opens its own transaction block.
    """

    def __init__(
        self,
        conn: Conn,
        flavour: Flavour,
        directory: DeviceDirectory,
        *,
        dead_letter_max_bytes: int = 4096,
        partitions: PartitionCache | None = None,
    ) -> None:
        if not conn.autocommit:
            raise ValueError("BatchWriter needs an autocommit connection (each batch is its own transaction)")
        self.conn = conn
        self.flavour = flavour
        self.directory = directory
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.partitions = partitions or PartitionCache()
        self.device_seen: dict[str, datetime] = {}
        self.gateway_seen: dict[str, datetime] = {}

    # -- decoding ---------------------------------------------------------------------------------
    def decode(self, items: list[Inbound]) -> DecodedBatch:
        out = DecodedBatch()
        seen: set[UUID] = set()
        for item in items:
            try:
                topic, message = decode(item.topic, item.payload)
            except ContractError as exc:
                out.dead.append(DeadLetter.of(item, exc.code, exc.reason))
                continue
            _sort(out, seen, item, topic, message)
        return out

    # -- writing ----------------------------------------------------------------------------------
    def write(self, items: list[Inbound]) -> CommittedBatch:
        """Store ``items`` in one transaction; on a database error about the data, fall back to one
        transaction per message and dead-letter the ones the database refuses. Connection errors
        propagate (the caller retries the whole batch; nothing is acknowledged)."""
        decoded = self.decode(items)
        try:
            return self._write(decoded, len(items))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            if len(items) == 1:
                log.warning("database refused message on %s: %s", items[0].topic, exc)
                reason = f"database refused it: {exc}".strip()[:1000]
                return self._write(DecodedBatch(dead=[DeadLetter.of(items[0], "rejected", reason)]), 1)
            log.warning("batch of %d refused (%s); storing message by message", len(items), exc)
        return merge([self.write([item]) for item in items])

    def _write(self, d: DecodedBatch, count: int) -> CommittedBatch:
        """The batch's one transaction: each message kind's writer in turn, then the notifications."""
        conn = self.conn
        births = birth_devices(d.states)
        todo = telemetry_writer.plan(d.telemetry)
        wanted = todo.devices | {r.message.device for r in d.events}
        known = self.directory.resolve(conn, wanted - births) | births
        if self.flavour == "native" and todo.minutes:
            self.partitions.ensure(conn, todo.days)  # DDL in its own short transaction, before the batch's

        with batch_transaction(conn) as cur:
            ctx = BatchContext(cur, known, dead=list(d.dead), duplicates=d.duplicates)
            changed_states = write_states(ctx, d.states)
            if births:
                self.directory.add(births)
            points = write_telemetry(ctx, d.telemetry, todo, self.flavour)
            new_events = write_events(ctx, d.events)
            new_acks = write_acks(ctx, d.acks)
            write_health(ctx, d.health)
            write_dead_letters(cur, ctx.dead, self.dead_letter_max_bytes)
            notify(cur, "events", [str(e.id) for e in new_events])
            notify(cur, "acks", [str(x.id) for x in new_acks])
            notify(cur, "gateways", [s.gw for s in changed_states])

        # Committed: remember presence for the periodic flush.
        for kind in (d.telemetry, d.events, d.acks, d.states, d.health):
            for r in kind:
                newer(self.gateway_seen, r.message.gw, r.item.received_at)
        for k, v in ctx.device_seen.items():
            newer(self.device_seen, k, v)
        codes: dict[str, int] = {}
        for dl in ctx.dead:
            codes[dl.code] = codes.get(dl.code, 0) + 1
        return CommittedBatch(
            events=tuple(new_events),
            acks=tuple(new_acks),
            gateways=tuple(changed_states),
            sites=ctx.sites,
            messages=count,
            telemetry_messages=len(d.telemetry),
            points=points,
            duplicates=ctx.duplicates,
            dead_letters=len(ctx.dead),
            dead_letter_codes=codes,
            receipts=ctx.receipts,
        )

    def take_presence(self) -> tuple[dict[str, datetime], dict[str, datetime]]:
        devices, self.device_seen = self.device_seen, {}
        gateways, self.gateway_seen = self.gateway_seen, {}
        return devices, gateways


def _sort(out: DecodedBatch, seen: set[UUID], item: Inbound, topic: Topic, message: Message) -> None:
    """File ``message`` under its kind; a repeat of an id already in the batch only counts as a duplicate."""
    if isinstance(message, GatewayState):  # idempotent upsert guarded by (epoch, seq): no id dedup needed
        out.states.append(Received(item, topic, message))
        return
    if isinstance(message, HealthReport):
        out.health.append(Received(item, topic, message))
        return
    if message.id in seen:
        out.duplicates += 1
        return
    seen.add(message.id)
    if isinstance(message, TelemetryBatch):
        out.telemetry.append(Received(item, topic, message))
    elif isinstance(message, Event):
        out.events.append(Received(item, topic, message))
    elif isinstance(message, CommandAck):
        out.acks.append(Received(item, topic, message))
    else:
        out.dead.append(DeadLetter.of(item, "unexpected_kind", f"{message.kind!r} is not an uplink message"))


class PartitionCache:
    """Daily telemetry partitions known to exist (native flavour); creates missing ones in their own
    short transaction, before the batch transaction, so DDL locks never sit inside an ingest transaction."""

    def __init__(self) -> None:
        self._days: set[int] = set()

    def ensure(self, conn: Conn, days: Iterable[int]) -> None:
        missing = sorted(set(days) - self._days)
        if not missing:
            return
        with conn.transaction():
            conn.execute(
                "SELECT xq_ensure_telemetry_partition(d::date) FROM unnest(%s::date[]) AS d",
                ([(EPOCH + timedelta(days=d)).date() for d in missing],),
            )
        self._days.update(missing)

    def forget(self, days: Iterable[int]) -> None:
        self._days.difference_update(days)
