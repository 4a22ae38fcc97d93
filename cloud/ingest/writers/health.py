"""Gateway health reports: the newest per gateway (by ``(epoch, seq)``) replaces the stored one, unless the
stored one is newer."""

from __future__ import annotations

from cloud.ingest.models import Received
from cloud.ingest.writers.tx import BatchContext
from contract.messages import HealthReport


def write_health(ctx: BatchContext, reports: list[Received[HealthReport]]) -> None:
    if not reports:
        return
    latest: dict[str, HealthReport] = {}
    for r in reports:
        h = r.message
        old = latest.get(h.gw)
        if old is None or (h.epoch, h.seq) > (old.epoch, old.seq):
            latest[h.gw] = h
    ctx.cur.execute(
        "UPDATE gateways AS g SET health = u.h::jsonb, health_at = u.ts "
        "FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS u(id, h, ts) "
        "WHERE g.id = u.id AND (g.health_at IS NULL OR g.health_at <= u.ts)",
        (
            list(latest),
            [h.health.model_dump_json() for h in latest.values()],
            [h.ts for h in latest.values()],
        ),
    )
