"""More than one ``serve`` process: two real ``xiaoqu cloud serve`` processes on one database each push the
same alarm (raised by whichever engine claimed the event) and the other's API actions to their WebSocket
clients, through ``NOTIFY xq_changes``; a change too large for a NOTIFY payload goes through the table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import websockets

from cloud.alarms.bus import MAX_INLINE, ChangeBus, PgChangeRelay
from cloud.alarms.testkit import insert_event
from cloud.changes import Change
from tests.cloud.web.conftest import GATEWAY, PASSWORD, SECRET, add_users, free_port

pytestmark = pytest.mark.integration

XIAOQU = str(Path(sys.executable).with_name("xiaoqu"))


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(400):
            assert proc.poll() is None, f"serve exited {proc.returncode}: {log.read_text()[-2000:]}"
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/api/health")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{base} never became healthy: {log.read_text()[-2000:]}")


async def token(base: str, user: str) -> str:
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


async def next_change(ws: Any, kind: str, op: str) -> dict[str, Any]:
    while True:
        change = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if change["kind"] == kind and change["op"] == op:
            return dict(change)


async def test_two_serve_processes_push_the_same_alarm(compound_db: str, mqtt_broker: Any, tmp_path: Path) -> None:
    await add_users(compound_db)
    procs: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    try:
        for n in range(2):
            port = free_port()
            cfg = tmp_path / f"serve{n}.json"
            cfg.write_text(
                json.dumps(
                    {
                        "database": {"dsn": compound_db},
                        "mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port},
                        "api": {"port": port, "jwt_secret": SECRET, "evidence_dir": str(tmp_path / "evidence")},
                    }
                )
            )
            log = tmp_path / f"serve{n}.log"
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [XIAOQU, "cloud", "serve", "-c", str(cfg)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    )
                )
            bases.append(f"http://127.0.0.1:{port}")
            await wait_healthy(bases[-1], procs[-1], log)
        tokens = [await token(b, "pm") for b in bases]
        urls = [f"{b.replace('http', 'ws')}/api/ws?token={tk}" for b, tk in zip(bases, tokens, strict=True)]
        async with websockets.connect(urls[0]) as ws0, websockets.connect(urls[1]) as ws1:
            # Both processes listen before the event; both engines see it, one claims it.
            await asyncio.sleep(0.2)
            with psycopg.connect(compound_db, autocommit=True) as conn:
                insert_event(conn, "b3-f12-sd1", "smoke.alarm", gw=GATEWAY)
            got = await asyncio.gather(next_change(ws0, "alarm", "raised"), next_change(ws1, "alarm", "raised"))
            assert got[0]["id"] == got[1]["id"]
            assert got[0]["data"]["device_id"] == got[1]["data"]["device_id"] == "b3-f12-sd1"
            with psycopg.connect(compound_db) as conn:
                assert conn.execute("SELECT count(*) FROM alarms").fetchone() == (1,)

            # An API action on the second process reaches the first process's client too.
            async with httpx.AsyncClient(base_url=bases[1]) as client:
                r = await client.post(
                    f"/api/alarms/{got[0]['id']}/ack", headers={"Authorization": f"Bearer {tokens[1]}"}
                )
                assert r.status_code == 200, r.text
            acked = await asyncio.gather(
                next_change(ws0, "alarm", "acknowledged"), next_change(ws1, "alarm", "acknowledged")
            )
            assert [c["data"]["acked_by"] for c in acked] == ["pm", "pm"]
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def test_relay_carries_a_change_larger_than_a_notify_payload(compound_db: str) -> None:
    buses = [ChangeBus(), ChangeBus()]
    relays = [PgChangeRelay(b, compound_db) for b in buses]
    stop = asyncio.Event()
    ready = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(r.run(stop, e)) for r, e in zip(relays, ready, strict=True)]
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 10)
        inbox = buses[1].subscribe()
        own = buses[0].subscribe()
        devices = [f"b3-f{f}-sd{n}" for f in range(1, 19) for n in range(1, 60)]
        big = Change(kind="alarm", op="folded", id=7, site_id="cq", data={"id": 7, "detail": {"devices": devices}})
        assert len(big.model_dump_json()) > MAX_INLINE
        small = Change(kind="command", op="sent", id="c1", site_id="cq", building="B3", data={})
        buses[0].publish(big)
        buses[0].publish(small)
        first = await asyncio.wait_for(inbox.get(), 10)
        second = await asyncio.wait_for(inbox.get(), 10)
        assert first == big and second == small  # in order, the large one through xq_change_payloads
        assert own.qsize() == 2  # delivered locally once, not echoed back
        with psycopg.connect(compound_db) as conn:
            assert conn.execute("SELECT count(*) FROM xq_change_payloads").fetchone() == (1,)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
