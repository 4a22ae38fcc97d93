"""The device profile schema: one YAML file describes one device type (vendor/model).

A profile says how to talk to the device (protocol and parameters), which points it has (Modbus
registers or MQTT topic + JSON path), which events derive from those points (declarative conditions,
no ``eval``), which commands it accepts (Modbus writes or MQTT publishes, with validated arguments) and
when it counts as offline. Every model refuses unknown keys.

Points, events and commands may be *repeated* (``repeat: {count: 18}``): ``{n}`` in names, addresses
offsets and details is replaced by the instance number — the way a vendor's table lists "zone n state
at 30100 + n".
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from contract.base import StrictModel
from contract.messages import Scalar, Severity
from device_profiles.camera import CameraSpec
from device_profiles.mqtt_mapping import check_path
from device_profiles.values import PointType

ProfileId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
PointName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\{n\})?[a-z0-9_]*(\.[a-z0-9_{}]+)*$")]
EventType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")]
CommandName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
JsonPath = Annotated[str, AfterValidator(check_path)]
"""An RFC 9535 JSONPath query, compiled when the profile is loaded (``$.data[?@.k=='gas'].v``)."""
EventKeyTemplate = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:#@/{}-]{1,120}$")]
"""An event row's explicit key; ``{n}`` is replaced by the instance (``elevator.entrapment.between_floors``)."""


class LocatedError(ValueError):
    """A validation error about a nested item: ``loc`` is appended to where pydantic reports it, so the
    loader can name the line of that item (``events[3]``) rather than the line of the enclosing model."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc

DataType = Literal["bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
Table = Literal["coil", "discrete_input", "holding", "input"]
ByteOrder = Literal["big", "little"]

REGISTER_COUNT: dict[str, int] = {
    "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4, "float32": 2, "float64": 4,
}


class Repeat(StrictModel):
    """Expand one table row into ``count`` rows; ``{n}`` runs from ``start``."""

    count: int = Field(ge=1, le=4096)
    start: int = 1
    stride: int = Field(default=1, ge=0, description="address step between instances (registers or bits)")


class BitField(StrictModel):
    start: int = Field(ge=0, le=63)
    length: int = Field(ge=1, le=64)


class RegisterSpec(StrictModel):
    table: Table
    address: int = Field(ge=0, le=65535, description="protocol (0-based) address")
    type: DataType = "uint16"
    byte_order: ByteOrder | None = Field(default=None, description="within a register; default from the profile")
    word_order: ByteOrder | None = Field(default=None, description="across registers; default from the profile")
    bit: int | None = Field(default=None, ge=0, le=63, description="take one bit of the value → bool")
    bits: BitField | None = Field(default=None, description="take a bit field of the value → int")
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> RegisterSpec:
        if self.table in ("coil", "discrete_input") and self.type != "bool":
            raise ValueError(f"a {self.table} holds one bit: type must be bool, not {self.type}")
        if self.bit is not None and self.bits is not None:
            raise ValueError("use either bit or bits, not both")
        width = 16 * REGISTER_COUNT[self.type]
        if self.bit is not None and self.bit >= width:
            raise ValueError(f"bit {self.bit} is outside a {self.type} ({width} bits)")
        if self.bits is not None and self.bits.start + self.bits.length > width:
            raise ValueError(f"bits {self.bits.start}+{self.bits.length} exceed a {self.type} ({width} bits)")
        if self.type.startswith("float") and (self.bit is not None or self.bits is not None):
            raise ValueError("bit fields need an integer type")
        return self

    @property
    def count(self) -> int:
        """Registers (or bits, for coils/discrete inputs) this point occupies."""
        return 1 if self.table in ("coil", "discrete_input") else REGISTER_COUNT[self.type]


class MqttPointSpec(StrictModel):
    topic: str = Field(description="topic template; {prefix} and {device_id} are filled in")
    path: JsonPath = Field(description="RFC 9535 JSONPath into the payload, e.g. $.battery or $.data[?@.k=='gas'].v")
    scale: float = Field(default=1.0, description="engineering value = raw number × scale + offset")
    offset: float = 0.0


class PlausibleRange(StrictModel):
    """The values a working device can report (a 0–1.6 MPa transmitter never reads 4.17e-08 or 1.2e+38): the
    installer's probe fails a value outside it, the sign of a wrong word order, byte order, type or scale."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PlausibleRange:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class Point(StrictModel):
    name: PointName
    label: str | None = Field(default=None, description="the vendor's name for it, e.g. 主电故障")
    reg: RegisterSpec | None = Field(default=None, alias="register")
    mqtt: MqttPointSpec | None = None
    unit: str | None = None
    type: PointType | None = Field(
        default=None, description="float | int | bool | string | enum: what the raw value (number, numeric string, "
        "register) is converted to; unset = as the device sends it (Modbus: as the register decodes)"
    )
    enum: dict[int | str, str] | None = Field(
        default=None, description="raw value (integer or string key) → state name"
    )
    access: Literal["r", "rw"] = "r"
    deadband: float | None = Field(default=None, ge=0, description="report by exception beyond this change")
    range: PlausibleRange | None = Field(default=None, description="plausible values (engineering units); the probe "
                                         "fails a value outside it")
    precision: int | None = Field(default=None, ge=0, le=9, description="decimals shown (probe, event detail)")
    repeat: Repeat | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Point:
        if (self.reg is None) == (self.mqtt is None):
            raise ValueError("a point needs exactly one of register or mqtt")
        if self.repeat is not None and "{n}" not in self.name:
            raise ValueError("a repeated point's name must contain {n}")
        if self.enum is not None and self.reg is not None and self.reg.type.startswith("float"):
            raise ValueError("enum needs an integer type")
        if self.enum is not None and self.reg is not None and not all(isinstance(k, int) for k in self.enum):
            raise ValueError("a register point's enum keys are the register's integer values")
        if self.type == "enum" and not self.enum:
            raise ValueError("type enum needs an enum map (raw value → state name)")
        if self.enum is not None and self.type not in (None, "enum"):
            raise ValueError(f"an enum map makes the point's type enum, not {self.type}")
        return self


Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "bit_set", "bit_clear"]
OPS: tuple[str, ...] = ("eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "bit_set", "bit_clear")


class Condition(StrictModel):
    """``{point: zone{n}.state, eq: fire}`` — one comparison — or ``all``/``any`` of conditions."""

    point: str | None = None
    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    bit_set: int | None = Field(default=None, ge=0, le=63)
    bit_clear: int | None = Field(default=None, ge=0, le=63)
    all: list[Condition] | None = None
    any: list[Condition] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Condition:
        ops = self.ops()
        if self.all is not None or self.any is not None:
            if self.point is not None or ops or (self.all is not None and self.any is not None):
                raise ValueError("a condition is either one comparison or one of all/any")
            if not (self.all or self.any):
                raise ValueError("all/any needs at least one condition")
            return self
        if self.point is None:
            raise ValueError("a comparison needs a point")
        if len(ops) != 1:
            raise ValueError(f"a comparison needs exactly one of {', '.join(OPS)}; got {len(ops)}")
        return self

    def ops(self) -> dict[str, object]:
        values = {
            "eq": self.eq, "ne": self.ne, "gt": self.gt, "ge": self.ge, "lt": self.lt, "le": self.le,
            "in": self.in_, "not_in": self.not_in, "bit_set": self.bit_set, "bit_clear": self.bit_clear,
        }
        return {k: v for k, v in values.items() if v is not None}

    def points(self) -> set[str]:
        found = {self.point} if self.point else set()
        for sub in (self.all or []) + (self.any or []):
            found |= sub.points()
        return found


class MessageMatch(StrictModel):
    """A momentary event raised by an MQTT message: ``{topic, where: {path, eq}}``."""

    topic: str
    path: JsonPath | None = Field(default=None, description="JSON path of the field to test")
    eq: Scalar | None = None
    detail: dict[str, JsonPath] = Field(default_factory=dict, description="detail key → JSON path in the message")


class EventSpec(StrictModel):
    type: EventType
    key: EventKeyTemplate | None = Field(
        default=None,
        description="what identifies this condition at the device (the backend keeps one active alarm per device "
        "and key); default: the type, or type#{n} for a repeated row. Needed when two rows share a type",
    )
    label: str | None = None
    severity: Severity
    life_safety: bool = False
    when: Condition | None = Field(default=None, description="raise while this holds (stateful)")
    for_s: float = Field(default=0.0, ge=0, alias="for", description="hold this long before raising")
    clear: Condition | None = Field(default=None, description="clear when this holds; default: when `when` stops")
    clear_for_s: float = Field(default=0.0, ge=0, alias="clear_for")
    on_message: MessageMatch | None = Field(default=None, description="momentary event from an MQTT message")
    detail: dict[str, Scalar] = Field(default_factory=dict)
    readings: list[PointName] = Field(
        default_factory=list, description="points whose value is copied into detail when the event is raised "
        "(detail.<point> = the reading, at the point's precision)",
    )
    repeat: Repeat | None = None

    @model_validator(mode="after")
    def _one_trigger(self) -> EventSpec:
        if (self.when is None) == (self.on_message is None):
            raise ValueError("an event needs exactly one of when or on_message")
        if self.on_message is not None and (self.clear is not None or self.for_s):
            raise ValueError("a momentary (on_message) event has no for/clear")
        if self.key is not None and self.repeat is not None and "{n}" not in self.key:
            raise ValueError("a repeated event's key must contain {n} (one key per instance)")
        if self.key is not None and self.repeat is None and "{n}" in self.key:
            raise ValueError("{n} in a key needs repeat")
        return self

    def key_for(self, n: int | None) -> str:
        """The effective key of instance ``n``: the explicit key, else ``type`` or ``type#n``."""
        if self.key is not None:
            return self.key if n is None else self.key.replace("{n}", str(n))
        return self.type if n is None else f"{self.type}#{n}"


class ArgSpec(StrictModel):
    type: Literal["int", "float", "bool", "str"]
    min: float | None = None
    max: float | None = None
    choices: list[Scalar] | None = None
    default: Scalar | None = None
    required: bool = True
    unit: str | None = None


class ModbusWrite(StrictModel):
    table: Literal["coil", "holding"]
    address: int = Field(ge=0, le=65535)
    type: DataType = "uint16"
    value: Scalar = Field(description="a constant, or '{arg}' to take an argument")
    byte_order: ByteOrder | None = None
    word_order: ByteOrder | None = None
    scale: float = 1.0
    offset: float = 0.0


class MqttPublish(StrictModel):
    topic: str
    payload: dict[str, Scalar | dict[str, Scalar]] = Field(
        description="JSON object; string values '{arg}' are replaced, '{command_id}' by the command id"
    )


class CommandSpec(StrictModel):
    name: CommandName
    label: str | None = None
    args: dict[CommandName, ArgSpec] = Field(default_factory=dict)
    modbus: list[ModbusWrite] | None = Field(default=None, min_length=1)
    mqtt: MqttPublish | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=600)
    safe_to_retry: bool = Field(default=False, description="idempotent on the device: may be re-sent")

    @model_validator(mode="after")
    def _one_action(self) -> CommandSpec:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("a command needs exactly one of modbus or mqtt")
        for ref in self.referenced_args():
            if ref not in self.args and ref != "command_id":
                raise ValueError(f"'{{{ref}}}' refers to no argument (have: {', '.join(self.args) or 'none'})")
        return self

    def referenced_args(self) -> set[str]:
        texts: list[str] = []
        for w in self.modbus or []:
            if isinstance(w.value, str):
                texts.append(w.value)
        if self.mqtt is not None:
            for v in self.mqtt.payload.values():
                if isinstance(v, str):
                    texts.append(v)
                elif isinstance(v, dict):
                    texts.extend(x for x in v.values() if isinstance(x, str))
        return {m for t in texts for m in re.findall(r"\{([a-z_][a-z0-9_]*)\}", t)}


class ModbusSettings(StrictModel):
    byte_order: ByteOrder = "big"
    word_order: ByteOrder = "big"
    max_registers_per_read: int = Field(default=125, ge=1, le=125)
    max_bits_per_read: int = Field(default=2000, ge=1, le=2000)
    max_gap: int = Field(default=8, ge=0, le=100, description="bridge gaps up to this many registers")
    timeout_s: float = Field(default=1.0, gt=0, le=30)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)


DeviceOutcome = Literal["succeeded", "failed", "refused"]


class ResultCode(StrictModel):
    """What one of the device's result codes means."""

    status: DeviceOutcome
    reason: str | None = Field(default=None, description="reason recorded when the device sends none")


class CommandResultSpec(StrictModel):
    """How an MQTT device answers a command: the topic, where the correlation id sits and how the answer maps
    to an outcome — ``ok_path`` (true = succeeded) or a result code (``result_path`` + ``results``)."""

    topic: str
    id_path: JsonPath = "$.id"
    ok_path: JsonPath = "$.ok"
    result_path: JsonPath | None = Field(default=None, description="the device's result code, e.g. $.ret")
    results: dict[int | str, ResultCode] = Field(
        default_factory=dict, description="result code → outcome; a code not listed is failed"
    )
    reason_path: JsonPath | None = "$.reason"

    @model_validator(mode="after")
    def _codes(self) -> CommandResultSpec:
        if (self.result_path is None) != (not self.results):
            raise ValueError("result_path and results go together (the code's path and what each code means)")
        return self


class TopicTimestamp(StrictModel):
    """Where a topic's messages carry the device's own observation time."""

    topic: str
    path: JsonPath = Field(description="JSON path of the time stamp, e.g. $.ts")
    unit: Literal["ms", "s", "iso"] = Field(description="ms / s since 1970 (UTC), or an ISO 8601 text")
    max_skew_s: float = Field(
        default=300.0, gt=0, description="outside this window around the gateway clock the gateway's time is "
        "used instead and the device is flagged (device.clock_skew)"
    )


class MqttSettings(StrictModel):
    prefix: str = Field(default="xqdev/{device_id}", description="topic prefix for this device")
    status_topic: str | None = Field(default="{prefix}/status", description="retained online/offline + LWT")
    command_result: CommandResultSpec | None = None
    command_id: Literal["uuid", "uint16", "uint32", "string"] = Field(
        default="uuid", description="what '{command_id}' is on the wire: the backend's UUID, or an id the gateway "
        "generates per device (uint16/uint32 counters, or 'string': 8 hex digits) and maps back to the UUID"
    )
    timestamps: list[TopicTimestamp] = Field(default_factory=list, description="device time stamps, per topic")


class Heartbeat(StrictModel):
    offline_after_s: float = Field(gt=0, le=86_400, description="no answer/message this long → offline")
    topic: str | None = Field(default=None, description="MQTT heartbeat topic (any message on it counts)")


class ExampleExpect(StrictModel):
    values: dict[str, Scalar] = Field(default_factory=dict, description="point → the typed value it must decode to")
    bad: list[str] = Field(default_factory=list, description="points whose value must NOT convert (quality bad)")
    events: list[str] | None = Field(
        default=None, description="event types active on this sample alone (all of them); unset = not checked"
    )


class Example(StrictModel):
    """A sample the device sends (a datasheet's example) and what it must decode to; run by the loader, so
    ``profile validate`` fails on a wrong path, type or enum before the device is in the field."""

    name: str
    topic: str | None = Field(default=None, description="MQTT: the topic template, e.g. '{prefix}/up'")
    payload: dict[str, Any] | str | None = Field(default=None, description="MQTT: the JSON payload (object or text)")
    registers: dict[Table, dict[int, list[int]]] | None = Field(
        default=None, description="Modbus: table → start address → register (or bit) values"
    )
    expect: ExampleExpect

    @model_validator(mode="after")
    def _one_kind(self) -> Example:
        if (self.payload is None) == (self.registers is None):
            raise ValueError("an example has either topic + payload (MQTT) or registers (Modbus)")
        if self.payload is not None and self.topic is None:
            raise ValueError("an MQTT example needs the topic it arrives on")
        return self


Protocol = Literal["modbus_tcp", "modbus_rtu", "mqtt", "camera"]


class Profile(StrictModel):
    id: ProfileId
    vendor: str
    model: str
    device_type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    protocol: Protocol
    description: str | None = None
    modbus: ModbusSettings | None = None
    mqtt: MqttSettings | None = None
    camera: CameraSpec | None = None
    points: list[Point] = Field(default_factory=list)
    events: list[EventSpec] = Field(default_factory=list)
    commands: list[CommandSpec] = Field(default_factory=list)
    heartbeat: Heartbeat | None = None
    examples: list[Example] = Field(default_factory=list, description="samples and what they must decode to")

    @model_validator(mode="after")
    def _protocol_matches(self) -> Profile:
        is_modbus = self.protocol.startswith("modbus")
        for i, p in enumerate(self.points):
            if is_modbus and p.reg is None:
                raise ValueError(f"points[{i}] ({p.name}): a {self.protocol} profile's points need register")
            if self.protocol == "mqtt" and p.mqtt is None:
                raise ValueError(f"points[{i}] ({p.name}): an mqtt profile's points need mqtt")
        for i, c in enumerate(self.commands):
            if is_modbus and c.modbus is None:
                raise ValueError(f"commands[{i}] ({c.name}): a {self.protocol} profile's commands need modbus")
            if self.protocol == "mqtt" and c.mqtt is None:
                raise ValueError(f"commands[{i}] ({c.name}): an mqtt profile's commands need mqtt")
        for i, e in enumerate(self.events):
            if e.on_message is not None and self.protocol != "mqtt":
                raise ValueError(f"events[{i}] ({e.type}): on_message needs protocol mqtt")
        if self.protocol == "camera" and self.camera is None:
            raise ValueError("a camera profile needs a camera section")
        if self.protocol != "camera" and self.camera is not None:
            raise ValueError("only a camera profile has a camera section")
        names = [n for p in self.points for n in expand_name(p.name, p.repeat)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"point names must be unique; repeated: {', '.join(dupes[:5])}")
        known = set(names)
        for i, e in enumerate(self.events):
            for part in ("when", "clear"):
                cond = getattr(e, part)
                for name in sorted(cond.points() if cond is not None else ()):
                    for concrete in expand_name(name, e.repeat):
                        if concrete not in known:
                            raise LocatedError(("events", i, part), f"events[{i}] ({e.type}): condition refers to "
                                               f"unknown point {concrete!r}{_known_hint(known)}")
            for k, name in enumerate(e.readings):
                for concrete in expand_name(name, e.repeat):
                    if concrete not in known:
                        raise LocatedError(("events", i, "readings", k), f"events[{i}] ({e.type}): readings names "
                                           f"unknown point {concrete!r}{_known_hint(known)}")
        first_row: dict[str, int] = {}
        for i, e in enumerate(self.events):
            for key in sorted({e.key_for(n) for n in instance_numbers(e.repeat)}):
                if key in first_row and first_row[key] != i:
                    j = first_row[key]
                    raise LocatedError(
                        ("events", i, "key"),
                        f"key {key!r} is already used by events[{j}] ({self.events[j].type}); two rows of one "
                        "profile need different keys: give one of them an explicit key:",
                    )
                first_row.setdefault(key, i)
        cmd_names = [c.name for c in self.commands]
        if len(set(cmd_names)) != len(cmd_names):
            raise ValueError("command names must be unique")
        return self

    def command(self, name: str) -> CommandSpec | None:
        return next((c for c in self.commands if c.name == name), None)


def _known_hint(known: set[str]) -> str:
    return f" (points: {', '.join(sorted(known)[:12])}{', …' if len(known) > 12 else ''})" if known else " (no points)"


def instance_numbers(repeat: Repeat | None) -> list[int | None]:
    """The ``{n}`` values a (possibly repeated) row stands for; ``[None]`` for a single row."""
    if repeat is None:
        return [None]
    return [repeat.start + i for i in range(repeat.count)]


def expand_name(template: str, repeat: Repeat | None) -> list[str]:
    """The concrete names a (possibly repeated) template stands for."""
    if repeat is None:
        return [template]
    return [template.replace("{n}", str(repeat.start + i)) for i in range(repeat.count)]
