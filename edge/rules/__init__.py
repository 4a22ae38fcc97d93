"""Edge rules: the clock, the outbox-facing emitter, report-by-exception and event tracking per device."""

from contract.clock import Clock, SystemClock
from edge.rules.device import DeviceRules, Liveness
from edge.rules.emitter import EmittedEvent, Emitter, OutboxLike
from edge.rules.telemetry import TelemetryBatcher

__all__ = [
    "Clock",
    "DeviceRules",
    "EmittedEvent",
    "Emitter",
    "Liveness",
    "OutboxLike",
    "SystemClock",
    "TelemetryBatcher",
]
