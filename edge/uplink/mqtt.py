"""The MQTT uplink: drains the outbox to the broker in lane order; a row leaves the outbox only when done.

One :class:`contract.mqtt.MqttClient` per connection (its own reconnect is off; :meth:`Uplink.run` reconnects
with backoff and builds a fresh client, last will and birth each time). At most ``max_inflight`` rows are
handed to paho at once, so paho never becomes a second, unbounded buffer: each time a PUBACK frees a
slot, the oldest row of the highest non-empty lane goes next — an alarm put while a telemetry backlog
drains is sent as soon as one slot frees. On a disconnect every unacknowledged row is simply read
again from the outbox after the next connect (at-least-once; the backend is idempotent on message id).

"Done" depends on the kind. Telemetry, health and state: the broker's PUBACK (the row is deleted).
Events (the whole alarm lane) and command acks (``UplinkConfig.receipt_kinds``): a PUBACK only marks the
row as awaiting the backend's ``Receipt`` (on ``…/receipt``, sent after its database commit); the row is
deleted when a receipt names its message id, and sent again (same id) with capped backoff until then.
Re-sends go after the new rows of their lane, so rows awaiting a receipt never hold up a new alarm.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from contract.base import StrictModel
from contract.codec import decode, encode
from contract.errors import ContractError
from contract.messages import Command, GatewayConfigPush, GatewayState, Receipt
from contract.mqtt import Delivery, Message, MqttClient, MqttConnectError, MqttPublishError, MqttSettings, Will
from contract.topics import UPLINK_KINDS, TopicKind, topic
from edge.uplink.lanes import LANES, Lane
from edge.uplink.outbox import Outbox, OutboxRow

log = logging.getLogger(__name__)

UplinkState = Literal["stopped", "connecting", "connected", "backoff"]
ReceiptKind = Literal["event", "cmd/ack"]


class UplinkConfig(StrictModel):
    url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://host[:port] or mqtts://host[:port]")
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5)
    max_inflight: int = Field(default=100, ge=1, le=65000)
    client_id: str | None = Field(default=None, description='default: "xq-gw-<gateway id>"')
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    fetch_batch: int = Field(default=256, ge=1, description="rows read from the outbox per lane at a time")
    ack_flush_batch: int = Field(
        default=256, ge=1, description="acknowledged rows settled (deleted, or marked awaiting) per transaction"
    )
    tick_s: float = Field(default=0.1, gt=0, description="period of the idle refill and ack flush")
    stop_timeout_s: float = Field(default=5.0, gt=0, description="wait for the clean offline state's PUBACK")
    receipt_kinds: tuple[ReceiptKind, ...] = Field(
        default=("event", "cmd/ack"),
        description="kinds kept after the PUBACK until the backend's Receipt names them (events = the whole alarm "
        "lane); [] = PUBACK-only delivery, only for a backend that sends no receipts",
    )
    receipt_timeout_s: float = Field(
        default=10.0, gt=0, description="a row without its receipt this long after its PUBACK is sent again"
    )
    resend_max_s: float = Field(
        default=60.0, gt=0, description="cap of the re-send backoff (timeout, doubling per attempt)"
    )
    resend_check_s: float = Field(default=1.0, gt=0, description="how often rows due for a re-send are looked for")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must look like mqtt://host[:port] or mqtts://host[:port]")
        try:
            MqttSettings.from_url(value)
        except ValueError:
            raise ValueError("must look like mqtt://host[:port] or mqtts://host[:port]") from None
        return value

    def mqtt_settings(self, client_id: str) -> MqttSettings:
        """The broker connection: a persistent session (the ``…/cmd`` subscription and queued commands outlive a
        reconnect); the TLS files apply to ``mqtts://`` only."""
        tls = self.url.startswith("mqtts://")
        return MqttSettings.from_url(
            self.url, client_id=client_id, username=self.username, password=self.password,
            ca_file=self.ca_file if tls else None, cert_file=self.cert_file if tls else None,
            key_file=self.key_file if tls else None, keepalive_s=self.keepalive_s, clean_start=False,
        )


_Birth = Callable[[], GatewayState]
_OnCommand = Callable[[Command], Awaitable[None]]
_OnConfig = Callable[[GatewayConfigPush], None]


class _LaneCursor:
    """Which rows to hand out next: per lane, a cursor (highest id handed out) and a small read-ahead of
    new rows, then the rows due for a re-send (awaiting a receipt) of that lane."""

    def __init__(self, outbox: Outbox, batch: int) -> None:
        self._outbox = outbox
        self._batch = batch
        self._cursor: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._ahead: dict[Lane, deque[OutboxRow]] = {lane: deque() for lane in LANES}
        self._resend: dict[Lane, deque[OutboxRow]] = {lane: deque() for lane in LANES}

    def reset(self) -> None:
        """Start again from the oldest row of each lane (after a reconnect); forget queued re-sends."""
        for lane in LANES:
            self._cursor[lane] = 0
            self._ahead[lane].clear()
            self._resend[lane].clear()

    def add_resends(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            self._resend[row.lane].append(row)

    def resends_queued(self) -> int:
        return sum(len(q) for q in self._resend.values())

    def pick(self) -> OutboxRow | None:
        """The oldest not yet handed-out new row of the highest-priority lane with work, else that lane's
        next re-send: new alarms first, then alarm re-sends, then events, event re-sends, telemetry."""
        for lane in LANES:
            row = self._next_new(lane)
            if row is None and self._resend[lane]:
                row = self._resend[lane].popleft()
            if row is not None:
                return row
        return None

    def _next_new(self, lane: Lane) -> OutboxRow | None:
        ahead = self._ahead[lane]
        if not ahead:
            known = self._outbox.max_id(lane)
            if known <= self._cursor[lane]:
                return None
            rows = self._outbox.fetch(lane, self._cursor[lane], 16 if lane == "alarm" else self._batch)
            if not rows:
                # Every row up to `known` was deleted, dropped or is awaiting a receipt (a row committed after
                # reading `known` has a higher id, so it is not skipped).
                self._cursor[lane] = known
                return None
            ahead.extend(rows)
            self._cursor[lane] = rows[-1].id
        return ahead.popleft()


class Uplink:
    """Drains an :class:`Outbox` to MQTT with QoS 1; birth/death on ``…/state``; commands from ``…/cmd``."""

    def __init__(
        self,
        config: UplinkConfig,
        *,
        site: str,
        gateway_id: str,
        outbox: Outbox,
        birth: _Birth,
        on_command: _OnCommand | None = None,
        on_config: _OnConfig | None = None,
    ) -> None:
        self.config = config
        self.site = site
        self.gateway_id = gateway_id
        self.outbox = outbox
        self._birth = birth
        self._on_command = on_command
        self._client_id = config.client_id or f"xq-gw-{gateway_id}"
        self._settings = config.mqtt_settings(self._client_id)
        self._address = self._settings.address
        self._topics: dict[str, str] = {k.value: topic(site, gateway_id, k) for k in UPLINK_KINDS}
        self._state_topic = self._topics[TopicKind.STATE.value]
        self._cmd_topic = topic(site, gateway_id, TopicKind.CMD)
        self._receipt_topic = topic(site, gateway_id, TopicKind.RECEIPT)
        self._receipt_kinds = frozenset(config.receipt_kinds)
        self._on_config = on_config
        self._config_topic = topic(site, gateway_id, TopicKind.CONFIG)

        # Shared between the MQTT network thread (PUBACKs) and the asyncio thread; guarded by _lock. Lock order:
        # paho's internal locks -> the client's lock -> _lock -> the outbox's lock; publish() never under _lock.
        self._lock = threading.Lock()
        self._client: MqttClient | None = None
        self._ready = False
        """The current client's birth is out: rows may follow."""
        self._filling = False
        """One thread at a time picks and publishes rows (so they go out in pick order); another that wants a
        fill meanwhile leaves it in _fill_wanted for that thread, and never waits (no lock-order cycle with paho)."""
        self._fill_wanted: MqttClient | None = None
        self._slots = 0
        self._acked: list[int] = []
        self._acked_awaiting: list[int] = []
        self._resend_ids: set[int] = set()
        """Rows claimed for a re-send and not yet acknowledged by the broker (made due again on a disconnect)."""
        self._cursor = _LaneCursor(outbox, config.fetch_batch)
        self._acked_total: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._receipted_total: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._resent_total: dict[Lane, int] = dict.fromkeys(LANES, 0)
        self._receipts_total = 0
        self._next_resend_check = 0.0
        self._next_overdue_hint = 0.0

        self._state: UplinkState = "stopped"
        self._wakeup: asyncio.Event | None = None
        self._stop_requested = False
        self._running = False
        self._stopped: asyncio.Event | None = None
        self._command_tasks: set[asyncio.Task[None]] = set()
        self.on_ack: Callable[[OutboxRow], None] | None = None
        """Optional hook called (in the network thread) with each row whose PUBACK arrived."""
        self.on_receipt: Callable[[list[OutboxRow]], None] | None = None
        """Optional hook called (in the event loop) with the rows a receipt deleted (payloads empty)."""

    # -- public getters ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.connected

    @property
    def state(self) -> UplinkState:
        """``connected`` only while the broker connection is up; ``connecting`` from a drop until reconnected."""
        if self._state == "connected" and not self.connected:
            return "connecting"
        return self._state

    def inflight(self) -> int:
        """Messages handed to the broker and not yet acknowledged."""
        with self._lock:
            return self._slots

    def acked_total(self) -> dict[Lane, int]:
        """Outbox rows acknowledged by the broker since this uplink was created, per lane (re-sends included)."""
        with self._lock:
            return dict(self._acked_total)

    def receipted_total(self) -> dict[Lane, int]:
        """Outbox rows deleted because a backend receipt named them, since this uplink was created, per lane."""
        with self._lock:
            return dict(self._receipted_total)

    def resent_total(self) -> dict[Lane, int]:
        """Rows sent again because their receipt did not come in time, since this uplink was created, per lane."""
        with self._lock:
            return dict(self._resent_total)

    def receipts_total(self) -> int:
        """Receipt messages received (valid ones) since this uplink was created."""
        with self._lock:
            return self._receipts_total

    def awaiting_receipt(self) -> dict[Lane, int]:
        """Rows the broker acknowledged that wait for the backend's receipt, per lane (from the outbox)."""
        return self.outbox.awaiting_receipt()

    def wake(self) -> None:
        """Hint that ``put()`` added rows: fill free in-flight slots now (safe from any thread)."""
        client = self._client
        if client is not None and client.connected:
            self._fill(client)

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, drain and reconnect with backoff until :meth:`stop` (or cancellation)."""
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = True
        delay = self.config.reconnect_min_s
        client: MqttClient | None = None
        try:
            while not self._stop_requested:
                self._state = "connecting"
                try:
                    client = await self._connect()
                except MqttConnectError as exc:
                    self._state = "backoff"
                    pause = delay * random.uniform(0.8, 1.2)
                    log.warning("uplink to %s failed (%s); retrying in %.1f s", self._address, exc, pause)
                    await self._sleep(pause)
                    delay = min(delay * 2, self.config.reconnect_max_s)
                    continue
                delay = self.config.reconnect_min_s
                self._state = "connected"
                log.info("uplink connected to %s as %s", self._address, self._client_id)
                while client.connected and not self._stop_requested:
                    await self._sleep(self.config.tick_s)
                    self._flush_acks()
                    self._claim_resends()
                    self._fill(client)
                if self._stop_requested:
                    await self._publish_offline(client)
                else:
                    log.warning("uplink to %s lost; %d rows were in flight", self._address, self._slots)
                await self._teardown(client)
                client = None
        finally:
            if client is not None:
                await asyncio.shield(self._teardown(client))
            self._state = "stopped"
            self._running = False
            self._stop_requested = False  # a stop() before run() started ends that run at once, not a later one
            self._stopped.set()

    async def stop(self) -> None:
        """Publish a clean retained "offline" state, disconnect, and let :meth:`run` return."""
        self._stop_requested = True
        if not self._running or self._stopped is None:
            return
        if self._wakeup is not None:
            self._wakeup.set()
        try:
            await asyncio.wait_for(self._stopped.wait(), self.config.stop_timeout_s + 5)
        except TimeoutError:
            log.error("uplink did not stop within %.0f s", self.config.stop_timeout_s + 5)

    async def _sleep(self, seconds: float) -> None:
        assert self._wakeup is not None
        try:
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        except TimeoutError:
            pass
        self._wakeup.clear()

    def _new_client(self) -> MqttClient:
        will = GatewayState(
            gw=self.gateway_id,
            epoch=self.outbox.epoch,
            seq=self.outbox.next_seq(),
            ts=datetime.now(UTC),
            state="offline",
            reason="connection lost",
        )
        client = MqttClient(
            self._settings,
            reconnect=False,  # run() reconnects, with a fresh client, will and birth
            max_inflight=0,  # our window limits what paho holds; never queue in paho
            will=Will(self._state_topic, encode(will), qos=1, retain=True),
            on_message=self._on_message,
            on_disconnect=self._on_disconnect,
        )
        client.subscribe([self._cmd_topic, self._receipt_topic])
        if self._on_config is not None:
            client.subscribe(self._config_topic)
        return client

    async def _connect(self) -> MqttClient:
        client = self._new_client()
        try:
            birth = encode(self._birth())
        except ValueError:  # e.g. a pydantic ValidationError: announce ourselves anyway, without details
            log.exception("building the birth message failed; publishing a minimal one")
            birth = encode(
                GatewayState(gw=self.gateway_id, epoch=self.outbox.epoch, seq=self.outbox.next_seq(),
                             ts=datetime.now(UTC), state="online")
            )
        with self._lock:
            self._client = client
            self._ready = False
        try:
            await client.connect(self.config.connect_timeout_s)
        except MqttConnectError:
            await self._teardown(client)
            raise
        with self._lock:
            self._slots += 1  # the birth, first on the new connection
        self._publish_tracked(client, self._state_topic, birth, True, None)
        with self._lock:
            self._ready = True
        self._fill(client)
        return client

    async def _teardown(self, client: MqttClient) -> None:
        """Stop the client's thread and forget its in-flight rows: they are re-read from the outbox."""
        with self._lock:
            if self._client is client:
                self._client = None
            self._ready = False
        await client.close()
        self._flush_acks()
        with self._lock:
            self._cursor.reset()
            self._slots = 0
            unsent, self._resend_ids = list(self._resend_ids), set()
        if unsent:  # claimed for a re-send but not acknowledged: due again at once after the reconnect
            try:
                self.outbox.make_due(unsent)
            except sqlite3.Error:
                log.exception("re-scheduling %d claimed re-sends failed; they are due after the hold", len(unsent))

    async def _publish_offline(self, client: MqttClient) -> None:
        """The clean death: a retained "offline" state, acknowledged before we disconnect."""
        state = GatewayState(
            gw=self.gateway_id, epoch=self.outbox.epoch, seq=self.outbox.next_seq(), ts=datetime.now(UTC),
            state="offline", reason="stopped",
        )
        try:
            await client.publish(self._state_topic, encode(state), qos=1, retain=True).wait(self.config.stop_timeout_s)
        except MqttPublishError as exc:
            log.warning("clean offline state not acknowledged: %s", exc)

    # -- the drain (runs in the network thread on PUBACK, and in the caller's thread on wake/tick) --

    def _fill(self, client: MqttClient) -> None:
        with self._lock:
            if self._filling:
                self._fill_wanted = client
                return  # the thread filling now goes round once more
            self._filling = True
        target: MqttClient | None = client
        try:
            while target is not None:
                self._fill_slots(target)
                with self._lock:
                    target, self._fill_wanted = self._fill_wanted, None
                    if target is None:
                        self._filling = False
        except BaseException:
            with self._lock:
                self._filling = False
            raise

    def _fill_slots(self, client: MqttClient) -> None:
        limit = self.config.max_inflight
        while True:
            with self._lock:
                if self._client is not client or not self._ready or not client.connected or self._slots >= limit:
                    return
                try:
                    row = self._cursor.pick()
                except sqlite3.Error:
                    # Runs in paho's thread too: never let it die; the next tick or PUBACK retries.
                    log.exception("reading the outbox failed; retrying on the next tick")
                    return
                if row is None:
                    return
                self._slots += 1
            target = self._topics.get(row.kind)
            if target is None:
                log.error("outbox row %d has unknown kind %r: deleting it unsent", row.id, row.kind)
                self._settle(row)
                continue
            self._publish_tracked(client, target, row.payload, row.kind == TopicKind.STATE.value, row)

    def _publish_tracked(
        self, client: MqttClient, target: str, payload: bytes, retain: bool, row: OutboxRow | None
    ) -> None:
        """Publish with QoS 1 (a slot is already reserved); the PUBACK settles the row."""
        delivery = client.publish(target, payload, qos=1, retain=retain,
                                  on_done=functools.partial(self._on_done, client, row))
        if not delivery.accepted:
            log.debug("publish of row %s returned %s; it is resent after the next connect", row, delivery.rc_text)

    def _on_done(self, client: MqttClient, row: OutboxRow | None, delivery: Delivery) -> None:
        """The broker acknowledged a message (network thread; or at once, inside a _fill, when the PUBACK beat
        publish() returning). Failed: the client was closed, the row is re-read from the outbox."""
        if not delivery.ok or self._client is not client:
            return
        self._settle(row)
        self._fill(client)

    def _settle(self, row: OutboxRow | None) -> None:
        """One slot's message is acknowledged by the broker: queue its row for deletion, or — a kind the
        backend receipts — for marking as awaiting its receipt."""
        hook = self.on_ack
        if hook is not None and row is not None:
            hook(row)
        with self._lock:
            self._slots -= 1
            if row is None:
                return
            if row.msg_id is not None and row.kind in self._receipt_kinds:
                self._acked_awaiting.append(row.id)
            else:
                self._acked.append(row.id)
            self._resend_ids.discard(row.id)
            self._acked_total[row.lane] += 1
            flush = len(self._acked) + len(self._acked_awaiting) >= self.config.ack_flush_batch
        if flush:
            self._flush_acks()

    def _flush_acks(self) -> None:
        with self._lock:
            ids, self._acked = self._acked, []
            awaiting, self._acked_awaiting = self._acked_awaiting, []
        if not ids and not awaiting:
            return
        cfg = self.config
        try:
            self.outbox.settle(ids, awaiting, first_s=cfg.receipt_timeout_s, max_s=cfg.resend_max_s)
        except sqlite3.Error:
            log.exception("recording %d acknowledged rows failed; retrying on the next flush", len(ids) + len(awaiting))
            with self._lock:
                self._acked[:0] = ids
                self._acked_awaiting[:0] = awaiting

    def _claim_resends(self) -> None:
        """Every ``resend_check_s``: queue the rows whose receipt is overdue for sending again."""
        now = time.monotonic()
        if not self._receipt_kinds or now < self._next_resend_check:
            return
        self._next_resend_check = now + self.config.resend_check_s
        with self._lock:
            queued = self._cursor.resends_queued()
        room = self.config.fetch_batch - queued
        if room <= 0:
            return
        cfg = self.config
        try:
            rows = self.outbox.claim_due(time.time(), room, cfg.receipt_timeout_s, 2 * cfg.resend_max_s)
        except sqlite3.Error:
            log.exception("looking for rows to re-send failed; retrying in %.1f s", cfg.resend_check_s)
            return
        with self._lock:
            rows = [r for r in rows if r.id not in self._resend_ids]
            if not rows:
                return
            self._resend_ids.update(r.id for r in rows)
            self._cursor.add_resends(rows)
            for r in rows:
                self._resent_total[r.lane] += 1
        log.info("re-sending %d row(s) without a receipt (%s)", len(rows),
                 ", ".join(sorted({r.lane for r in rows})))

    # -- from the MQTT client (event loop) -----------------------------------------------------------

    def _on_disconnect(self, reason: str) -> None:
        log.info("uplink disconnected: %s", reason)
        if self._wakeup is not None:
            self._wakeup.set()

    def _on_message(self, message: Message) -> None:
        if message.topic == self._receipt_topic:
            self._on_receipt(message.payload)
            return
        if message.topic == self._config_topic:
            self._on_config_message(message)
            return
        try:
            _, decoded = decode(message.topic, message.payload)
        except (ContractError, UnicodeDecodeError) as exc:
            log.warning("dropping a bad command on %s: %s", self._cmd_topic, getattr(exc, "reason", exc))
            return
        if not isinstance(decoded, Command):
            log.warning("dropping a %s received on %s", type(decoded).__name__, self._cmd_topic)
            return
        if self._on_command is None:
            log.info("command %s for %s ignored: no command handler", decoded.command, decoded.device)
            return
        self._start_command(decoded)

    def _on_receipt(self, payload: bytes) -> None:
        """The backend committed (or already had) these messages: their rows leave the outbox."""
        try:
            _, decoded = decode(self._receipt_topic, payload)
        except (ContractError, UnicodeDecodeError) as exc:
            log.warning("dropping a bad receipt on %s: %s", self._receipt_topic, getattr(exc, "reason", exc))
            return
        if not isinstance(decoded, Receipt):
            log.warning("dropping a %s received on %s", type(decoded).__name__, self._receipt_topic)
            return
        try:
            gone = self.outbox.receipt([str(i) for i in decoded.ids])
            now = time.monotonic()
            if now >= self._next_overdue_hint:
                # The backend answers: rows still waiting since well before this receipt were lost on the way
                # (e.g. sent while nothing consumed them) — send them now instead of after their backoff.
                self._next_overdue_hint = now + self.config.receipt_timeout_s
                due = self.outbox.make_due(sent_before=time.time() - self.config.receipt_timeout_s)
                if due:
                    log.info("backend receipts again: %d overdue row(s) re-sent now", due)
        except sqlite3.Error:  # never raise into the client: the rows are re-sent and receipted again later
            log.exception("applying a receipt of %d id(s) failed", len(decoded.ids))
            return
        with self._lock:
            self._receipts_total += 1
            for row in gone:
                self._receipted_total[row.lane] += 1
        unknown = len(decoded.ids) - len(gone)
        if unknown:
            log.debug("receipt named %d id(s) not in the outbox (already receipted or never ours)", unknown)
        hook = self.on_receipt
        if hook is not None:
            hook(gone)

    def _on_config_message(self, message: Message) -> None:
        """The backend's config for this gateway (retained): handed to ``on_config`` (in the event loop)."""
        if not message.payload:
            return  # the retained config was cleared
        try:
            _, decoded = decode(message.topic, message.payload)
        except (ContractError, UnicodeDecodeError) as exc:
            log.warning("dropping a bad config on %s: %s", self._config_topic, getattr(exc, "reason", exc))
            return
        if not isinstance(decoded, GatewayConfigPush) or self._on_config is None:
            log.warning("dropping a %s received on %s", type(decoded).__name__, self._config_topic)
            return
        self._on_config(decoded)

    def _start_command(self, command: Command) -> None:
        task = asyncio.get_running_loop().create_task(self._run_command(command))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _run_command(self, command: Command) -> None:
        assert self._on_command is not None
        try:
            await self._on_command(command)
        except Exception:  # loop boundary: a failing handler must not take the uplink down
            log.exception(
                "command handler failed for command %s (%s on %s)", command.id, command.command, command.device
            )

