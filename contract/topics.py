"""Topic names, built and parsed in this one module.

Shape: ``xq/v1/{site}/{gateway}/{kind}`` where kind is one of :class:`TopicKind`.
Up: ``telemetry``, ``event``, ``state``, ``health``, ``cmd/ack``. Down: ``cmd`` (commands),
``receipt`` (the backend committed these messages) and ``config`` (retained: the gateway's configuration).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from contract.errors import TopicError

ROOT = "xq"
TOPIC_VERSION = "v1"
SHARED_GROUP = "ingest"

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TopicKind(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATE = "state"
    HEALTH = "health"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"
    RECEIPT = "receipt"
    CONFIG = "config"


UPLINK_KINDS = (TopicKind.TELEMETRY, TopicKind.EVENT, TopicKind.STATE, TopicKind.HEALTH, TopicKind.CMD_ACK)
DOWNLINK_KINDS = (TopicKind.CMD, TopicKind.RECEIPT, TopicKind.CONFIG)
RECEIPTED_KINDS = (TopicKind.EVENT, TopicKind.CMD_ACK)
"""Uplink kinds the backend names in a ``Receipt`` once committed (or found already stored): every event (so
the gateway's whole alarm lane) and command acks. Telemetry, health and state are settled by the PUBACK."""


def check_id(value: str, what: str) -> str:
    """Return ``value`` if it can be used as a topic level (site, gateway or device id)."""
    if not _ID_RE.match(value):
        raise TopicError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    gateway: str
    kind: TopicKind

    def __str__(self) -> str:
        return f"{ROOT}/{TOPIC_VERSION}/{self.site}/{self.gateway}/{self.kind.value}"

    @classmethod
    def build(cls, site: str, gateway: str, kind: TopicKind) -> Topic:
        return cls(check_id(site, "site"), check_id(gateway, "gateway"), kind)

    @classmethod
    def parse(cls, topic: str) -> Topic:
        parts = topic.split("/")
        if len(parts) < 5 or parts[0] != ROOT:
            raise TopicError(f"expected '{ROOT}/{TOPIC_VERSION}/<site>/<gateway>/<kind>'", topic=topic)
        if parts[1] != TOPIC_VERSION:
            raise TopicError(f"unknown topic version {parts[1]!r} (this software speaks {TOPIC_VERSION})", topic=topic)
        kind_text = "/".join(parts[4:])
        try:
            kind = TopicKind(kind_text)
        except ValueError:
            known = ", ".join(k.value for k in TopicKind)
            raise TopicError(f"unknown kind {kind_text!r} (known: {known})", topic=topic) from None
        try:
            return cls.build(parts[2], parts[3], kind)
        except TopicError as exc:
            raise TopicError(exc.reason, topic=topic) from None


def topic(site: str, gateway: str, kind: TopicKind) -> str:
    """The topic string for one gateway and kind."""
    return str(Topic.build(site, gateway, kind))


def uplink_filter(kind: TopicKind, site: str = "+", gateway: str = "+") -> str:
    """A subscription filter for one uplink kind, e.g. all gateways' telemetry."""
    return f"{ROOT}/{TOPIC_VERSION}/{site}/{gateway}/{kind.value}"


def shared_filter(kind: TopicKind, group: str = SHARED_GROUP, site: str = "+") -> str:
    """A shared-subscription filter (``$share/<group>/…``) so several workers split the load."""
    return f"$share/{group}/{uplink_filter(kind, site=site)}"
