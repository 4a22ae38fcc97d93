"""Linkage and manual commands: queued → sent → succeeded / failed / refused / timed_out / rejected / expired.

A command row is written (``queued``) in the transaction that decides it; it is published after commit
as a contract :class:`~contract.Command` on ``xq/v1/{site}/{gw}/cmd`` (QoS 1) and marked ``sent``.
Outcomes arrive as :class:`~contract.CommandAck` rows stored by ingest. Commands marked retry-safe
(idempotent on the gateway, which also dedups by command id) are re-sent with the same id when no ack
arrives within their timeout, up to ``max_attempts``.

How long the backend waits for the acknowledgement comes from the device's profile: the command's
``timeout_s`` (what the gateway waits for the device) plus a transit margin (:class:`CommandTimeouts`),
never a fixed 10 s that is shorter than the device's own answer. No answer is thrown away: one that
arrives after the backend marked the command ``timed_out`` is recorded as ``<outcome>_late``
(``succeeded_late`` …) with both times, ``timed_out_at`` and ``answered_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from psycopg import AsyncConnection
from pydantic import JsonValue

from cloud.auth.store import audit
from cloud.changes import Change
from cloud.dispatch import repository as repo
from cloud.dispatch.models import (
    FINAL_STATES,
    OUTCOMES,
    Command,
    CommandAnswer,
    CommandState,
    NewCommand,
)
from contract import Command as CommandMessage
from contract.codec import encode
from contract.ids import new_id
from contract.topics import TopicKind, topic
from device_profiles import Catalog, load_catalog

__all__ = [
    "DEFAULT_TIMEOUT", "FINAL_STATES", "OUTCOMES", "TRANSIT_MARGIN", "CommandTimeouts", "PublishError", "Publisher",
    "answer_state", "apply_acks", "queue_command", "send_commands", "sweep", "sweep_decision",
]

log = logging.getLogger(__name__)

TRANSIT_MARGIN = timedelta(seconds=15)
"""Added to the profile's command timeout: backend → broker → gateway, the gateway's outbox, and back."""
DEFAULT_TIMEOUT = timedelta(seconds=5)
"""A command the catalog does not know (unknown profile): the profile schema's default ``timeout_s``."""


class CommandTimeouts:
    """The backend's acknowledgement timeout per (profile, command): the profile's ``timeout_s`` plus
    :data:`TRANSIT_MARGIN`. The catalog is loaded once at the entry point (the shipped profiles by default)."""

    def __init__(self, catalog: Catalog | None = None, margin: timedelta = TRANSIT_MARGIN) -> None:
        self.catalog = catalog if catalog is not None else load_catalog()
        self.margin = margin

    def ack_timeout(self, profile_id: str | None, command: str) -> timedelta:
        spec = None
        if profile_id is not None and profile_id in self.catalog:
            spec = self.catalog.get(profile_id).command(command)
        device = timedelta(seconds=spec.timeout_s) if spec is not None else DEFAULT_TIMEOUT
        return device + self.margin


class Publisher(Protocol):
    """Publishes bytes to the broker and returns once the broker has taken them (QoS 1 PUBACK)."""

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None: ...


class PublishError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------- policy


def answer_state(current: CommandState, answer: CommandAnswer) -> CommandState | None:
    """The state a gateway's answer puts a command in; None when the command no longer takes it.

    An open command takes any outcome. One the backend already marked ``timed_out`` takes a real outcome as
    ``<outcome>_late`` (the gateway's own ``timed_out`` adds nothing). A final command takes nothing more.
    """
    if current.is_open:
        return CommandState.outcome(answer.status)
    if current is CommandState.TIMED_OUT and answer.status != "timed_out":
        return CommandState.late(answer.status)
    return None


def sweep_decision(command: Command, now: datetime) -> CommandState | None:
    """What the timer does with an open command at ``now``: ``expired`` past its expiry, ``sent`` (re-send,
    same id) when a retry-safe one has attempts left after its timeout, ``timed_out`` otherwise after it;
    None while it may still be answered."""
    if command.expires_at is not None and command.expires_at <= now:
        return CommandState.EXPIRED
    if (
        command.state is CommandState.SENT
        and command.sent_at is not None
        and command.sent_at + timedelta(seconds=command.ack_timeout_s) <= now
    ):
        if command.retry_safe and command.attempts < command.max_attempts:
            return CommandState.SENT
        return CommandState.TIMED_OUT
    return None


# ---------------------------------------------------------------------------------------------------- steps


async def queue_command(
    conn: AsyncConnection[Any],
    *,
    site_id: str,
    gateway_id: str,
    device_id: str,
    command: str,
    args: Mapping[str, JsonValue],
    origin: str,
    now: datetime,
    ack_timeout: timedelta | None = None,
    max_attempts: int = 1,
    retry_safe: bool = False,
    expires_after: timedelta | None = timedelta(minutes=5),
    incident_id: int | None = None,
    timeouts: CommandTimeouts | None = None,
) -> UUID:
    """Record a command to send (in the caller's transaction) and audit it; returns the command id.

    The acknowledgement timeout is at least what the device's profile needs (``timeouts``: its command
    timeout plus the transit margin); ``ack_timeout`` can only lengthen it.
    """
    if timeouts is not None:
        needed = timeouts.ack_timeout(await repo.device_profile(conn, device_id), command)
        ack_timeout = max(ack_timeout or needed, needed)
    ack_timeout = ack_timeout or DEFAULT_TIMEOUT + TRANSIT_MARGIN
    new = NewCommand(
        id=new_id(),
        site_id=site_id,
        gateway_id=gateway_id,
        device_id=device_id,
        command=command,
        args=dict(args),
        max_attempts=max_attempts,
        retry_safe=retry_safe,
        ack_timeout_s=ack_timeout.total_seconds(),
        created_at=now,
        expires_at=now + expires_after if expires_after else None,
        origin=origin,
        incident_id=incident_id,
    )
    row = await repo.insert_command(conn, new)
    await audit(
        conn, origin, "command.issue", "command", str(row.id),
        {"device": device_id, "command": command, "args": dict(args)}, ts=now,
    )
    return row.id


async def send_commands(
    conn: AsyncConnection[Any], publisher: Publisher, ids: Sequence[UUID], now: datetime
) -> list[Change]:
    """Publish queued (or re-sent) commands and mark them ``sent``; returns their changes.

    ``conn`` must be in autocommit mode or the caller commits; each command is updated after its publish.
    """
    changed: list[Change] = []
    for cid in ids:
        row = await repo.get_command(conn, cid)
        if row is None or row.state in FINAL_STATES:
            continue
        msg = CommandMessage(
            id=row.id,
            gw=row.gateway_id,
            seq=await repo.next_command_seq(conn),
            ts=now,
            device=row.device_id,
            command=row.command,
            args=row.args,
            expires_at=row.expires_at,
            origin=row.origin,
        )
        try:
            await publisher.publish(topic(row.site_id, row.gateway_id, TopicKind.CMD), encode(msg), 1)
        except PublishError as exc:
            log.warning("command %s to %s/%s not published: %s", cid, row.gateway_id, row.device_id, exc)
            continue
        sent = await repo.mark_sent(conn, cid, now)
        if sent is not None:
            changed.append(Change.command(sent, CommandState.SENT.value))
    return changed


async def apply_acks(conn: AsyncConnection[Any], ack_ids: Sequence[UUID | str], now: datetime) -> list[Change]:
    """Record the outcome of each acknowledged command; one that comes after we marked the command
    ``timed_out`` is kept as ``<outcome>_late`` with both times (never thrown away)."""
    changed: list[Change] = []
    for answer in await repo.answers(conn, ack_ids):
        current = await repo.get_command(conn, answer.command_id, lock=True)
        state = answer_state(current.state, answer) if current is not None else None
        if current is None or state is None:
            log.info("ack %s for command %s: no open command (unknown or already final)", answer.id, answer.command_id)
            continue
        # The gateway's own timeout is when the command stopped being waited for.
        timed_out_at = answer.ts if answer.status == "timed_out" else current.timed_out_at
        row = await repo.record_answer(conn, current.id, state, answer, now, timed_out_at)
        await audit(
            conn, f"gateway:{answer.gateway_id}", "command.ack", "command", str(row.id),
            {"status": row.state.value, "reason": answer.reason}, ts=now,
        )
        if row.state.is_late:
            log.warning("command %s on %s: answer %s arrived after the backend's timeout (timed out at %s)",
                        row.id, row.device_id, answer.status, row.timed_out_at)
        changed.append(Change.command(row, row.state.value))
    return changed


async def sweep(conn: AsyncConnection[Any], now: datetime) -> tuple[list[UUID], list[Change]]:
    """Expire and time out open commands; returns (ids to re-send, changes)."""
    resend: list[UUID] = []
    changed: list[Change] = []
    for row in await repo.open_commands(conn):
        state = sweep_decision(row, now)
        if state is None:
            continue
        if state is CommandState.SENT:
            resend.append(row.id)
            continue
        timed_out_at: datetime | None
        if state is CommandState.TIMED_OUT:
            reason, timed_out_at = f"no acknowledgement after {row.attempts} attempt(s)", now
        else:
            reason, timed_out_at = "expired before it was acknowledged", row.timed_out_at
        new = await repo.finish_command(conn, row.id, state, now, reason, timed_out_at)
        await audit(conn, "engine", f"command.{state.value}", "command", str(row.id), {"attempts": row.attempts},
                    ts=now)
        changed.append(Change.command(new, state.value))
    return resend, changed
