"""Gateway state (birth / death): upsert the gateway and the devices a birth announces.

State messages are applied in ``(epoch, seq)`` order; the ordering rule itself is the registry's
(:func:`cloud.devices.registry.register_birth`). No message-id dedup: the upsert is idempotent.
"""

from __future__ import annotations

from cloud.devices.registry import register_birth
from cloud.ingest.models import Received
from cloud.ingest.writers.tx import BatchContext
from contract.messages import GatewayState


def birth_devices(states: list[Received[GatewayState]]) -> set[str]:
    """The devices announced by the births among ``states`` (they exist once the batch commits)."""
    return {dev.device for r in states if r.message.state == "online" for dev in r.message.devices}


def write_states(ctx: BatchContext, states: list[Received[GatewayState]]) -> list[GatewayState]:
    """Apply ``states``; returns the ones that changed a gateway row."""
    changed: list[GatewayState] = []
    for r in sorted(states, key=lambda r: (r.message.epoch, r.message.seq)):
        ctx.sites[r.message.gw] = r.topic.site
        if register_birth(ctx.cur, r.topic.site, r.message, r.item.received_at):
            changed.append(r.message)
    return changed
