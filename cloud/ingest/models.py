"""Typed rows of the ingest path: a received message, a dead letter, a decoded batch sorted by message kind,
what a committed batch stored, and the telemetry rows the API reads back.

The ingest rows are slotted dataclasses, not pydantic models: they are built once per MQTT message on the
hot path and are never validated (the contract models inside them already are).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from contract.messages import CommandAck, Event, GatewayState, HealthReport, TelemetryBatch
from contract.topics import Topic

Quality = Literal["good", "uncertain", "bad"]
M = TypeVar("M")


@dataclass(slots=True)
class Inbound:
    """One MQTT message as received, not yet acknowledged."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    session: int = 0
    """The broker session it came in (an ack is sent only in that session)."""


@dataclass(slots=True)
class DeadLetter:
    """A message the batch could not store as data: kept as received, with why."""

    topic: str
    payload: bytes
    code: str
    reason: str
    received_at: datetime

    @classmethod
    def of(cls, item: Inbound, code: str, reason: str) -> DeadLetter:
        return cls(item.topic, item.payload, code, reason, item.received_at)


@dataclass(slots=True)
class Received(Generic[M]):
    """A decoded message with the MQTT message and topic it came in on."""

    item: Inbound
    topic: Topic
    message: M


@dataclass
class DecodedBatch:
    """One batch, decoded and sorted by message kind (in arrival order within a kind)."""

    telemetry: list[Received[TelemetryBatch]] = field(default_factory=list)
    events: list[Received[Event]] = field(default_factory=list)
    acks: list[Received[CommandAck]] = field(default_factory=list)
    states: list[Received[GatewayState]] = field(default_factory=list)
    health: list[Received[HealthReport]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    """Messages repeated within the batch (same id), dropped while decoding."""


@dataclass(frozen=True)
class CommittedBatch:
    """What one committed batch stored (handed to ``on_committed``; only new rows, no duplicates)."""

    events: tuple[Event, ...] = ()
    acks: tuple[CommandAck, ...] = ()
    gateways: tuple[GatewayState, ...] = ()
    """State messages that changed a gateway row (birth / death)."""
    sites: dict[str, str] = field(default_factory=dict)
    """Gateway id → site id (from the topics) for the gateways in this batch."""
    messages: int = 0
    telemetry_messages: int = 0
    points: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    dead_letter_codes: dict[str, int] = field(default_factory=dict)
    receipts: dict[tuple[str, str], list[UUID]] = field(default_factory=dict)
    """(site, gateway) → ids of the events and command acks of this batch that are in the database now,
    new or already stored (a re-send): what the gateway may delete from its outbox. Dead letters are not in it."""


def merge(results: list[CommittedBatch]) -> CommittedBatch:
    """Several committed batches (the message-by-message fallback) as one."""
    codes: dict[str, int] = {}
    sites: dict[str, str] = {}
    receipts: dict[tuple[str, str], list[UUID]] = {}
    for r in results:
        sites.update(r.sites)
        for k, v in r.dead_letter_codes.items():
            codes[k] = codes.get(k, 0) + v
        for gw, ids in r.receipts.items():
            receipts.setdefault(gw, []).extend(ids)
    return CommittedBatch(
        events=tuple(e for r in results for e in r.events),
        acks=tuple(a for r in results for a in r.acks),
        gateways=tuple(g for r in results for g in r.gateways),
        sites=sites,
        messages=sum(r.messages for r in results),
        telemetry_messages=sum(r.telemetry_messages for r in results),
        points=sum(r.points for r in results),
        duplicates=sum(r.duplicates for r in results),
        dead_letters=sum(r.dead_letters for r in results),
        dead_letter_codes=codes,
        receipts=receipts,
    )


# -- read back by the API ---------------------------------------------------------------------------


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelemetryBucket(_Row):
    """One rolled-up bucket of one point (``telemetry_1m`` / ``_5m`` / ``_1h``)."""

    bucket: datetime
    point: str
    avg: float | None
    min: float | None
    max: float | None
    count: int
    last: float | None


class TelemetrySample(_Row):
    """One stored sample: ``value`` (numbers and booleans) or ``value_text`` (enum states and other text)."""

    ts: datetime
    point: str
    value: float | None
    value_text: str | None
    quality: Quality
