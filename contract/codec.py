"""Encode messages to bytes and decode bytes back, refusing anything off-contract with a reason."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import ValidationError

from contract.errors import MalformedMessage, UnsupportedVersion
from contract.messages import (
    CONTRACT_VERSION,
    Command,
    CommandAck,
    Envelope,
    Event,
    GatewayState,
    HealthReport,
    Message,
    TelemetryBatch,
)
from contract.topics import Topic, TopicKind

M = TypeVar("M", bound=Envelope)

MODEL_FOR_KIND: dict[TopicKind, type[Envelope]] = {
    TopicKind.TELEMETRY: TelemetryBatch,
    TopicKind.EVENT: Event,
    TopicKind.STATE: GatewayState,
    TopicKind.HEALTH: HealthReport,
    TopicKind.CMD: Command,
    TopicKind.CMD_ACK: CommandAck,
}

KIND_FOR_MODEL: dict[type[Envelope], TopicKind] = {model: kind for kind, model in MODEL_FOR_KIND.items()}


def encode(message: Message) -> bytes:
    """The wire form of a message (compact JSON, UTF-8)."""
    return message.model_dump_json(exclude_none=True).encode()


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """One line naming each offending field, e.g. ``points[0].ts: Input should be a valid datetime``."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ""
        for item in err["loc"]:
            loc += f"[{item}]" if isinstance(item, int) else (f".{item}" if loc else str(item))
        parts.append(f"{loc or '<root>'}: {err['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def decode_as(model: type[M], payload: bytes | str, *, topic: str | None = None) -> M:
    """Decode ``payload`` as ``model``; raise :class:`UnsupportedVersion` or :class:`MalformedMessage`."""
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        _raise_version_error(payload, topic)
        raise MalformedMessage(f"{model.__name__}: {describe_validation_error(exc)}", topic=topic) from None


def _raise_version_error(payload: bytes | str, topic: str | None) -> None:
    """Raise a clear error if the payload is not JSON, not an object, or of another version."""
    try:
        raw = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"payload is not JSON: {exc}", topic=topic) from None
    if not isinstance(raw, dict):
        raise MalformedMessage(f"payload must be a JSON object, got {type(raw).__name__}", topic=topic)
    if "v" not in raw:
        raise MalformedMessage("missing contract version field 'v'", topic=topic)
    if raw["v"] != CONTRACT_VERSION:
        raise UnsupportedVersion(
            f"contract version {raw['v']!r} is not supported (this software speaks v{CONTRACT_VERSION})",
            topic=topic,
        )


def decode(topic: str, payload: bytes | str) -> tuple[Topic, Message]:
    """Parse the topic, decode the payload with the model its kind calls for, and cross-check them.

    The gateway id in the payload must match the topic's, so a gateway cannot speak for another.
    """
    parsed = Topic.parse(topic)
    model = MODEL_FOR_KIND[parsed.kind]
    message = decode_as(model, payload, topic=topic)
    if message.gw != parsed.gateway:
        raise MalformedMessage(
            f"gw {message.gw!r} in the payload does not match gateway {parsed.gateway!r} in the topic",
            topic=topic,
        )
    return parsed, message  # type: ignore[return-value]


def topic_for(site: str, message: Message) -> str:
    """The topic a message is published on."""
    return str(Topic.build(site, message.gw, KIND_FOR_MODEL[type(message)]))
