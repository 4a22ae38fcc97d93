"""The ingest workers' MQTT sessions: what they subscribe, and creating them ahead of the first ``ingest``.

Each worker owns a persistent MQTT 5 session (client id ``<client_id>-<index>``, ``clean_start=False``, a
session expiry): while the worker is away the broker keeps its subscriptions and queues QoS 1 messages
for it. :func:`ensure_sessions` creates those sessions without running a worker — ``xiaoqu cloud migrate``
calls it, so the broker queues what gateways send from install on, even before ``xiaoqu cloud ingest``
first runs.

What Mosquitto (2.0) does with the shared subscriptions of an offline persistent session, as measured
(``docs/ingest.md``, "Start order"): the offline session stays a member of its ``$share`` group and gets its
round-robin share of messages, queued until it comes back (up to ``max_queued_messages``). With one worker
that is everything; with several, the share of a worker that never returns waits for its session to expire.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from cloud.ingest.config import IngestConfig
from contract.mqtt import Message, MqttClient, MqttConnectError
from contract.topics import TopicKind, shared_filter, uplink_filter

log = logging.getLogger(__name__)

SHARED_KINDS = (TopicKind.TELEMETRY, TopicKind.EVENT, TopicKind.HEALTH, TopicKind.CMD_ACK)


def subscriptions(config: IngestConfig) -> list[str]:
    """Shared filters for the high-volume kinds; ``state`` plainly, so retained births arrive on start
    (MQTT 5 sends no retained messages to shared subscriptions; state upserts are idempotent)."""
    subs = [shared_filter(kind, group=config.group, site=config.site) for kind in SHARED_KINDS]
    subs.append(uplink_filter(TopicKind.STATE, site=config.site))
    return subs


def client_id(config: IngestConfig, index: int) -> str:
    """The client id (and so the persistent session) of worker ``index``."""
    return f"{config.client_id}-{index}"


def session_client(config: IngestConfig, cid: str, *, reconnect: bool, **hooks: Any) -> MqttClient:
    """A client on worker ``cid``'s persistent MQTT 5 session: clean_start off, the session expiry and receive
    maximum of ``config``, manual acknowledgement, callbacks in paho's thread (the worker has no event loop)."""
    return MqttClient(
        config.mqtt.model_copy(update={"clean_start": False}),
        client_id=cid,
        protocol="5",
        reconnect=reconnect,
        manual_ack=True,
        session_expiry_s=config.session_expiry_s,
        receive_maximum=config.receive_maximum,
        deliver="thread",
        **hooks,
    )


class SessionError(RuntimeError):
    """A session could not be created (broker unreachable, connection or subscription refused)."""


@dataclass(frozen=True)
class SessionResult:
    client_id: str
    existed: bool
    """The broker already had the session (it was left as it was)."""


def ensure_sessions(config: IngestConfig, workers: int = 1, *, timeout_s: float = 10.0) -> list[SessionResult]:
    """Make sure the persistent sessions of workers ``0 … workers-1`` exist on the broker, subscribed.

    A session the broker already has is left untouched (no re-subscribe). A new one is subscribed like a
    worker does. Nothing is acknowledged: a message the broker hands over meanwhile stays unacknowledged in
    the session and is redelivered to the worker. Connecting under a running worker's client id takes its
    session over for a moment; the worker reconnects by itself — run this before starting ingest.
    """
    if config.session_expiry_s <= 0:
        raise SessionError("ingest.session_expiry_s is 0: the broker would drop the session at once")
    return [_ensure_one(config, client_id(config, i), timeout_s) for i in range(workers)]


def _ignore(_m: Message) -> None:
    """Messages handed over while the session is created stay unacknowledged (redelivered to the worker)."""


def _ensure_one(config: IngestConfig, cid: str, timeout_s: float) -> SessionResult:
    suback = threading.Event()
    refused: list[str] = []

    def on_subscribed(failed: list[str]) -> None:
        refused.extend(failed)
        suback.set()

    address = config.mqtt.address
    client = session_client(config, cid, reconnect=False, on_message=_ignore, on_subscribed=on_subscribed)
    try:
        try:
            existed = client.connect_blocking(timeout_s).session_present
        except MqttConnectError as exc:
            raise SessionError(f"session {cid} on broker {address}: {exc}") from None
        if not existed:
            client.subscribe(subscriptions(config))
            if not suback.wait(timeout_s):
                raise SessionError(f"broker {address} did not answer the subscription within {timeout_s:g} s")
            if refused:
                raise SessionError(f"session {cid}: subscription refused: {', '.join(refused)}")
    finally:
        client.close_blocking()  # normal disconnect: the session (and its expiry) stays on the broker
    log.info("ingest session %s on %s %s", cid, address, "already existed" if existed else "created")
    return SessionResult(cid, existed)
