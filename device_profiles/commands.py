"""Commands: validate arguments against the profile and render them into writes or publishes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract.messages import Scalar
from device_profiles import modbus_codec
from device_profiles.mqtt_mapping import fill_topic, render_payload
from device_profiles.schema import ArgSpec, CommandSpec, ModbusSettings


class CommandError(ValueError):
    """A command that the profile does not accept, with the reason; ``arg`` names the argument at fault."""

    def __init__(self, message: str, arg: str | None = None) -> None:
        super().__init__(message)
        self.arg = arg


@dataclass(frozen=True, slots=True)
class RegisterWrite:
    table: str  # "coil" or "holding"
    address: int
    values: list[int]


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: dict[str, Any]


def _check_arg(name: str, spec: ArgSpec, value: Scalar) -> Scalar:
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise CommandError(f"argument {name!r}: {value!r} is not a bool", name)
        return value
    if spec.type == "str":
        if not isinstance(value, str):
            raise CommandError(f"argument {name!r}: {value!r} is not a string", name)
        out: Scalar = value
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CommandError(f"argument {name!r}: {value!r} is not a number", name)
        if spec.type == "int":
            if isinstance(value, float) and not value.is_integer():
                raise CommandError(f"argument {name!r}: {value!r} is not a whole number", name)
            out = int(value)
        else:
            out = float(value)
        if spec.min is not None and out < spec.min:
            raise CommandError(f"argument {name!r}: {out} is below the minimum {spec.min:g}", name)
        if spec.max is not None and out > spec.max:
            raise CommandError(f"argument {name!r}: {out} is above the maximum {spec.max:g}", name)
    if spec.choices is not None and out not in spec.choices:
        raise CommandError(f"argument {name!r}: {out!r} is not one of {', '.join(map(str, spec.choices))}", name)
    return out


def validate_args(command: CommandSpec, args: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """Typed, range-checked arguments with defaults filled; unknown arguments are refused."""
    unknown = sorted(set(args) - set(command.args))
    if unknown:
        raise CommandError(
            f"command {command.name!r} takes no argument {', '.join(map(repr, unknown))} "
            f"(takes: {', '.join(command.args) or 'none'})", unknown[0]
        )
    out: dict[str, Scalar] = {}
    for name, spec in command.args.items():
        if name in args:
            out[name] = _check_arg(name, spec, args[name])
        elif spec.default is not None:
            out[name] = _check_arg(name, spec, spec.default)
        elif spec.required:
            raise CommandError(f"command {command.name!r} needs argument {name!r}", name)
    return out


def _resolve(value: Scalar, args: Mapping[str, Scalar]) -> Scalar:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        key = value[1:-1]
        if key not in args:
            raise CommandError(f"argument {key!r} has no value")
        return args[key]
    return value


def render_modbus(command: CommandSpec, args: Mapping[str, Scalar],
                  settings: ModbusSettings | None = None) -> list[RegisterWrite]:
    """The register/coil writes for a validated command, in profile order."""
    settings = settings or ModbusSettings()
    writes: list[RegisterWrite] = []
    for w in command.modbus or []:
        value = _resolve(w.value, args)
        try:
            regs = modbus_codec.encode(
                None, value, dtype=w.type, table=w.table, scale=w.scale, offset=w.offset,
                byte_order=w.byte_order or settings.byte_order, word_order=w.word_order or settings.word_order,
            )
        except modbus_codec.CodecError as exc:
            raise CommandError(f"command {command.name!r}: {exc}") from None
        writes.append(RegisterWrite(w.table, w.address, regs))
    return writes


def render_mqtt(command: CommandSpec, args: Mapping[str, Scalar], *, prefix: str, device_id: str,
                command_id: Scalar) -> Publish:
    """The MQTT publish for a validated command; ``{command_id}`` (the backend's UUID, or the device-side id
    the gateway generated for it, typed: an integer stays a JSON number) correlates the device's answer."""
    assert command.mqtt is not None
    values: dict[str, Scalar] = {**args, "command_id": command_id}
    topic = fill_topic(command.mqtt.topic, prefix=prefix, device_id=device_id)
    return Publish(topic, render_payload(command.mqtt.payload, values))
