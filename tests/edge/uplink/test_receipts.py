"""End-to-end delivery on the gateway side, against a real Mosquitto: rows of events (the whole alarm lane)
and command acks stay in the outbox after the PUBACK until a Receipt names them, are re-sent with the same
message id meanwhile, survive kill -9, and never hold up a new alarm. Telemetry stays PUBACK-only."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract.codec import encode
from contract.messages import CommandAck, Receipt
from edge.uplink import Outbox, OutboxConfig, OutboxRow, Uplink, UplinkConfig

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("receipt_child.py")


def make_uplink(box: Outbox, url: str, site: str, kit: Any, **config: Any) -> Uplink:
    settings = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "client_id": f"xq-gw-{site}-{kit.GW}", **config}
    return Uplink(UplinkConfig(url=url, **settings), site=site, gateway_id=kit.GW, outbox=box,
                  birth=lambda: kit.online(box.next_seq()))


def publish(host: str, port: int, topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    for payload in payloads:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def receipt(gw: str, ids: list[Any]) -> bytes:
    return encode(Receipt(gw=gw, seq=1, ts=datetime.now(UTC), ids=ids))


def attempts(path: Path, msg_id: str) -> tuple[int, float, float]:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT attempts, sent_at, next_try FROM outbox WHERE msg_id = ?", (msg_id,)).fetchone()
        assert row is not None, f"{msg_id} is not in the outbox"
        return int(row[0]), float(row[1]), float(row[2])


async def test_events_and_acks_wait_for_their_receipt_telemetry_and_state_do_not(
    tmp_path: Path, own_broker: Any, site_id: str, kit: Any
) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    al, ev, state, tele = kit.alarm(box.next_seq()), kit.event(box.next_seq()), kit.online(1), kit.telemetry(1)
    ack = CommandAck(gw=kit.GW, seq=box.next_seq(), ts=tele.ts, command_id=uuid4(), device="dc1", status="succeeded")
    box.put_many([al, ev, state, tele, ack])
    uplink = make_uplink(box, own_broker.url, site_id, kit)
    receipts: list[OutboxRow] = []
    uplink.on_receipt = receipts.extend
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: sum(uplink.acked_total().values()) == 5, what="five PUBACKs")
        await kit.until(lambda: box.depth() == {"alarm": 1, "event": 2, "telemetry": 0}, what="the PUBACKs recorded")
        assert box.awaiting_receipt() == {"alarm": 1, "event": 2, "telemetry": 0}  # the state row went on PUBACK
        rtopic = f"xq/v1/{site_id}/{kit.GW}/receipt"
        await asyncio.to_thread(publish, own_broker.host, own_broker.port, rtopic, [receipt(kit.GW, [al.id])])
        await kit.until(lambda: box.depth()["alarm"] == 0, what="the alarm's row deleted by its receipt")
        assert box.depth()["event"] == 2
        await asyncio.to_thread(publish, own_broker.host, own_broker.port, rtopic, [receipt(kit.GW, [ev.id, ack.id])])
        await kit.until(lambda: sum(box.depth().values()) == 0, what="the event and ack rows receipted")
        assert uplink.receipted_total() == {"alarm": 1, "event": 2, "telemetry": 0}
        assert sorted(r.msg_id or "" for r in receipts) == sorted(str(i) for i in (al.id, ev.id, ack.id))
        assert uplink.resent_total() == {"alarm": 0, "event": 0, "telemetry": 0}  # receipts came in time
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


async def test_resent_with_the_same_id_and_capped_backoff_until_receipted(
    tmp_path: Path, own_broker: Any, site_id: str, receipter: Any, kit: Any
) -> None:
    backend = receipter(own_broker.host, own_broker.port, site_id)
    backend.answering = False  # the backend is down: the broker PUBACKs, nobody commits
    path = tmp_path / "o.db"
    box = Outbox(OutboxConfig(path=path), kit.GW)
    uplink = make_uplink(box, own_broker.url, site_id, kit, receipt_timeout_s=0.2, resend_max_s=0.4,
                         resend_check_s=0.05)
    task = asyncio.create_task(uplink.run())
    al = kit.alarm(box.next_seq())
    try:
        box.put(al)
        uplink.wake()
        await kit.until(lambda: backend.times_seen(str(al.id)) >= 4, what="the alarm sent four times")
        assert attempts(path, str(al.id))[0] >= 3  # each PUBACK counted (the backoff itself: test_outbox.py)
        assert box.depth()["alarm"] == 1
        assert uplink.resent_total()["alarm"] >= 3
        backend.answering = True
        await kit.until(lambda: box.depth()["alarm"] == 0, what="the next re-send receipted")
        # the counter is bumped by paho's thread just after the row is settled: wait for it, then it must be 1
        await kit.until(lambda: uplink.receipted_total()["alarm"] >= 1, what="the receipt counted")
        assert uplink.receipted_total()["alarm"] == 1
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


async def test_awaiting_rows_survive_kill_9_and_are_resent_after_the_restart(
    tmp_path: Path, own_broker: Any, site_id: str, receipter: Any, kit: Any
) -> None:
    backend = receipter(own_broker.host, own_broker.port, site_id)
    backend.answering = False
    db = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, str(CHILD), str(db), own_broker.url, site_id, kit.GW],
                            stdout=subprocess.PIPE, env=kit.child_env())
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        ids = line.decode().split()
        assert len(ids) == 2, f"the child printed {line!r}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    box = Outbox(OutboxConfig(path=db), kit.GW)
    assert box.awaiting_receipt() == {"alarm": 1, "event": 1, "telemetry": 0}
    backend.answering = True
    uplink = make_uplink(box, own_broker.url, site_id, kit, resend_check_s=0.1)
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: sum(box.depth().values()) == 0, what="both rows re-sent and receipted")
        assert uplink.receipted_total() == {"alarm": 1, "event": 1, "telemetry": 0}
        assert all(backend.times_seen(i) >= 2 for i in ids)  # the same message ids, sent before and after
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


async def test_duplicate_unknown_and_bad_receipts_are_ignored(
    tmp_path: Path, own_broker: Any, site_id: str, kit: Any
) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    alarms = [kit.alarm(box.next_seq()) for _ in range(2)]
    box.put_many(alarms)
    uplink = make_uplink(box, own_broker.url, site_id, kit)
    task = asyncio.create_task(uplink.run())
    rtopic = f"xq/v1/{site_id}/{kit.GW}/receipt"
    try:
        await kit.until(lambda: box.awaiting_receipt()["alarm"] == 2, what="both alarms awaiting")
        bad = [
            b"",
            b"not json",
            b'{"v": 2, "kind": "receipt"}',
            receipt("another-gw", [alarms[0].id]),  # a payload for another gateway: refused by the decoder
            kit.alarm(1).model_dump_json().encode(),  # not a receipt
        ]
        good = [receipt(kit.GW, [uuid4(), uuid4()]), receipt(kit.GW, [alarms[0].id]), receipt(kit.GW, [alarms[0].id])]
        await asyncio.to_thread(publish, own_broker.host, own_broker.port, rtopic, [*bad, *good])
        await kit.until(lambda: uplink.receipts_total() == 3, what="the three valid receipts")
        assert box.depth()["alarm"] == 1 and box.awaiting_receipt()["alarm"] == 1  # only the named row went
        assert uplink.receipted_total()["alarm"] == 1
        assert uplink.connected
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


async def test_rows_awaiting_a_receipt_never_hold_up_a_new_alarm(
    tmp_path: Path, own_broker: Any, site_id: str, receipter: Any, kit: Any
) -> None:
    backend = receipter(own_broker.host, own_broker.port, site_id)
    backend.answering = False
    window = 4
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    box.put_many([kit.alarm(box.next_seq()) for _ in range(200)])
    uplink = make_uplink(box, own_broker.url, site_id, kit, max_inflight=window, receipt_timeout_s=0.3,
                         resend_max_s=0.3, resend_check_s=0.05, keepalive_s=60)
    acked: list[OutboxRow] = []
    uplink.on_ack = acked.append
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: box.awaiting_receipt()["alarm"] == 200, what="200 alarms awaiting receipts")
        own_broker.pause()  # nothing is acknowledged now: the re-sends that come due fill the window
        await kit.until(lambda: uplink.resent_total()["alarm"] >= 100 and uplink.inflight() == window,
                        what="re-sends queued and a full window of them in flight")
        new = kit.alarm(box.next_seq())
        box.put(new)
        uplink.wake()
        acked_at_put = len(acked)
        own_broker.resume()
        await kit.until(lambda: any(json.loads(r.payload)["id"] == str(new.id) for r in acked), what="the new alarm")
        position = next(i for i, r in enumerate(acked) if json.loads(r.payload)["id"] == str(new.id))
        # Only the window already in flight (plus one row picked concurrently) goes before it; ~200 re-sends wait.
        assert position - acked_at_put <= window + 1
    finally:
        own_broker.resume()
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()
