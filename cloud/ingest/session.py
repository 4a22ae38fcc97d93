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

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud.ingest.config import IngestConfig
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


def connect_properties(config: IngestConfig) -> Properties:
    """CONNECT properties of a worker's session: its expiry and how many messages may be in flight to it."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = config.session_expiry_s
    props.ReceiveMaximum = config.receive_maximum
    return props


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


def _ensure_one(config: IngestConfig, cid: str, timeout_s: float) -> SessionResult:
    done = threading.Event()
    outcome: dict[str, Any] = {}
    client = Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
    if config.mqtt.username is not None:
        client.username_pw_set(config.mqtt.username, config.mqtt.password)

    def on_connect(c: Client, _u: Any, flags: ConnectFlags, reason: ReasonCode, _p: Properties | None) -> None:
        if reason.is_failure:
            outcome["error"] = f"connection refused: {reason}"
            done.set()
            return
        outcome["existed"] = bool(flags.session_present)
        if flags.session_present:
            done.set()
            return
        c.subscribe([(f, SubscribeOptions(qos=1)) for f in subscriptions(config)])

    def on_subscribe(_c: Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Properties | None) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            outcome["error"] = f"subscription refused: {', '.join(failed)}"
        done.set()

    def on_disconnect(_c: Client, _u: Any, _f: DisconnectFlags, reason: ReasonCode, _p: Properties | None) -> None:
        if not done.is_set():
            outcome["error"] = f"disconnected: {reason}"
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect
    try:
        client.connect(config.mqtt.host, config.mqtt.port, config.mqtt.keepalive_s, clean_start=False,
                       properties=connect_properties(config))
    except OSError as exc:
        raise SessionError(f"broker {config.mqtt.host}:{config.mqtt.port} unreachable: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            raise SessionError(f"broker {config.mqtt.host}:{config.mqtt.port} did not answer within {timeout_s:g} s")
        if "error" in outcome:
            raise SessionError(f"session {cid}: {outcome['error']}")
    finally:
        client.disconnect()  # normal disconnect: the session (and its expiry) stays on the broker
        client.loop_stop()
    existed = bool(outcome.get("existed"))
    log.info("ingest session %s on %s:%d %s", cid, config.mqtt.host, config.mqtt.port,
             "already existed" if existed else "created")
    return SessionResult(cid, existed)
