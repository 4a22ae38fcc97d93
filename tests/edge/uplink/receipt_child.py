"""Child process for the receipt kill -9 test: sends an alarm and an event, waits until the broker
acknowledged both (they now wait for their receipts), prints their ids, then idles until SIGKILLed.

Usage: receipt_child.py DB URL SITE GW
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from contract.messages import Event, GatewayState
from edge.uplink import Outbox, OutboxConfig, Uplink, UplinkConfig


async def main(db: str, url: str, site: str, gw: str) -> None:
    box = Outbox(OutboxConfig(path=Path(db)), gw)
    uplink = Uplink(
        UplinkConfig(url=url, client_id=f"xq-gw-{site}-{gw}", receipt_timeout_s=1.0, resend_max_s=2.0),
        site=site,
        gateway_id=gw,
        outbox=box,
        birth=lambda: GatewayState(gw=gw, seq=box.next_seq(), ts=datetime.now(UTC), state="online"),
    )
    task = asyncio.create_task(uplink.run())
    now = datetime.now(UTC)
    alarm = Event(gw=gw, seq=box.next_seq(), ts=now, device="fp1", event="fire.alarm", key="fire.alarm#1",
                  severity="critical", active=True, life_safety=True)
    event = Event(gw=gw, seq=box.next_seq(), ts=now, device="dc1", event="door.opened", key="door.opened",
                  severity="info", active=True)
    box.put_many([alarm, event])
    uplink.wake()
    while sum(box.awaiting_receipt().values()) < 2:
        await asyncio.sleep(0.02)
    print(alarm.id, event.id, flush=True)
    await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]))
