"""A profile with its repeated rows expanded into concrete points and events.

The edge, the simulators and the backend work on these; the YAML form stays compact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from contract.messages import Scalar, Severity
from device_profiles.schema import (
    REGISTER_COUNT,
    ByteOrder,
    CommandSpec,
    Condition,
    MessageMatch,
    MqttPointSpec,
    PlausibleRange,
    Profile,
    RegisterSpec,
    Repeat,
)
from device_profiles.values import PointType, convert


@dataclass(frozen=True, slots=True)
class ConcretePoint:
    name: str
    label: str | None
    register: RegisterSpec | None
    mqtt: MqttPointSpec | None
    unit: str | None
    enum: dict[int | str, str] | None
    access: str
    deadband: float | None
    byte_order: ByteOrder = "big"
    word_order: ByteOrder = "big"
    n: int | None = None
    range: PlausibleRange | None = None
    precision: int | None = None

    def rounded(self, value: Scalar) -> Scalar:
        """The value at the point's precision (floats only; everything else as it is)."""
        if self.precision is None or not isinstance(value, float):
            return value
        return round(value, self.precision)

    def display(self, value: Scalar | None) -> str:
        """The value as an installer reads it: floats at the point's precision (``0.35``, not
        ``0.3499999940395355``)."""
        if value is None:
            return ""
        if self.precision is not None and isinstance(value, float) and math.isfinite(value):
            return f"{value:.{self.precision}f}"
        return str(value)

    def implausible(self, value: Scalar | None) -> str | None:
        """Why ``value`` cannot be a real reading of this point (outside its plausible range, or not a finite
        number), with what to check; None when it is plausible or the point has no range."""
        if self.range is None or value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        shown = _plain(value)
        if not math.isfinite(value):
            return f"{shown} is not a finite number — {self.check_hint()}"
        if self.range.min is not None and value < self.range.min:
            return f"{shown} is below the plausible minimum {float(self.range.min)} — {self.check_hint()}"
        if self.range.max is not None and value > self.range.max:
            return f"{shown} is above the plausible maximum {float(self.range.max)} — {self.check_hint()}"
        return None

    def check_hint(self) -> str:
        """What usually makes a reading implausible, for this kind of point."""
        if self.register is None:
            return "check the JSON path and the unit the device sends"
        if self.register.count > 1:
            return "check word_order/byte_order/scale"
        return "check byte_order/type/scale"

    @property
    def source(self) -> str:
        """Where the value comes from, as a vendor's table says it: ``holding 100`` (a float32 spans 100-101),
        ``bit 3 of holding 40``, ``bits 4-7 of input 12``, or the MQTT topic and path."""
        if self.register is not None:
            r = self.register
            where = f"{r.table} {r.address}"
            if r.bit is not None:
                return f"bit {r.bit} of {where}"
            if r.bits is not None:
                return f"bits {r.bits.start}-{r.bits.start + r.bits.length - 1} of {where}"
            return where
        if self.mqtt is not None:
            return f"{self.mqtt.topic} {self.mqtt.path}"
        return ""
    type: PointType | None = None

    def convert(self, raw: Scalar) -> Scalar:
        """The raw value (MQTT JSON value, or a register's decoded number) as this point's type; raise
        :class:`device_profiles.values.ConversionError` with the reason when it does not convert."""
        scale, offset = (self.mqtt.scale, self.mqtt.offset) if self.mqtt is not None else (1.0, 0.0)
        return convert(raw, self.type, enum=self.enum, scale=scale, offset=offset)

    @property
    def register_enum(self) -> dict[int, str] | None:
        """The enum of a register point (integer keys, checked at load)."""
        return None if self.enum is None else {int(k): v for k, v in self.enum.items()}

    @property
    def span(self) -> tuple[int, int]:
        """First address and count of registers (or bits) this point reads."""
        assert self.register is not None
        return self.register.address, self.register.count


@dataclass(frozen=True, slots=True)
class ConcreteEvent:
    key: str
    type: str
    label: str | None
    severity: Severity
    life_safety: bool
    when: Condition | None
    clear: Condition | None
    for_s: float
    clear_for_s: float
    on_message: MessageMatch | None
    detail: dict[str, Scalar] = field(default_factory=dict)
    n: int | None = None
    readings: tuple[str, ...] = ()


def _plain(value: float) -> str:
    """A number in a reason: short, and never ``0.0`` for 4.17e-08."""
    if (value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e7)) or not math.isfinite(value):
        return f"{value:.3g}"
    return f"{value:.6g}"


def _instances(repeat: Repeat | None) -> list[tuple[int | None, int]]:
    """(n, index) pairs for a repeat; a single (None, 0) without one."""
    if repeat is None:
        return [(None, 0)]
    return [(repeat.start + i, i) for i in range(repeat.count)]


def _subst(text: str, n: int | None) -> str:
    return text if n is None else text.replace("{n}", str(n))


def _subst_scalar(value: Scalar, n: int | None) -> Scalar:
    if n is not None and value == "{n}":
        return n
    return _subst(value, n) if isinstance(value, str) else value


def substitute_condition(cond: Condition, n: int | None) -> Condition:
    if n is None:
        return cond
    update: dict[str, object] = {}
    if cond.point is not None:
        update["point"] = _subst(cond.point, n)
    if cond.all is not None:
        update["all"] = [substitute_condition(c, n) for c in cond.all]
    if cond.any is not None:
        update["any"] = [substitute_condition(c, n) for c in cond.any]
    return cond.model_copy(update=update)


class CompiledProfile:
    """Concrete points, events and commands of one profile."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    @property
    def id(self) -> str:
        return self.profile.id

    @cached_property
    def points(self) -> list[ConcretePoint]:
        out: list[ConcretePoint] = []
        mb = self.profile.modbus
        for p in self.profile.points:
            for n, i in _instances(p.repeat):
                reg = p.reg
                if reg is not None and p.repeat is not None:
                    reg = reg.model_copy(update={"address": reg.address + i * p.repeat.stride})
                mq = p.mqtt
                if mq is not None and n is not None:
                    mq = mq.model_copy(update={"topic": _subst(mq.topic, n), "path": _subst(mq.path, n)})
                out.append(
                    ConcretePoint(
                        name=_subst(p.name, n), label=_subst(p.label, n) if p.label else None, register=reg,
                        mqtt=mq, unit=p.unit, enum=p.enum,
                        access=p.access, deadband=p.deadband,
                        byte_order=(reg.byte_order if reg and reg.byte_order else (mb.byte_order if mb else "big")),
                        word_order=(reg.word_order if reg and reg.word_order else (mb.word_order if mb else "big")),
                        n=n, range=p.range, precision=p.precision, type=p.type,
                    )
                )
        return out

    @cached_property
    def instances(self) -> set[int]:
        """The instance numbers (``{n}``: zones, loops) the profile's repeated events have."""
        return {e.n for e in self.events if e.n is not None}

    @cached_property
    def points_by_name(self) -> dict[str, ConcretePoint]:
        return {p.name: p for p in self.points}

    @cached_property
    def events(self) -> list[ConcreteEvent]:
        out: list[ConcreteEvent] = []
        for e in self.profile.events:
            for n, _ in _instances(e.repeat):
                detail = {k: _subst_scalar(v, n) for k, v in e.detail.items()}
                out.append(
                    ConcreteEvent(
                        key=e.key_for(n),
                        type=e.type, label=_subst(e.label, n) if e.label else None, severity=e.severity,
                        life_safety=e.life_safety,
                        when=substitute_condition(e.when, n) if e.when else None,
                        clear=substitute_condition(e.clear, n) if e.clear else None,
                        for_s=e.for_s, clear_for_s=e.clear_for_s, on_message=e.on_message, detail=detail, n=n,
                        readings=tuple(_subst(r, n) for r in e.readings),
                    )
                )
        return out

    def command(self, name: str) -> CommandSpec | None:
        return self.profile.command(name)

    def readings_detail(self, event: ConcreteEvent, values: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """The event's ``readings`` (point → current value at its precision) for its detail; points with no
        value yet are left out."""
        out: dict[str, Scalar] = {}
        for name in event.readings:
            if name in values:
                point = self.points_by_name.get(name)
                out[name] = point.rounded(values[name]) if point is not None else values[name]
        return out

    def register_extent(self, table: str) -> int:
        """One past the highest address any point uses in ``table`` (0 when none)."""
        end = 0
        for p in self.points:
            if p.register is not None and p.register.table == table:
                end = max(end, p.register.address + p.register.count)
        for c in self.profile.commands:
            for w in c.modbus or []:
                if w.table == table:
                    end = max(end, w.address + (1 if w.table == "coil" else REGISTER_COUNT[w.type]))
        return end
