"""Encode messages to bytes and decode bytes back, refusing anything off-contract with a reason."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import ValidationError

from contract.errors import MalformedMessage, UnsupportedVersion
from contract.messages import (
    ACCEPTED_VERSIONS,
    CONTRACT_VERSION,
    Command,
    CommandAck,
    Envelope,
    Event,
    GatewayConfigPush,
    GatewayState,
    HealthReport,
    Message,
    Receipt,
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
    TopicKind.RECEIPT: Receipt,
    TopicKind.CONFIG: GatewayConfigPush,
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
    """Decode ``payload`` as ``model``; raise :class:`UnsupportedVersion` or :class:`MalformedMessage`.

    The current version validates straight from the bytes; a version 1 payload is upgraded first
    (:func:`upgrade_v1`), so gateways not yet updated keep delivering their alarms.
    """
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raw = _raw_object(payload, topic)
        if raw.get("v") == 1:
            try:
                return model.model_validate(upgrade_v1(raw))
            except ValidationError as exc1:
                raise MalformedMessage(
                    f"{model.__name__} (v1, upgraded): {describe_validation_error(exc1)}", topic=topic
                ) from None
        raise MalformedMessage(f"{model.__name__}: {describe_validation_error(exc)}", topic=topic) from None


def upgrade_v1(raw: dict[str, object]) -> dict[str, object]:
    """A version 1 message as version 2: ``v`` 2, ``epoch`` 0 (unknown), and for an event the key its
    version 1 identity implied (the event type: one alarm per device and type, as version 1 backends kept)."""
    out = dict(raw)
    out["v"] = CONTRACT_VERSION
    out.setdefault("epoch", 0)
    if out.get("kind") == "event" and "key" not in out and isinstance(out.get("event"), str):
        out["key"] = out["event"]
    return out


def _raw_object(payload: bytes | str, topic: str | None) -> dict[str, object]:
    """The payload as a JSON object; a clear error if it is not JSON, not an object, or of another version."""
    try:
        raw = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"payload is not JSON: {exc}", topic=topic) from None
    except RecursionError:
        raise MalformedMessage("payload is nested too deeply", topic=topic) from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise MalformedMessage(f"payload has an unreadable value: {str(exc)[:120]}", topic=topic) from None
    if not isinstance(raw, dict):
        raise MalformedMessage(f"payload must be a JSON object, got {type(raw).__name__}", topic=topic)
    if "v" not in raw:
        raise MalformedMessage("missing contract version field 'v'", topic=topic)
    if raw["v"] not in ACCEPTED_VERSIONS or isinstance(raw["v"], bool):
        raise UnsupportedVersion(
            f"contract version {raw['v']!r} is not supported (this software speaks v{CONTRACT_VERSION} "
            f"and accepts {', '.join(f'v{v}' for v in ACCEPTED_VERSIONS)})",
            topic=topic,
        )
    return raw


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
