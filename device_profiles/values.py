"""Typed point values: what a device sends (a JSON number, a string ``"12.5"``, a register's raw number)
converted to the point's declared type, alike for MQTT and Modbus.

``type`` is one of ``float | int | bool | string | enum``; numbers may come as strings; ``scale`` and
``offset`` (MQTT points; Modbus points have them on the register) turn a raw number into an engineering
value; an ``enum`` maps raw values (string or integer keys; ``"1"`` finds key ``1`` and ``1`` finds key
``"1"``) to state names. A value that does not convert raises :class:`ConversionError` with the reason:
the caller stores it with quality ``bad`` and that reason, never as a silent string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from contract.messages import Scalar

PointType = Literal["float", "int", "bool", "string", "enum"]
EnumMap = Mapping[int | str, str]

_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


class ConversionError(ValueError):
    """A raw value that does not convert to the point's type; ``str()`` is the reason."""


def _number(raw: Scalar) -> float | int:
    if isinstance(raw, bool):
        raise ConversionError(f"{raw!r} is a bool, not a number")
    if isinstance(raw, int | float):
        value: float | int = raw
    else:
        text = raw.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ConversionError(f"{raw!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConversionError(f"{raw!r} is not a finite number")
    return value


def _scaled(raw: Scalar, scale: float, offset: float) -> float | int:
    value = _number(raw)
    if scale == 1.0 and offset == 0.0:
        return value
    return value * scale + offset


def enum_lookup(enum: EnumMap, raw: Scalar) -> str:
    """The state name for ``raw``; integer and string keys match either form of the value."""
    candidates: list[int | str] = []
    if isinstance(raw, bool):
        candidates = [int(raw), str(raw).lower()]
    elif isinstance(raw, int):
        candidates = [raw, str(raw)]
    elif isinstance(raw, float):
        candidates = [int(raw), str(int(raw))] if raw.is_integer() else [str(raw)]
    else:
        candidates = [raw, raw.strip()]
        try:
            candidates.append(int(raw.strip()))
        except ValueError:
            pass
    for key in candidates:
        if key in enum:
            return enum[key]
    known = ", ".join(str(k) for k in enum)
    raise ConversionError(f"{raw!r} is not one of the enum's values ({known})")


def convert(raw: Scalar, type_: PointType | None, *, enum: EnumMap | None = None, scale: float = 1.0,
            offset: float = 0.0) -> Scalar:
    """``raw`` as the point's type; without a type the value is kept as the device sent it (scaled if it is a
    number and a scale or offset is set)."""
    if type_ is None:
        if enum is not None:
            return enum_lookup(enum, raw)
        if (scale != 1.0 or offset != 0.0) and not isinstance(raw, bool | str):
            return _scaled(raw, scale, offset)
        return raw
    if type_ == "enum":
        if enum is None:
            raise ConversionError("type enum needs an enum map")
        return enum_lookup(enum, raw)
    if type_ == "float":
        return float(_scaled(raw, scale, offset))
    if type_ == "int":
        value = _scaled(raw, scale, offset)
        if isinstance(value, float):
            if abs(value - round(value)) > 1e-9:
                raise ConversionError(f"{raw!r} is not a whole number")
            return round(value)
        return value
    if type_ == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float):
            if raw in (0, 1):
                return bool(raw)
            raise ConversionError(f"{raw!r} is not a bool (0 or 1)")
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConversionError(f"{raw!r} is not a bool (true/false, 1/0, on/off, yes/no)")
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).lower() if isinstance(raw, bool) else str(raw)
