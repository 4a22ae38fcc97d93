"""Backend commands: expiry, validation, execution, an ack with the outcome, idempotent on command id.

Before executing, the command id is recorded as ``executing``; if the gateway dies mid-command, a
redelivery acks ``failed`` ("interrupted") rather than running a possibly non-idempotent command twice.

The gateway's own probe command (:data:`contract.PROBE_COMMAND`) only reads, so it is not recorded: a
redelivery probes again and answers with fresh results (:mod:`edge.commands.probe`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import UUID

from contract.clock import Clock
from contract.messages import PROBE_COMMAND, Command, CommandStatus, ProbePoint
from device_profiles.commands import CommandError
from edge.commands.executor import CommandExecutor
from edge.commands.probe import ProbeRefused, probe_device
from edge.commands.store import SeenStore
from edge.rules.emitter import Emitter

logger = logging.getLogger(__name__)

_FINAL: tuple[CommandStatus, ...] = ("succeeded", "failed", "timed_out", "rejected", "expired", "refused")


class CommandService:
    def __init__(
        self, executor: CommandExecutor, emitter: Emitter, store: SeenStore, clock: Clock, probe_window_s: float = 5.0
    ) -> None:
        self.executor = executor
        self.probe_window_s = probe_window_s
        self.emitter = emitter
        self.store = store
        self.clock = clock
        self._inflight: dict[str, asyncio.Future[tuple[CommandStatus, str | None]]] = {}
        self.outcomes_total: dict[str, int] = {}
        self.observers: list[Callable[[str], None]] = []  # called with each ack's status (metrics)

    async def handle(self, cmd: Command) -> None:
        """The uplink's ``on_command``: never raises on a bad command, always acks."""
        if cmd.command == PROBE_COMMAND:
            await self._probe(cmd)
            return
        cid = str(cmd.id)
        running = self._inflight.get(cid)
        if running is not None:  # a duplicate while the first delivery still runs: same outcome, one execution
            status, reason = await asyncio.shield(running)
            self._ack(cmd, status, reason, duplicate=True)
            return
        seen = self.store.get(cid)
        if seen is not None:
            status_text = seen.status
            reason = seen.reason
            if status_text == "executing":
                status_text, reason = "failed", "interrupted: the gateway restarted while executing it"
                self.store.record(cid, cmd.device, status_text, reason)
            assert status_text in _FINAL
            self._ack(cmd, status_text, reason, duplicate=True)
            return
        fut: asyncio.Future[tuple[CommandStatus, str | None]] = asyncio.get_running_loop().create_future()
        self._inflight[cid] = fut
        try:
            status, reason = await self._run(cmd)
            self.store.record(cid, cmd.device, status, reason)
            fut.set_result((status, reason))
            self._ack(cmd, status, reason)
        finally:
            self._inflight.pop(cid, None)
            if not fut.done():
                fut.set_result(("failed", "gateway stopping"))

    async def _run(self, cmd: Command) -> tuple[CommandStatus, str | None]:
        expired = self._expired(cmd)
        if expired is not None:
            return "expired", expired
        try:
            self.executor.validate(cmd.device, cmd.command, cmd.args)
        except CommandError as exc:
            return "rejected", str(exc)
        self.store.record(str(cmd.id), cmd.device, "executing", None)
        logger.info("command %s: %s on %s %s (from %s)", cmd.id, cmd.command, cmd.device, cmd.args, cmd.origin)
        result = await self.executor.execute(cmd.device, cmd.command, cmd.args, str(cmd.id))
        return result.status, result.reason

    def _expired(self, cmd: Command) -> str | None:
        now = self.clock.now()
        if cmd.expires_at is None:
            return None
        expires = cmd.expires_at if cmd.expires_at.tzinfo else cmd.expires_at.replace(tzinfo=now.tzinfo)
        if expires <= now:
            return f"expired at {expires.isoformat()} (gateway time {now.isoformat()})"
        return None

    async def _probe(self, cmd: Command) -> None:
        """Read every point of the device once; ``succeeded`` when all pass, ``failed`` with a summary
        otherwise, ``rejected`` for a device this gateway cannot probe; the points ride on the ack."""
        expired = self._expired(cmd)
        if expired is not None:
            self._ack(cmd, "expired", expired)
            return
        try:
            report = await probe_device(self.executor, cmd.device, self.probe_window_s)
        except ProbeRefused as exc:
            self._ack(cmd, "rejected", str(exc))
            return
        reason = report.verdict()
        status: CommandStatus = "succeeded" if reason is None else "failed"
        logger.info("probe %s of %s (%s): %d points, %d failed", cmd.id, cmd.device, report.target,
                    len(report.results), len(report.failed))
        self._ack(cmd, status, reason, probe=[r.to_contract() for r in report.results])

    def late_result(self, device: str, command_id: str, status: CommandStatus, reason: str | None) -> None:
        """The device answered after the gateway acked ``timed_out``: the real outcome is recorded and acked
        again (``detail.late``), so the backend keeps it as ``<outcome>_late``."""
        seen = self.store.get(command_id)
        if seen is None or seen.status != "timed_out":
            logger.warning("late answer %s for command %s on %s: no timed-out command to update", status,
                           command_id, device)
            return
        self.store.record(command_id, device, status, reason)
        self.outcomes_total[status] = self.outcomes_total.get(status, 0) + 1
        self.emitter.ack(UUID(command_id), device, status, self.clock.now(), reason=reason, detail={"late": True})
        logger.info("command %s on %s: %s, late", command_id, device, status)

    def _ack(
        self, cmd: Command, status: CommandStatus, reason: str | None, duplicate: bool = False,
        probe: list[ProbePoint] | None = None,
    ) -> None:
        self.outcomes_total[status] = self.outcomes_total.get(status, 0) + 1
        for fn in self.observers:
            fn(status)
        detail: dict[str, bool | int | float | str] = {"command": cmd.command}
        if duplicate:
            detail["duplicate"] = True
        self.emitter.ack(cmd.id, cmd.device, status, self.clock.now(), reason=reason, detail=detail, probe=probe)
        logger.info("command %s on %s: %s%s", cmd.id, cmd.device, status, f" ({reason})" if reason else "")
