"""Priority lanes of the outbox: which lane a message goes in, and the order lanes drain in."""

from __future__ import annotations

from typing import Literal

from contract.messages import Command, CommandAck, Event, GatewayState, HealthReport, Message, TelemetryBatch

Lane = Literal["alarm", "event", "telemetry"]

LANES: tuple[Lane, ...] = ("alarm", "event", "telemetry")
"""Drain order: every alarm before any event, every event before any telemetry."""

LANE_PRIORITY: dict[Lane, int] = {lane: index for index, lane in enumerate(LANES)}


def lane_for(message: Message) -> Lane:
    """The lane a message is queued in.

    A life-safety :class:`Event` goes in ``alarm``; other events, command acks and gateway states in
    ``event``; telemetry batches and health reports in ``telemetry`` (the only lane ever dropped).
    """
    if isinstance(message, Event):
        return "alarm" if message.life_safety else "event"
    if isinstance(message, CommandAck | GatewayState):
        return "event"
    if isinstance(message, TelemetryBatch | HealthReport):
        return "telemetry"
    if isinstance(message, Command):
        raise TypeError("a Command travels down from the backend; the gateway never queues one for the uplink")
    raise TypeError(f"no outbox lane for {type(message).__name__}")
