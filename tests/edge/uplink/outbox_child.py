"""Child process for the kill -9 test: puts messages as fast as it can while the uplink drains.

Usage: outbox_child.py DB URL SITE GW SEED. After each put()/put_many() returns, prints one line per
accepted message: "<message id> <seq>". The parent SIGKILLs it at a random moment.
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from contract.messages import Event, GatewayState, PointSample, TelemetryBatch
from edge.uplink import Outbox, OutboxConfig, Uplink, UplinkConfig


async def main(db: str, url: str, site: str, gw: str, seed: int) -> None:
    box = Outbox(OutboxConfig(path=Path(db), seq_block=50), gw)
    uplink = Uplink(
        UplinkConfig(
            url=url, max_inflight=20, reconnect_min_s=0.1, reconnect_max_s=0.5, client_id=f"xq-gw-{site}-{gw}"
        ),
        site=site,
        gateway_id=gw,
        outbox=box,
        birth=lambda: GatewayState(gw=gw, seq=box.next_seq(), ts=datetime.now(UTC), state="online"),
    )
    task = asyncio.create_task(uplink.run())
    rnd = random.Random(seed)
    out = sys.stdout
    while not task.done():
        now = datetime.now(UTC)
        r = rnd.random()
        if r < 0.05:
            msgs: list[TelemetryBatch | Event] = [
                Event(
                    gw=gw,
                    seq=box.next_seq(),
                    ts=now,
                    device="fp1",
                    event="fire.alarm", key="fire.alarm",
                    severity="critical",
                    active=True,
                    life_safety=True,
                )
            ]
        elif r < 0.1:
            msgs = [
                Event(
                    gw=gw, seq=box.next_seq(), ts=now, device="dc1", event="door.opened",
            key="door.opened", severity="info", active=True
                )
            ]
        elif r < 0.3:
            msgs = [
                TelemetryBatch(
                    gw=gw, seq=box.next_seq(), ts=now, points=[PointSample(device="em1", point="load", ts=now, value=i)]
                )
                for i in range(20)
            ]
        else:
            msgs = [
                TelemetryBatch(
                    gw=gw, seq=box.next_seq(), ts=now, points=[PointSample(device="em1", point="load", ts=now, value=r)]
                )
            ]
        if len(msgs) == 1:
            box.put(msgs[0])
        else:
            box.put_many(msgs)
        uplink.wake()
        out.write("".join(f"{m.id} {m.seq}\n" for m in msgs))
        out.flush()
        await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
