"""The ingest worker: MQTT consumer on shared subscriptions, batched writes, ack after commit.

One worker = one process (or thread) with one MQTT session and one database connection. Several
workers with distinct indexes split the load through ``$share/<group>/…`` subscriptions. Each worker's
MQTT session is persistent (MQTT 5, clean_start=False, a session expiry), so messages that were in
flight when a worker died are redelivered to it when it comes back under the same client id.

Thread model: paho's network thread only queues received messages; the worker thread decodes,
writes one batch per transaction, then acknowledges each message (``client.ack``) in arrival order
and publishes one ``Receipt`` per gateway naming the events and command acks now in the database (QoS 1,
on ``xq/v1/<site>/<gw>/receipt``): the gateway keeps those in its outbox until a receipt names them;
a housekeeping thread flushes presence (last-seen) and runs storage maintenance on its own connection.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from cloud.db import DatabaseConfig, Flavour, connect
from cloud.db.migrate import stored_flavour
from cloud.devices.registry import DeviceDirectory, PresenceTracker, mark_offline
from cloud.ingest.config import IngestConfig
from cloud.ingest.maintenance import Maintenance
from cloud.ingest.session import SHARED_KINDS, client_id, session_client, subscriptions
from cloud.ingest.store import BatchWriter, CommittedBatch, Inbound, PartitionCache
from contract.codec import encode
from contract.messages import Receipt
from contract.mqtt import ConnectResult, Message, MqttClient, MqttPublishError
from contract.topics import TopicKind, topic
from xiaoqu import processes

log = logging.getLogger(__name__)

__all__ = ["SHARED_KINDS", "IngestStats", "IngestWorker", "NotMigrated", "run_workers", "subscriptions"]

RECEIPT_MAX_IDS = 1000
"""Ids per Receipt message (the contract's limit); more are split over several receipts."""


@dataclass
class IngestStats:
    """Counters of one worker since it started (read them any time; updated after each commit)."""

    messages: int = 0
    points: int = 0
    events: int = 0
    acks: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    dead_letter_codes: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    db_retries: int = 0
    receipts: int = 0
    """Receipt messages published."""
    receipted_ids: int = 0

    def add(self, b: CommittedBatch) -> None:
        self.messages += b.messages
        self.points += b.points
        self.events += len(b.events)
        self.acks += len(b.acks)
        self.duplicates += b.duplicates
        self.dead_letters += b.dead_letters
        for k, v in b.dead_letter_codes.items():
            self.dead_letter_codes[k] = self.dead_letter_codes.get(k, 0) + v
        self.batches += 1


class NotMigrated(RuntimeError):
    """The database has no schema yet: run ``xiaoqu cloud migrate`` first."""


class IngestWorker:
    """Consume, store, acknowledge. ``run()`` blocks until :meth:`stop`; :meth:`start` runs it in a thread.

    ``on_committed`` is called (in the worker thread) after each commit with what was newly stored —
    the in-process hand-over for single-process deployments; others LISTEN on ``xq_events``.
    """

    def __init__(
        self,
        db: DatabaseConfig,
        config: IngestConfig,
        *,
        index: int = 0,
        on_committed: Callable[[CommittedBatch], None] | None = None,
        maintenance: bool = True,
    ) -> None:
        self.db = db
        self.config = config
        self.index = index
        self.client_id = client_id(config, index)
        self.on_committed = on_committed
        self.maintenance_enabled = maintenance
        self.stats = IngestStats()
        self.subscribed = threading.Event()
        self._queue: queue.Queue[Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._presence = PresenceTracker()
        self._directory = DeviceDirectory()
        self._partitions = PartitionCache()
        self._thread: threading.Thread | None = None
        self._client: MqttClient | None = None
        self._receipt_seq = itertools.count()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name=f"ingest-{self.index}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        conn = self._connect_db()
        flavour = self._flavour(conn)
        self._directory.load_all(conn)
        conn.commit()
        writer = self._writer(conn, flavour)
        client = self._mqtt()
        housekeeping = threading.Thread(
            target=self._housekeeping, args=(flavour,), name=f"ingest-{self.index}-housekeeping", daemon=True
        )
        housekeeping.start()
        try:
            self._loop(writer, client, flavour)
        finally:
            client.close_blocking()
            housekeeping.join(timeout=10)
            writer.conn.close()
            log.info("ingest worker %s stopped: %s", self.client_id, self.stats)

    # -- MQTT -------------------------------------------------------------------------------------
    def _mqtt(self) -> MqttClient:
        """The worker's persistent session; paho reconnects, the adapter resubscribes after each connect."""
        client = session_client(
            self.config, self.client_id, reconnect=True,
            on_message=self._on_message, on_connect=self._on_connect, on_subscribed=self._on_subscribed,
        )
        client.subscribe(subscriptions(self.config))
        client.start()
        self._client = client
        return client

    def _on_connect(self, result: ConnectResult) -> None:
        log.info("MQTT %s connected (session present: %s)", self.client_id, result.session_present)

    def _on_subscribed(self, failed: list[str]) -> None:
        if failed:
            log.error("MQTT subscription of %s refused: %s", self.client_id, failed)
        else:
            self.subscribed.set()

    def _on_message(self, msg: Message) -> None:
        self._queue.put(Inbound(msg.topic, msg.payload, msg.mid, msg.qos, datetime.now(UTC), msg.session))

    # -- database ---------------------------------------------------------------------------------
    def _connect_db(self) -> psycopg.Connection[Any]:
        delay = 0.5
        while True:
            try:
                return connect(self.db.dsn, autocommit=True, application_name=self.client_id)
            except psycopg.OperationalError as exc:
                if self._stop.is_set():
                    raise
                log.warning("database unreachable (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.config.retry_backoff_max_s)

    def _flavour(self, conn: psycopg.Connection[Any]) -> Flavour:
        flavour = stored_flavour(conn)
        conn.commit()
        if flavour is None:
            raise NotMigrated(f"database {conn.info.dbname!r} has no schema: run 'xiaoqu cloud migrate' first")
        return flavour

    def _writer(self, conn: psycopg.Connection[Any], flavour: Flavour) -> BatchWriter:
        return BatchWriter(
            conn,
            flavour,
            self._directory,
            dead_letter_max_bytes=self.config.dead_letter_max_bytes,
            partitions=self._partitions,
        )

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self, writer: BatchWriter, client: MqttClient, flavour: Flavour) -> None:
        cfg = self.config
        wait = cfg.batch_max_wait_ms / 1000
        batch: list[Inbound] = []
        size = 0
        deadline = 0.0
        while True:
            stopping = self._stop.is_set()
            if stopping and self._queue.empty() and not batch:
                return
            timeout = max(0.0, deadline - time.monotonic()) if batch else 0.2
            try:
                item = self._queue.get(timeout=timeout) if not stopping else self._queue.get_nowait()
                if not batch:
                    deadline = time.monotonic() + wait
                batch.append(item)
                size += len(item.payload)
            except queue.Empty:
                pass
            full = len(batch) >= cfg.batch_max_messages or size >= cfg.batch_max_bytes
            due = batch and (full or time.monotonic() >= deadline or (stopping and self._queue.empty()))
            if not due:
                continue
            writer = self._commit(writer, client, batch, flavour)
            batch, size = [], 0

    def _commit(
        self, writer: BatchWriter, client: MqttClient, batch: list[Inbound], flavour: Flavour
    ) -> BatchWriter:
        """Write ``batch`` until it is committed (retrying through database outages), then ack it."""
        delay = 0.5
        while True:
            try:
                result = writer.write(batch)
                break
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self.stats.db_retries += 1
                log.warning("%s: database error writing %d messages (%s); retrying", self.client_id, len(batch), exc)
            except Exception:  # worker-loop boundary: never crash, never ack what is not stored
                self.stats.db_retries += 1
                log.exception("%s: unexpected error writing %d messages; retrying", self.client_id, len(batch))
            time.sleep(delay)
            delay = min(delay * 2, self.config.retry_backoff_max_s)
            if writer.conn.closed or writer.conn.broken:
                writer = self._writer(self._connect_db(), flavour)
            else:
                writer.conn.rollback()
        for item in batch:  # only now: what is not acknowledged the broker redelivers to this session
            client.ack(item.mid, item.qos, item.session)
        if self.config.receipts:
            self._send_receipts(client, result.receipts)
        self.stats.add(result)
        devices, gateways = writer.take_presence()
        self._presence.note(devices, gateways)
        if result.dead_letters:
            log.warning("%s: %d dead letter(s): %s", self.client_id, result.dead_letters, result.dead_letter_codes)
        if self.on_committed is not None:
            try:
                self.on_committed(result)
            except Exception:  # a hook's failure must not stop ingest
                log.exception("%s: on_committed hook failed", self.client_id)
        return writer

    def _send_receipts(self, client: MqttClient, receipts: dict[tuple[str, str], list[UUID]]) -> None:
        """After the commit: tell each gateway which of its messages are in the database (QoS 1, queued by
        paho while the broker is away; a receipt lost anyway only costs the gateway a re-send)."""
        now = datetime.now(UTC)
        for (site, gw), ids in receipts.items():
            target = topic(site, gw, TopicKind.RECEIPT)
            for start in range(0, len(ids), RECEIPT_MAX_IDS):
                chunk = ids[start : start + RECEIPT_MAX_IDS]
                receipt = Receipt(gw=gw, seq=next(self._receipt_seq), ts=now, ids=chunk)
                try:
                    client.publish(target, encode(receipt), qos=1)
                except MqttPublishError as exc:  # not sent: the gateway re-sends, the next commit receipts it
                    log.warning("%s: receipt to %s/%s not sent: %s", self.client_id, site, gw, exc)
                    continue
                self.stats.receipts += 1
                self.stats.receipted_ids += len(chunk)

    # -- housekeeping -----------------------------------------------------------------------------
    def _housekeeping(self, flavour: Flavour) -> None:
        cfg = self.config
        maintenance = Maintenance(self.db, flavour, partitions_ahead_days=cfg.partitions_ahead_days)
        conn: psycopg.Connection[Any] | None = None
        next_presence = time.monotonic() + cfg.presence_flush_s
        next_maint = time.monotonic()
        while True:
            stopping = self._stop.wait(0.2)
            now = time.monotonic()
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = connect(self.db.dsn, autocommit=True, application_name=f"{self.client_id}-housekeeping")
                if stopping or now >= next_presence:
                    self._presence.flush(conn, cfg.online_window_s)
                    next_presence = now + cfg.presence_flush_s
                if self.maintenance_enabled and not stopping and now >= next_maint:
                    if maintenance.run_once(conn):
                        mark_offline(conn, cfg.offline_after_s)
                    next_maint = now + cfg.maintenance_interval_s
            except psycopg.Error as exc:
                log.warning("%s: housekeeping failed (%s); will retry", self.client_id, exc)
                if conn is not None and not conn.closed:
                    conn.rollback()
            if stopping:
                break
        if conn is not None:
            conn.close()


# -- several worker processes -------------------------------------------------------------------------
def _worker_main(db_json: str, cfg_json: str, index: int) -> None:
    processes.die_with_parent()  # SIGTERM (an orderly stop) if the supervisor dies, even by SIGKILL
    logging.basicConfig(level=logging.INFO, format=f"ingest-{index} %(name)s: %(message)s")
    worker = IngestWorker(
        DatabaseConfig.model_validate_json(db_json), IngestConfig.model_validate_json(cfg_json), index=index
    )
    for sig in processes.STOP_SIGNALS:
        signal.signal(sig, lambda *_: worker._stop.set())
    worker.run()


def run_workers(db: DatabaseConfig, config: IngestConfig, workers: int, first_index: int = 0) -> int | None:
    """Run ``workers`` worker processes (indexes first_index…) until SIGINT, SIGTERM or SIGHUP.

    Several workers are child processes: a stop signal stops them all (bounded: SIGKILL after 20 s), and
    they stop by themselves if this process dies. Returns the signal that ended the run (None: they ended)."""
    if workers == 1:
        worker = IngestWorker(db, config, index=first_index)
        received: list[int] = []

        def on_signal(signum: int, _frame: Any) -> None:
            received.append(signum)
            worker._stop.set()

        for sig in processes.STOP_SIGNALS:
            signal.signal(sig, on_signal)
        worker.run()
        return received[0] if received else None
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(db.model_dump_json(), config.model_dump_json(), first_index + i))
        for i in range(workers)
    ]
    with processes.StopSignals() as stop:
        try:
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        except processes.StopSignal:
            pass
        finally:
            stop.shield()
            processes.stop(procs, grace_s=20)
    return stop.received
