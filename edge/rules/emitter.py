"""Builds contract messages (seq, gw, ts) and puts them in the outbox; tells local listeners about events.

The outbox decides the lane from the message (life-safety events go first); the emitter only builds
messages and never blocks: ``Outbox.put`` is synchronous and durable when it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from contract.messages import (
    CommandAck,
    CommandStatus,
    Event,
    EvidenceRef,
    GatewayHealth,
    HealthReport,
    Location,
    Message,
    PointSample,
    ProbePoint,
    Scalar,
    Severity,
    TelemetryBatch,
)
from edge.rules.active import ActiveEvent, ActiveEventStore

logger = logging.getLogger(__name__)

LaneName = Literal["alarm", "event", "telemetry"]


class OutboxLike(Protocol):
    """The part of ``edge.uplink.Outbox`` the gateway uses."""

    @property
    def epoch(self) -> int: ...

    def next_seq(self) -> int: ...

    def put(self, message: Message) -> None: ...

    def depth(self) -> dict[LaneName, int]: ...

    def bytes_used(self) -> int: ...

    def dropped_telemetry_total(self) -> int: ...


@dataclass(frozen=True, slots=True)
class EmittedEvent:
    """What local listeners (linkage, metrics) see of an event that was put in the outbox."""

    device: str
    key: str
    event: str
    severity: Severity
    active: bool
    life_safety: bool
    ts: datetime
    detail: dict[str, Scalar] = field(default_factory=dict)
    location: Location | None = None
    """The zone's place when the gateway config maps it (None: the device's own)."""


EventListener = Callable[[EmittedEvent], None]


class Emitter:
    def __init__(self, outbox: OutboxLike, gateway_id: str, wake: Callable[[], None] | None = None) -> None:
        self.outbox = outbox
        self.gateway_id = gateway_id
        self._wake = wake
        self._listeners: list[EventListener] = []
        self.events_total: dict[str, int] = {}
        self.active_store: ActiveEventStore | None = None
        """Where stateful raises are recorded until their clear (None: not kept; tests, tools)."""

    def set_wake(self, wake: Callable[[], None] | None) -> None:
        self._wake = wake

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def _put(self, message: Message) -> None:
        self.outbox.put(message)
        if self._wake is not None:
            self._wake()

    def event(
        self,
        device: str,
        event: str,
        *,
        severity: Severity,
        active: bool,
        ts: datetime,
        life_safety: bool = False,
        key: str,
        detail: Mapping[str, Scalar] | None = None,
        evidence: Sequence[EvidenceRef] = (),
        location: Location | None = None,
        stateful: bool = False,
    ) -> Event:
        """Put one event in the outbox. ``key`` identifies the condition at the device (the profile row and
        instance, e.g. ``fire.alarm#12``; the backend keeps one alarm per device and key, and both linkage
        sides count (device, key) as one signal); ``location`` is the condition's place when it is not the
        device's (a panel zone's floor). ``stateful``: a raise that a clear will end (profile conditions,
        offline, bad value), recorded in ``active_store`` so a restarted gateway can still clear it; momentary
        events are not. Any clear forgets its (device, key)."""
        store = self.active_store
        if store is not None and active and stateful:  # before the outbox: a crash leaves one clear too many
            store.raised(ActiveEvent(device, key, event, severity, life_safety, location))
        msg = Event(
            gw=self.gateway_id, epoch=self.outbox.epoch, seq=self.outbox.next_seq(), ts=ts, device=device,
            event=event, key=key, location=location, severity=severity, active=active, life_safety=life_safety,
            detail=dict(detail or {}),
            evidence=list(evidence),
        )
        self._put(msg)
        if store is not None and not active:  # after the outbox: the clear is durable before it is forgotten
            store.cleared(device, key)
        self.events_total[severity] = self.events_total.get(severity, 0) + 1
        logger.info("event %s %s on %s (%s%s)", key, "raised" if active else "cleared", device, severity,
                    ", life-safety" if life_safety else "")
        seen = EmittedEvent(device, key, event, severity, active, life_safety, ts, dict(msg.detail), location)
        for listener in self._listeners:
            listener(seen)
        return msg

    def telemetry(self, points: list[PointSample], ts: datetime) -> TelemetryBatch:
        msg = TelemetryBatch(gw=self.gateway_id, epoch=self.outbox.epoch, seq=self.outbox.next_seq(), ts=ts,
                             points=points)
        self._put(msg)
        return msg

    def ack(
        self, command_id: UUID, device: str, status: CommandStatus, ts: datetime, reason: str | None = None,
        detail: Mapping[str, Scalar] | None = None, probe: list[ProbePoint] | None = None,
    ) -> CommandAck:
        msg = CommandAck(
            gw=self.gateway_id, epoch=self.outbox.epoch, seq=self.outbox.next_seq(), ts=ts, command_id=command_id,
            device=device,
            status=status, reason=reason, detail=dict(detail or {}), probe=probe,
        )
        self._put(msg)
        return msg

    def health(self, health: GatewayHealth, ts: datetime) -> HealthReport:
        msg = HealthReport(gw=self.gateway_id, epoch=self.outbox.epoch, seq=self.outbox.next_seq(), ts=ts,
                           health=health)
        self._put(msg)
        return msg
