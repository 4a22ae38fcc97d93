"""A profile with its repeated rows expanded into concrete points and events.

The edge, the simulators and the backend work on these; the YAML form stays compact.
"""

from __future__ import annotations

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
    Profile,
    RegisterSpec,
    Repeat,
)


@dataclass(frozen=True, slots=True)
class ConcretePoint:
    name: str
    label: str | None
    register: RegisterSpec | None
    mqtt: MqttPointSpec | None
    unit: str | None
    enum: dict[int, str] | None
    access: str
    deadband: float | None
    byte_order: ByteOrder = "big"
    word_order: ByteOrder = "big"
    n: int | None = None

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
                        name=_subst(p.name, n), label=p.label, register=reg, mqtt=mq, unit=p.unit, enum=p.enum,
                        access=p.access, deadband=p.deadband,
                        byte_order=(reg.byte_order if reg and reg.byte_order else (mb.byte_order if mb else "big")),
                        word_order=(reg.word_order if reg and reg.word_order else (mb.word_order if mb else "big")),
                        n=n,
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
                        type=e.type, label=e.label, severity=e.severity, life_safety=e.life_safety,
                        when=substitute_condition(e.when, n) if e.when else None,
                        clear=substitute_condition(e.clear, n) if e.clear else None,
                        for_s=e.for_s, clear_for_s=e.clear_for_s, on_message=e.on_message, detail=detail, n=n,
                    )
                )
        return out

    def command(self, name: str) -> CommandSpec | None:
        return self.profile.command(name)

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
