"""Telemetry: message ids go into ``ingested_messages`` (``ON CONFLICT DO NOTHING``, the database is the
duplicate guard); only the points of the newly inserted messages are COPYed (binary) into ``telemetry``.
Points of unregistered devices are left out and reported as one dead letter per message. On the native
flavour the minutes written are queued in ``telemetry_dirty`` for the rollup refresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

from cloud.db import Flavour
from cloud.ingest.models import DeadLetter, Received
from cloud.ingest.writers.tx import BatchContext, newer
from contract.messages import TelemetryBatch

QUALITY = {"good": 0, "uncertain": 1, "bad": 2}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class TelemetryPlan:
    """What the telemetry of a batch touches, worked out before its transaction opens."""

    devices: set[str] = field(default_factory=set)
    """Every device the points name."""
    minutes: set[int] = field(default_factory=set)
    """Minute numbers (since the epoch) the points fall in."""
    by_message: dict[UUID, set[str]] = field(default_factory=dict)
    """Message id → the devices its points name."""

    @property
    def days(self) -> set[int]:
        return {m // 1440 for m in self.minutes}


def plan(telemetry: list[Received[TelemetryBatch]]) -> TelemetryPlan:
    out = TelemetryPlan()
    for r in telemetry:
        t = r.message
        devs = {p.device for p in t.points}
        out.by_message[t.id] = devs
        out.devices |= devs
        out.minutes |= minutes_of(t)
    return out


def write_telemetry(
    ctx: BatchContext, telemetry: list[Received[TelemetryBatch]], todo: TelemetryPlan, flavour: Flavour
) -> int:
    """Store the points of the messages new to the database; returns how many points were written."""
    if not telemetry:
        return 0
    cur = ctx.cur
    cur.execute(
        "INSERT INTO ingested_messages (id, gateway_id, seq, received_at) "
        "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::timestamptz[]) "
        "ON CONFLICT (id) DO NOTHING RETURNING id",
        (
            [r.message.id for r in telemetry],
            [r.message.gw for r in telemetry],
            [r.message.seq for r in telemetry],
            [r.item.received_at for r in telemetry],
        ),
    )
    new_ids = {row[0] for row in cur.fetchall()}
    fresh = [r for r in telemetry if r.message.id in new_ids]
    ctx.duplicates += len(telemetry) - len(fresh)
    if not fresh:
        return 0
    points = _copy(ctx, fresh, todo.by_message)
    if flavour == "native":
        ranges = minute_ranges(todo.minutes)
        cur.execute(
            "INSERT INTO telemetry_dirty (lo, hi) SELECT * FROM unnest(%s::timestamptz[], %s::timestamptz[])",
            ([r[0] for r in ranges], [r[1] for r in ranges]),
        )
    return points


def _copy(ctx: BatchContext, fresh: list[Received[TelemetryBatch]], by_message: dict[UUID, set[str]]) -> int:
    """COPY the points of ``fresh`` messages (the hot loop: keep it lean)."""
    n = 0
    q = QUALITY
    known = ctx.known
    device_seen = ctx.device_seen
    with ctx.cur.copy(
        "COPY telemetry (ts, device_id, point, value, value_text, quality) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["timestamptz", "text", "text", "float8", "text", "int2"])
        write = copy.write_row
        for r in fresh:
            msg = r.message
            devs = by_message[msg.id]
            unknown = devs - known
            points = msg.points if not unknown else [p for p in msg.points if p.device not in unknown]
            any_bad = False
            for p in points:
                v = p.value
                qc = q[p.quality]
                if qc == 2:
                    any_bad = True
                if v.__class__ is str:
                    write((p.ts, p.device, p.point, None, v, qc))
                else:
                    write((p.ts, p.device, p.point, float(v), None, qc))
            n += len(points)
            seen = min(msg.ts, r.item.received_at)  # the batch's observation time, never in the future
            # Stale values a gateway republishes (quality bad) are not the device speaking.
            live = {p.device for p in points if p.quality != "bad"} if any_bad else devs - unknown
            for dev in live:
                newer(device_seen, dev, seen)
            if unknown:
                names = ", ".join(sorted(unknown)[:10])
                ctx.dead.append(
                    DeadLetter.of(
                        r.item,
                        "unknown_device",
                        f"{len(msg.points) - len(points)} of {len(msg.points)} points are for "
                        f"unregistered device(s): {names}",
                    )
                )
    return n


def minutes_of(msg: TelemetryBatch, spread: int = 10) -> set[int]:
    """Minute numbers (since the epoch) the message's points fall in; cheap when they are close together."""
    stamps = [p.ts for p in msg.points]
    lo = int(min(stamps).timestamp()) // 60
    hi = int(max(stamps).timestamp()) // 60
    if hi - lo <= spread:
        return set(range(lo, hi + 1))
    return {int(ts.timestamp()) // 60 for ts in stamps}


def minute_ranges(minutes: Iterable[int]) -> list[tuple[datetime, datetime]]:
    """Contiguous [lo, hi) ranges covering the given minute numbers (minutes since the epoch)."""
    out: list[tuple[datetime, datetime]] = []
    start = prev = None
    for m in sorted(set(minutes)):
        if start is None or prev is None:
            start = prev = m
        elif m == prev + 1:
            prev = m
        else:
            out.append((EPOCH + timedelta(minutes=start), EPOCH + timedelta(minutes=prev + 1)))
            start = prev = m
    if start is not None and prev is not None:
        out.append((EPOCH + timedelta(minutes=start), EPOCH + timedelta(minutes=prev + 1)))
    return out
