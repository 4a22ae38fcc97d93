"""Decode one MQTT message of a device into typed point values, alike on the gateway (the bridge) and in a
profile's examples (``profile validate``), so what validates is what runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from contract.messages import Scalar
from device_profiles.compiled import ConcretePoint
from device_profiles.mqtt_mapping import Missing, extract, extract_scalar
from device_profiles.schema import TopicTimestamp
from device_profiles.values import ConversionError


@dataclass(frozen=True, slots=True)
class Invalid:
    """A value the device sent that does not convert to its point's type."""

    raw: Scalar
    reason: str


@dataclass(slots=True)
class Decoded:
    values: dict[str, Scalar] = field(default_factory=dict)
    invalid: dict[str, Invalid] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def decode_points(points: Iterable[ConcretePoint], data: Any) -> Decoded:
    """The points of one message: typed values, values that do not convert (with the reason), and points the
    message does not carry (a message may carry a subset)."""
    out = Decoded()
    for p in points:
        assert p.mqtt is not None
        try:
            raw = extract_scalar(data, p.mqtt.path)
        except Missing:
            out.missing.append(p.name)
            continue
        try:
            out.values[p.name] = p.convert(raw)
        except ConversionError as exc:
            out.invalid[p.name] = Invalid(raw, str(exc))
    return out


def device_time(spec: TopicTimestamp, data: Any) -> datetime:
    """The device's time stamp in a message; raise :class:`Missing` or :class:`ConversionError`."""
    raw = extract(data, spec.path)
    if spec.unit == "iso":
        if not isinstance(raw, str):
            raise ConversionError(f"time stamp {raw!r} is not an ISO 8601 text")
        try:
            ts = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise ConversionError(f"time stamp {raw!r} is not ISO 8601") from None
        return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ConversionError(f"time stamp {raw!r} is not a number")
    try:
        number = float(raw)
    except ValueError:
        raise ConversionError(f"time stamp {raw!r} is not a number") from None
    seconds = number / 1000.0 if spec.unit == "ms" else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ConversionError(f"time stamp {raw!r} ({spec.unit}) is out of range") from None


def checked_time(spec: TopicTimestamp, data: Any, now: datetime) -> tuple[datetime, str | None]:
    """The observation time to use and, when the device's own could not be used, why (then: ``now``)."""
    try:
        ts = device_time(spec, data)
    except Missing:
        return now, f"no time stamp at {spec.path}"
    except ConversionError as exc:
        return now, str(exc)
    skew = ts - now
    if abs(skew) > timedelta(seconds=spec.max_skew_s):
        return now, f"device clock is {skew.total_seconds():+.0f} s off the gateway's (window {spec.max_skew_s:g} s)"
    return ts, None
