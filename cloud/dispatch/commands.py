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

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cloud.auth.store import audit
from cloud.changes import Change
from contract import Command
from contract.codec import encode
from contract.ids import new_id
from contract.topics import TopicKind, topic
from device_profiles import Catalog, load_catalog

log = logging.getLogger(__name__)

OUTCOMES = ("succeeded", "failed", "timed_out", "rejected", "expired", "refused")
FINAL_STATES = frozenset({*OUTCOMES, *(f"{s}_late" for s in OUTCOMES if s != "timed_out")})
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


async def queue_command(
    conn: AsyncConnection[Any],
    *,
    site_id: str,
    gateway_id: str,
    device_id: str,
    command: str,
    args: dict[str, Any],
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
        cur = await conn.execute("SELECT profile_id FROM devices WHERE id = %s", (device_id,))
        row = await cur.fetchone()
        needed = timeouts.ack_timeout(row[0] if row else None, command)
        ack_timeout = max(ack_timeout or needed, needed)
    ack_timeout = ack_timeout or DEFAULT_TIMEOUT + TRANSIT_MARGIN
    cid = new_id()
    await conn.execute(
        """
        INSERT INTO commands (id, site_id, gateway_id, device_id, command, args, state, max_attempts, retry_safe,
                              ack_timeout_s, created_at, expires_at, origin, incident_id)
        VALUES (%s, %s, %s, %s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            cid,
            site_id,
            gateway_id,
            device_id,
            command,
            json.dumps(args),
            max_attempts,
            retry_safe,
            ack_timeout.total_seconds(),
            now,
            now + expires_after if expires_after else None,
            origin,
            incident_id,
        ),
    )
    await audit(
        conn,
        origin,
        "command.issue",
        "command",
        str(cid),
        {"device": device_id, "command": command, "args": args},
        ts=now,
    )
    return cid


async def send_commands(
    conn: AsyncConnection[Any], publisher: Publisher, ids: Sequence[UUID], now: datetime
) -> list[Change]:
    """Publish queued (or re-sent) commands and mark them ``sent``; returns the changed rows.

    ``conn`` must be in autocommit mode or the caller commits; each command is updated after its publish.
    """
    changed: list[Change] = []
    for cid in ids:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM commands WHERE id = %s", (cid,))
            row = await cur.fetchone()
        if row is None or row["state"] in FINAL_STATES:
            continue
        seq = (await (await conn.execute("SELECT nextval('command_seq')")).fetchone() or [0])[0]
        msg = Command(
            id=row["id"],
            gw=row["gateway_id"],
            seq=int(seq),
            ts=now,
            device=row["device_id"],
            command=row["command"],
            args=row["args"],
            expires_at=row["expires_at"],
            origin=row["origin"],
        )
        try:
            await publisher.publish(topic(row["site_id"], row["gateway_id"], TopicKind.CMD), encode(msg), 1)
        except PublishError as exc:
            log.warning("command %s to %s/%s not published: %s", cid, row["gateway_id"], row["device_id"], exc)
            continue
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "UPDATE commands SET state = 'sent', attempts = attempts + 1, sent_at = %s "
                "WHERE id = %s AND state IN ('queued', 'sent') RETURNING *",
                (now, cid),
            )
            new = await cur.fetchone()
        if new is not None:
            changed.append(Change.command(new, "sent"))
    return changed


async def apply_acks(conn: AsyncConnection[Any], ack_ids: Sequence[UUID | str], now: datetime) -> list[Change]:
    """Record the outcome of each acknowledged command; one that comes after we marked the command
    ``timed_out`` is kept as ``<outcome>_late`` with both times (never thrown away)."""
    changed: list[Change] = []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM command_acks WHERE id = ANY(%s::uuid[])", ([str(i) for i in ack_ids],))
        acks = await cur.fetchall()
    for ack in acks:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                """
                UPDATE commands SET
                    state = CASE WHEN state = 'timed_out' THEN %(status)s::text || '_late' ELSE %(status)s::text END,
                    reason = %(reason)s, finished_at = %(now)s, ack_id = %(ack)s, answered_at = %(answered)s,
                    timed_out_at = CASE WHEN %(status)s::text = 'timed_out' THEN %(answered)s ELSE timed_out_at END
                WHERE id = %(cid)s
                  AND (state IN ('queued', 'sent') OR (state = 'timed_out' AND %(status)s::text <> 'timed_out'))
                RETURNING *
                """,
                {"status": ack["status"], "reason": ack["reason"], "now": now, "ack": ack["id"],
                 "answered": ack["ts"], "cid": ack["command_id"]},
            )
            row = await cur.fetchone()
        if row is None:
            log.info("ack %s for command %s: no open command (unknown or already final)", ack["id"], ack["command_id"])
            continue
        actor = f"gateway:{ack['gateway_id']}"
        await audit(
            conn, actor, "command.ack", "command", row["id"], {"status": row["state"], "reason": ack["reason"]}, ts=now
        )
        if row["state"].endswith("_late"):
            log.warning("command %s on %s: answer %s arrived after the backend's timeout (timed out at %s)",
                        row["id"], row["device_id"], ack["status"], row["timed_out_at"])
        changed.append(Change.command(row, row["state"]))
    return changed


async def sweep(conn: AsyncConnection[Any], now: datetime) -> tuple[list[UUID], list[Change]]:
    """Expire and time out open commands; returns (ids to re-send, changed rows)."""
    resend: list[UUID] = []
    changed: list[Change] = []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM commands WHERE state IN ('queued', 'sent') FOR UPDATE SKIP LOCKED",
        )
        rows = await cur.fetchall()
    for row in rows:
        new_state: str | None = None
        if row["expires_at"] is not None and row["expires_at"] <= now:
            new_state = "expired"
        elif row["state"] == "sent" and row["sent_at"] + timedelta(seconds=row["ack_timeout_s"]) <= now:
            if row["retry_safe"] and row["attempts"] < row["max_attempts"]:
                resend.append(row["id"])
                continue
            new_state = "timed_out"
        if new_state is None:
            continue
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "UPDATE commands SET state = %s, finished_at = %s, reason = %s, "
                "timed_out_at = CASE WHEN %s = 'timed_out' THEN %s ELSE timed_out_at END WHERE id = %s RETURNING *",
                (
                    new_state,
                    now,
                    f"no acknowledgement after {row['attempts']} attempt(s)"
                    if new_state == "timed_out"
                    else "expired before it was acknowledged",
                    new_state,
                    now,
                    row["id"],
                ),
            )
            new = await cur.fetchone()
        assert new is not None
        await audit(conn, "engine", f"command.{new_state}", "command", row["id"], {"attempts": row["attempts"]}, ts=now)
        changed.append(Change.command(new, new_state))
    return resend, changed
