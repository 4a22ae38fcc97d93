"""Command acks (command results, probe answers): inserted by message id, ``ON CONFLICT DO NOTHING`` (the
database is the duplicate guard). Every ack now stored, new or a re-send, gets a receipt."""

from __future__ import annotations

import json

from cloud.ingest.models import Received
from cloud.ingest.writers.tx import BatchContext
from contract.messages import CommandAck


def write_acks(ctx: BatchContext, acks: list[Received[CommandAck]]) -> list[CommandAck]:
    """Store ``acks``; returns the ones new to the database."""
    if not acks:
        return []
    a = [r.message for r in acks]
    ctx.cur.execute(
        """
        INSERT INTO command_acks
            (id, command_id, gateway_id, device_id, status, reason, detail, ts, received_at, probe)
        SELECT id, cid, gw, dev, st, rsn, det::jsonb, ts, rcv, prb::jsonb
        FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                    %s::timestamptz[], %s::timestamptz[], %s::text[])
             AS u(id, cid, gw, dev, st, rsn, det, ts, rcv, prb)
        ON CONFLICT (id) DO NOTHING RETURNING id
        """,
        (
            [x.id for x in a],
            [x.command_id for x in a],
            [x.gw for x in a],
            [x.device for x in a],
            [x.status for x in a],
            [x.reason for x in a],
            [json.dumps(x.detail) for x in a],
            [x.ts for x in a],
            [r.item.received_at for r in acks],
            [None if x.probe is None else json.dumps([p.model_dump(mode="json") for p in x.probe]) for x in a],
        ),
    )
    new = {row[0] for row in ctx.cur.fetchall()}
    ctx.duplicates += len(a) - len(new)
    out: list[CommandAck] = []
    for r in acks:
        x = r.message
        ctx.receipt(r.topic.site, x.gw, x.id)
        if x.id in new:
            out.append(x)
            ctx.sites[x.gw] = r.topic.site
    return out
