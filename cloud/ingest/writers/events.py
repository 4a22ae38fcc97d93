"""Events: inserted by message id, ``ON CONFLICT DO NOTHING`` (the database is the duplicate guard). An event
of an unregistered device is a dead letter. Every event now stored, new or a re-send, gets a receipt; a new
event is the device being heard (unless the gateway speaks about it), and a new ``device.offline`` sets the
device's state (:func:`cloud.devices.registry.apply_offline_events`)."""

from __future__ import annotations

import json

from cloud.devices.models import OfflineStatement
from cloud.devices.registry import GATEWAY_STATEMENTS, apply_offline_events
from cloud.ingest.models import DeadLetter, Received
from cloud.ingest.writers.tx import BatchContext, newer
from contract.messages import Event


def write_events(ctx: BatchContext, received: list[Received[Event]]) -> list[Event]:
    """Store the events of known devices; returns the ones new to the database."""
    events: list[Received[Event]] = []
    for r in received:
        if r.message.device in ctx.known:
            events.append(r)
        else:
            ctx.dead.append(
                DeadLetter.of(r.item, "unknown_device", f"device {r.message.device!r} is not registered")
            )
    if not events:
        return []
    e = [r.message for r in events]
    ctx.cur.execute(
        """
        INSERT INTO events (id, gateway_id, seq, device_id, type, key, location, severity, active,
                            life_safety, ts, received_at, detail, evidence)
        SELECT id, gw, seq, dev, typ, k, loc::jsonb, sev, act, ls, ts, rcv, det::jsonb, evi::jsonb
        FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
                    %s::text[], %s::bool[], %s::bool[], %s::timestamptz[], %s::timestamptz[], %s::text[],
                    %s::text[])
             AS u(id, gw, seq, dev, typ, k, loc, sev, act, ls, ts, rcv, det, evi)
        ON CONFLICT (id) DO NOTHING RETURNING id
        """,
        (
            [x.id for x in e],
            [x.gw for x in e],
            [x.seq for x in e],
            [x.device for x in e],
            [x.event for x in e],
            [x.key for x in e],
            [x.location.model_dump_json(exclude_none=True) if x.location is not None else None for x in e],
            [x.severity for x in e],
            [x.active for x in e],
            [x.life_safety for x in e],
            [x.ts for x in e],
            [r.item.received_at for r in events],
            [json.dumps(x.detail) for x in e],
            [json.dumps([v.model_dump(mode="json") for v in x.evidence]) for x in e],
        ),
    )
    new = {row[0] for row in ctx.cur.fetchall()}
    ctx.duplicates += len(events) - len(new)
    out: list[Event] = []
    for r in events:
        ev = r.message
        ctx.receipt(r.topic.site, ev.gw, ev.id)  # new or already stored
        if ev.id in new:
            out.append(ev)
            ctx.sites[ev.gw] = r.topic.site
            if ev.event not in GATEWAY_STATEMENTS:
                newer(ctx.device_seen, ev.device, min(ev.ts, r.item.received_at))
    offline = [OfflineStatement(x.device, x.active, x.ts) for x in out if x.event == "device.offline"]
    if offline:
        apply_offline_events(ctx.cur, offline)
    return out
