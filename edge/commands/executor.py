"""Run one validated profile command on one device: a Modbus write through the device's poller (serialised
with polling), or an MQTT publish to the device waiting for its result. Used by backend commands and by
local linkage alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from contract.messages import Scalar
from device_profiles import CompiledProfile
from device_profiles.commands import CommandError, render_modbus, render_mqtt, validate_args
from edge.bridge import MqttBridge
from edge.modbus import BusPoller, WriteFailed

logger = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "timed_out", "rejected", "refused"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    status: Outcome
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ModbusTarget:
    poller: BusPoller
    unit: int


@dataclass(frozen=True, slots=True)
class MqttTarget:
    bridge: MqttBridge


Target = ModbusTarget | MqttTarget


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    profile: CompiledProfile
    target: Target | None  # None: the device takes no commands (camera)


class CommandExecutor:
    def __init__(self, timeout_override_s: float | None = None) -> None:
        self.devices: dict[str, DeviceEntry] = {}
        self.timeout_override_s = timeout_override_s

    def add(self, device_id: str, profile: CompiledProfile, target: Target | None) -> None:
        self.devices[device_id] = DeviceEntry(profile, target)

    def validate(self, device_id: str, command: str, args: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """The typed arguments; raise :class:`CommandError` with the reason for a ``rejected`` ack."""
        entry = self.devices.get(device_id)
        if entry is None:
            raise CommandError(f"this gateway serves no device {device_id!r}")
        spec = entry.profile.command(command)
        if spec is None:
            known = ", ".join(c.name for c in entry.profile.profile.commands) or "none"
            raise CommandError(f"profile {entry.profile.id!r} has no command {command!r} (has: {known})")
        if entry.target is None:
            raise CommandError(f"device {device_id!r} takes no commands")
        return validate_args(spec, args)

    async def execute(self, device_id: str, command: str, args: Mapping[str, Scalar], command_id: str) -> ExecResult:
        try:
            typed = self.validate(device_id, command, args)
        except CommandError as exc:
            return ExecResult("rejected", str(exc))
        entry = self.devices[device_id]
        spec = entry.profile.command(command)
        assert spec is not None and entry.target is not None
        timeout = self.timeout_override_s or spec.timeout_s
        target = entry.target
        try:
            if isinstance(target, ModbusTarget):
                writes = render_modbus(spec, typed, entry.profile.profile.modbus)
                await asyncio.wait_for(target.poller.write(target.unit, writes), timeout)
                return ExecResult("succeeded")
            prefix = target.bridge.devices[device_id].prefix
            wire_id = target.bridge.wire_id(device_id, command_id)  # the UUID, or the device's own kind of id
            publish = render_mqtt(spec, typed, prefix=prefix, device_id=device_id, command_id=wire_id)
            outcome = await target.bridge.request(device_id, publish, command_id, timeout)
        except CommandError as exc:
            return ExecResult("rejected", str(exc))
        except WriteFailed as exc:
            return ExecResult("failed", str(exc))
        except TimeoutError:
            return ExecResult("timed_out", f"no result from the device within {timeout:g} s")
        if outcome.status == "succeeded":
            return ExecResult("succeeded", outcome.reason)
        if outcome.status == "refused":
            return ExecResult("refused", outcome.reason or "the device refused it")
        return ExecResult("failed", outcome.reason or "the device reported failure")
