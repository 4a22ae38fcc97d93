"""Local linkage that runs on the gateway, without the backend.

Each rule watches events (``triggers``) from the gateway's own devices. A *signal* is
:class:`device_profiles.linkage.Signal` — (device, event key) — the same definition the backend's
correlation uses: two zones of one fire panel are two independent signals, two detectors are two, the
same zone raised twice is one. A rule *engages* for a scope (a building — the zone's, when the config
maps the zone elsewhere — or the device a camera watches) once ``require_signals`` signals are active and
were raised within ``window_s`` of each other (:func:`~device_profiles.linkage.confirming_signals`;
GB 50116-2013 §4.1.6: automatic linkage control needs two independent alarm signals in an "and"
combination). When it engages it commands every target device
of ``target_type`` in the scope once (the interlock: no second action while it stays engaged). When
every signal has cleared it disengages and, only if the rule has a ``restore_command``, sends that.

Every action is reported up as a ``linkage.action`` event (rule, target, command, outcome) on the target,
keyed ``linkage.action@<rule>``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from contract.clock import Clock
from contract.messages import Scalar
from device_profiles.linkage import Signal, confirming_signals
from edge.commands.executor import CommandExecutor, ExecResult
from edge.config import LinkageConfig, LinkageRule
from edge.rules.emitter import EmittedEvent, Emitter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkageDevice:
    id: str
    device_type: str
    building: str
    watches: str | None = None


@dataclass
class _Scope:
    signals: dict[Signal, float] = field(default_factory=dict)  # signal → monotonic time raised
    engaged: bool = False


Execute = Callable[[str, str, dict[str, Scalar], str], Awaitable[ExecResult]]


class LinkageEngine:
    def __init__(self, config: LinkageConfig, devices: list[LinkageDevice], executor: CommandExecutor | Execute,
                 emitter: Emitter, clock: Clock) -> None:
        self.config = config
        self.devices = {d.id: d for d in devices}
        self._execute: Execute = executor.execute if isinstance(executor, CommandExecutor) else executor
        self.emitter = emitter
        self.clock = clock
        self._scopes: dict[tuple[str, str], _Scope] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.actions_total = 0

    def attach(self) -> None:
        """Listen to every event the gateway emits."""
        self.emitter.add_listener(self.on_event)

    def _scope_key(self, rule: LinkageRule, ev: EmittedEvent) -> str | None:
        src = self.devices.get(ev.device)
        if src is None:
            return None
        if rule.scope == "building":
            return ev.location.building if ev.location is not None else src.building
        target = src.watches or ev.detail.get("elevator_device_id")
        return str(target) if target else None

    def on_event(self, ev: EmittedEvent) -> None:
        if ev.event == "linkage.action":
            return
        for rule in self.config.rules:
            if ev.event not in rule.triggers:
                continue
            key = self._scope_key(rule, ev)
            if key is None:
                logger.warning("linkage %s: event %s from %s has no scope", rule.name, ev.event, ev.device)
                continue
            scope = self._scopes.setdefault((rule.name, key), _Scope())
            signal = Signal(ev.device, ev.key)
            now = self.clock.monotonic()
            if ev.active:
                scope.signals.setdefault(signal, now)
                if not scope.engaged and self._confirmed(rule, scope):
                    scope.engaged = True
                    self._act(rule, key, rule.command, self._args(rule), [str(s) for s in sorted(scope.signals)])
            else:
                scope.signals.pop(signal, None)
                if scope.engaged and not scope.signals:
                    scope.engaged = False
                    if rule.restore_command is not None:
                        self._act(rule, key, rule.restore_command, {}, [])
                    else:
                        logger.info("linkage %s cleared in %s (no restore configured)", rule.name, key)

    @staticmethod
    def _confirmed(rule: LinkageRule, scope: _Scope) -> bool:
        return bool(confirming_signals(scope.signals, rule.require_signals, rule.window_s))

    def _args(self, rule: LinkageRule) -> dict[str, Scalar]:
        args = dict(rule.args)
        if rule.base_floor_arg:
            args[rule.base_floor_arg] = self.config.base_floor
        return args

    def targets(self, rule: LinkageRule, key: str) -> list[str]:
        if rule.scope == "watched_device":
            d = self.devices.get(key)
            return [key] if d is not None and d.device_type == rule.target_type else []
        return [d.id for d in self.devices.values() if d.building == key and d.device_type == rule.target_type]

    def _act(self, rule: LinkageRule, key: str, command: str, args: dict[str, Scalar], signals: list[str]) -> None:
        targets = self.targets(rule, key)
        logger.warning("linkage %s engaged in %s: %s on %s (signals: %s)", rule.name, key, command,
                       ", ".join(targets) or "no targets", ", ".join(signals) or "-")
        for target in targets:
            task = asyncio.get_running_loop().create_task(self._run(rule, key, target, command, args, signals))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, rule: LinkageRule, key: str, target: str, command: str, args: dict[str, Scalar],
                   signals: list[str]) -> None:
        command_id = str(uuid.uuid4())
        result = await self._execute(target, command, args, command_id)
        self.actions_total += 1
        detail: dict[str, Scalar] = {
            "rule": rule.name, "target": target, "command": command, "outcome": result.status, "scope": key,
            "command_id": command_id,
        }
        if result.reason:
            detail["reason"] = result.reason[:200]
        if signals:
            detail["signals"] = ",".join(signals)[:200]
        level = logging.INFO if result.status == "succeeded" else logging.ERROR
        logger.log(level, "linkage %s: %s on %s → %s %s", rule.name, command, target, result.status,
                   result.reason or "")
        self.emitter.event(
            target, "linkage.action", key=f"linkage.action@{rule.name}",
            severity="info" if result.status == "succeeded" else "critical", active=True, ts=self.clock.now(),
            detail=detail,
        )

    async def drain(self) -> None:
        """Wait for actions under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
