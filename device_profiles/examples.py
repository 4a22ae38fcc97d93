"""Run a profile's examples: each sample payload (or register block) is decoded exactly as the gateway
decodes it, and the values, the values that must not convert, and the events active on that sample alone are
compared with what the example says. The loader runs them, so ``xiaoqu profile validate`` fails at the
example's line when a path, a type or an enum is wrong — before the device is in the field."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from contract.messages import Scalar
from device_profiles import modbus_codec
from device_profiles.compiled import CompiledProfile, ConcretePoint
from device_profiles.conditions import evaluate
from device_profiles.mqtt_decode import decode_points
from device_profiles.mqtt_mapping import Missing, extract, fill_topic
from device_profiles.schema import Example, Table
from device_profiles.values import ConversionError

_DEVICE = "example-device"


@dataclass(frozen=True, slots=True)
class ExampleProblem:
    index: int
    path: tuple[str | int, ...]
    """Where in ``examples[index]`` the problem is (for the line number)."""
    message: str


def _same(a: Scalar, b: Scalar) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _topic(compiled: CompiledProfile, template: str) -> str:
    settings = compiled.profile.mqtt
    prefix = fill_topic(settings.prefix if settings else "xqdev/{device_id}", prefix="", device_id=_DEVICE)
    return fill_topic(template, prefix=prefix, device_id=_DEVICE)


def _decode_mqtt(compiled: CompiledProfile, ex: Example, i: int,
                 problems: list[ExampleProblem]) -> tuple[dict[str, Scalar], dict[str, str], set[str]]:
    assert ex.topic is not None and ex.payload is not None
    data = ex.payload
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            problems.append(ExampleProblem(i, ("payload",), f"payload is not JSON: {exc}"))
            return {}, {}, set()
    topic = _topic(compiled, ex.topic)
    points = [p for p in compiled.points if p.mqtt is not None and _topic(compiled, p.mqtt.topic) == topic]
    decoded = decode_points(points, data)
    momentary: set[str] = set()
    for e in compiled.events:
        match = e.on_message
        if match is None or _topic(compiled, match.topic) != topic:
            continue
        if match.path is not None:
            try:
                value = extract(data, match.path)
            except Missing:
                continue
            if match.eq is not None and value != match.eq:
                continue
        momentary.add(e.type)
    return decoded.values, {k: v.reason for k, v in decoded.invalid.items()}, momentary


def _decode_registers(compiled: CompiledProfile, ex: Example) -> tuple[dict[str, Scalar], dict[str, str]]:
    assert ex.registers is not None
    values: dict[str, Scalar] = {}
    invalid: dict[str, str] = {}
    for p in compiled.points:
        words = _words(p, ex.registers)
        if words is None:
            continue
        assert p.register is not None
        try:
            raw = modbus_codec.decode(p.register, words, p.byte_order, p.word_order)
            values[p.name] = p.convert(raw)
        except (modbus_codec.CodecError, ConversionError) as exc:
            invalid[p.name] = str(exc)
    return values, invalid


def _words(p: ConcretePoint, registers: Mapping[Table, dict[int, list[int]]]) -> list[int] | None:
    """The words a point spans, from the example's blocks (None when no block covers it)."""
    if p.register is None:
        return None
    address, count = p.span
    for start, block in registers.get(p.register.table, {}).items():
        if start <= address and address + count <= start + len(block):
            return block[address - start : address - start + count]
    return None


def run_examples(compiled: CompiledProfile) -> list[ExampleProblem]:
    """Every way the profile's examples fail (empty when they all decode as they say)."""
    problems: list[ExampleProblem] = []
    names = compiled.points_by_name
    for i, ex in enumerate(compiled.profile.examples):
        momentary: set[str] = set()
        if ex.payload is not None:
            values, invalid, momentary = _decode_mqtt(compiled, ex, i, problems)
        else:
            values, invalid = _decode_registers(compiled, ex)
        for name, want in ex.expect.values.items():
            where = ("expect", "values", name)
            if name not in names:
                problems.append(ExampleProblem(i, where, f"the profile has no point {name!r}"))
            elif name in invalid:
                problems.append(ExampleProblem(i, where, f"expected {want!r}; it does not convert: {invalid[name]}"))
            elif name not in values:
                problems.append(ExampleProblem(i, where, f"expected {want!r}, but the sample does not carry {name}"))
            elif not _same(values[name], want):
                problems.append(ExampleProblem(i, where, f"expected {want!r}, decoded {values[name]!r}"))
        for j, name in enumerate(ex.expect.bad):
            if name not in invalid:
                got = f"decoded {values[name]!r}" if name in values else "the sample does not carry it"
                problems.append(ExampleProblem(i, ("expect", "bad", j), f"expected {name} not to convert; {got}"))
        if ex.expect.events is not None:
            active = {e.type for e in compiled.events if e.when is not None and evaluate(e.when, values) is True}
            active |= momentary
            want_events = set(ex.expect.events)
            if active != want_events:
                missing = ", ".join(sorted(want_events - active)) or "none"
                extra = ", ".join(sorted(active - want_events)) or "none"
                problems.append(ExampleProblem(i, ("expect", "events"),
                                               f"events differ: expected but not raised: {missing}; "
                                               f"raised but not expected: {extra}"))
    return problems
