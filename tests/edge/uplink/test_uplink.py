"""The uplink against a real Mosquitto: lane order, deletes on PUBACK (telemetry) or receipt (events),
reconnects, kill -9, commands. Receipt states in detail: test_receipts.py."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract.messages import Command
from edge.uplink import Outbox, OutboxConfig, OutboxRow, Uplink, UplinkConfig

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("outbox_child.py")


def make_uplink(box: Outbox, url: str, site: str, kit: Any, on_command: Any = None, **config: Any) -> Uplink:
    # A client id per site: parallel test runs share the broker and the gateway id.
    settings = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "client_id": f"xq-gw-{site}-{kit.GW}", **config}
    return Uplink(
        UplinkConfig(url=url, **settings),
        site=site,
        gateway_id=kit.GW,
        outbox=box,
        birth=lambda: kit.online(box.next_seq()),
        on_command=on_command,
    )


def ids_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {json.loads(p)["id"] for (p,) in db.execute("SELECT payload FROM outbox")}


def clear_retained(host: str, port: int, topic: str) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def publish_raw(host: str, port: int, topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    for payload in payloads:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


async def test_drains_in_lane_order_birth_and_clean_death(
    tmp_path: Path, mqtt_broker: Any, site_id: str, subscribe: Any, receipter: Any, kit: Any
) -> None:
    receipter(mqtt_broker.host, mqtt_broker.port, site_id)
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    tele = [kit.telemetry(box.next_seq(), i) for i in range(50)]
    box.put_many(tele)
    ev = kit.event(box.next_seq())
    box.put(ev)
    al = kit.alarm(box.next_seq())
    box.put(al)
    sub = subscribe(mqtt_broker.host, mqtt_broker.port, f"xq/v1/{site_id}/#")
    uplink = make_uplink(box, mqtt_broker.url, site_id, kit)
    task = asyncio.create_task(uplink.run())
    state_topic = f"xq/v1/{site_id}/{kit.GW}/state"
    try:
        await kit.until(lambda: len(sub.ids()) >= 53, what="birth and 52 messages")
        got = sub.snapshot()
        assert got[0].topic == state_topic and got[0].body["state"] == "online"
        data = [m for m in got if m.topic.endswith(("/event", "/telemetry"))]
        assert [m.body["id"] for m in data] == [str(al.id), str(ev.id)] + [str(t.id) for t in tele]
        assert data[0].topic.endswith("/event") and data[-1].topic.endswith("/telemetry")
        await kit.until(lambda: box.depth() == {"alarm": 0, "event": 0, "telemetry": 0}, what="empty outbox")
        assert uplink.connected and uplink.state == "connected"
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        assert not uplink.connected and uplink.state == "stopped"
        late = subscribe(mqtt_broker.host, mqtt_broker.port, state_topic)
        await kit.until(lambda: bool(late.snapshot()), what="the retained state")
        retained = late.snapshot()[0]
        assert retained.retain and retained.body["state"] == "offline" and retained.body["reason"] == "stopped"
    finally:
        task.cancel()
        box.close()
        clear_retained(mqtt_broker.host, mqtt_broker.port, state_topic)


async def test_bad_command_payloads_do_not_crash_the_uplink(
    tmp_path: Path, mqtt_broker: Any, site_id: str, subscribe: Any, kit: Any
) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    commands: list[Command] = []

    async def on_command(command: Command) -> None:
        commands.append(command)
        if command.command == "explode":
            raise RuntimeError("handler bug")

    uplink = make_uplink(box, mqtt_broker.url, site_id, kit, on_command=on_command)
    task = asyncio.create_task(uplink.run())
    cmd_topic = f"xq/v1/{site_id}/{kit.GW}/cmd"
    try:
        await kit.until(lambda: uplink.connected, what="connection")
        await kit.until(lambda: uplink.inflight() == 0, what="birth acknowledged")
        good = Command(gw=kit.GW, seq=1, ts=datetime.now(UTC), device="dc1", command="unlock")
        boom = Command(gw=kit.GW, seq=2, ts=datetime.now(UTC), device="dc1", command="explode")
        other_gw = Command(gw="someone-else", seq=3, ts=datetime.now(UTC), device="dc1", command="unlock")
        bad = [
            b"",
            b"\xff\xfe not utf-8",
            b"not json",
            b"[1,2]",
            b'{"v": 9}',
            b'{"v": 1, "kind": "cmd"}',
            other_gw.model_dump_json().encode(),
        ]
        await asyncio.to_thread(
            publish_raw,
            mqtt_broker.host,
            mqtt_broker.port,
            cmd_topic,
            [*bad, boom.model_dump_json().encode(), good.model_dump_json().encode()],
        )
        await kit.until(lambda: len(commands) == 2, what="the two valid commands")
        assert [c.id for c in commands] == [boom.id, good.id]
        sub = subscribe(mqtt_broker.host, mqtt_broker.port, f"xq/v1/{site_id}/{kit.GW}/event")
        ev = kit.event(box.next_seq())
        box.put(ev)  # no wake(): the periodic refill must pick it up
        await kit.until(lambda: str(ev.id) in sub.ids(), what="an event after the bad commands")
        assert uplink.connected
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()
        clear_retained(mqtt_broker.host, mqtt_broker.port, f"xq/v1/{site_id}/{kit.GW}/state")


async def test_alarm_overtakes_a_telemetry_backlog(
    tmp_path: Path, own_broker: Any, site_id: str, subscribe: Any, receipter: Any, kit: Any
) -> None:
    receipter(own_broker.host, own_broker.port, site_id)
    backlog = 20_000
    window = 20
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    box.put_many([kit.telemetry(box.next_seq(), i) for i in range(backlog)])
    sub = subscribe(own_broker.host, own_broker.port, f"xq/v1/{site_id}/{kit.GW}/+")
    uplink = make_uplink(box, own_broker.url, site_id, kit, max_inflight=window)
    acked: list[OutboxRow] = []
    uplink.on_ack = acked.append
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: uplink.acked_total()["telemetry"] >= 1000, what="the drain to start")
        al = kit.alarm(box.next_seq())
        box.put(al)
        uplink.wake()
        acked_at_put = len(acked)
        await kit.until(lambda: uplink.acked_total()["alarm"] == 1, what="the alarm's PUBACK")
        position = next(i for i, row in enumerate(acked) if row.lane == "alarm")
        # At most the window already in flight (plus one row picked concurrently) is acknowledged first.
        assert position - acked_at_put <= window + 1
        await kit.until(lambda: str(al.id) in sub.ids(), what="the alarm at the subscriber")
        stream = [m.body["id"] for m in sub.snapshot() if m.topic.endswith(("/event", "/telemetry"))]
        assert stream.index(str(al.id)) < backlog - 1000  # it arrived well before the backlog drained
        await kit.until(lambda: sum(box.depth().values()) == 0, what="the backlog to drain")
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


async def test_rows_stay_until_puback(tmp_path: Path, own_broker: Any, site_id: str, subscribe: Any, kit: Any) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    messages = [kit.telemetry(box.next_seq(), i) for i in range(3000)]
    box.put_many(messages)
    all_ids = {str(m.id) for m in messages}
    uplink = make_uplink(box, own_broker.url, site_id, kit, max_inflight=50, keepalive_s=60)
    acked_ids: set[str] = set()
    lock = threading.Lock()

    def on_ack(row: OutboxRow) -> None:
        with lock:
            acked_ids.add(json.loads(row.payload)["id"])

    def acked() -> set[str]:
        with lock:
            return set(acked_ids)

    uplink.on_ack = on_ack
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: len(acked()) >= 300, what="part of the drain")
        own_broker.pause()  # the broker stops answering: no more PUBACKs

        def settled() -> bool:
            in_db = ids_in(box.config.path)
            done = acked()  # read after the rows: a row missing from both was deleted without a PUBACK
            assert not all_ids - in_db - done, "a row was deleted before its PUBACK"
            return uplink.inflight() == 50 and in_db == all_ids - done

        await kit.until(settled, what="a full window waiting for PUBACKs, acked rows deleted and no others")
        remaining = all_ids - acked()
        assert len(remaining) >= 50
        assert box.depth()["telemetry"] == len(remaining)
        own_broker.resume()
        await kit.until(lambda: sum(box.depth().values()) == 0, what="the rest to drain")
        assert acked() == all_ids
    finally:
        own_broker.resume()
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


async def test_broker_restart_drains_everything(
    tmp_path: Path, own_broker: Any, site_id: str, receipter: Any, kit: Any
) -> None:
    receipter(own_broker.host, own_broker.port, site_id)  # reconnects (and re-subscribes) after the restart
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    before = [kit.telemetry(box.next_seq(), i) for i in range(5000)]
    box.put_many(before)
    uplink = make_uplink(box, own_broker.url, site_id, kit, keepalive_s=5)
    acks: list[str] = []  # message ids in PUBACK order (the on_ack hook runs in the network thread)
    uplink.on_ack = lambda row: acks.append(json.loads(row.payload)["id"])
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: len(acks) >= 500, what="part of the drain")
        own_broker.kill()
        await kit.until(lambda: not uplink.connected, what="the uplink to notice")
        acked_before = len(acks)
        during = [kit.alarm(box.next_seq()), *(kit.telemetry(box.next_seq(), i) for i in range(100))]
        for m in during:
            box.put(m)
            uplink.wake()
        assert box.depth()["alarm"] == 1
        assert uplink.state in ("connecting", "backoff")
        own_broker.start()
        await kit.until(lambda: sum(box.depth().values()) == 0, what="everything to drain after the restart")
        assert uplink.connected
        # The restarted broker acknowledged every row not acknowledged before the crash, the alarm first.
        after = acks[acked_before:]
        assert after[0] == str(during[0].id)
        wanted = {str(m.id) for m in [*before, *during]}
        assert wanted - set(acks[:acked_before]) <= set(after)
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


def _read_lines(proc: subprocess.Popen[bytes], lines: list[bytes]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)


async def test_kill_9_loses_nothing_and_seq_never_repeats(
    tmp_path: Path, own_broker: Any, site_id: str, subscribe: Any, receipter: Any, kit: Any
) -> None:
    db = tmp_path / "o.db"
    sub = subscribe(own_broker.host, own_broker.port, f"xq/v1/{site_id}/{kit.GW}/+")
    accepted: set[str] = set()
    rounds: list[list[int]] = []
    rnd = random.Random()
    for round_no in range(2):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), own_broker.url, site_id, kit.GW, str(rnd.randrange(10**6))],
            stdout=subprocess.PIPE,
            env=kit.child_env(),
        )
        lines: list[bytes] = []
        reader = threading.Thread(target=_read_lines, args=(proc, lines), daemon=True)
        reader.start()
        try:
            await kit.until(lambda: len(lines) >= 300, what=f"child {round_no} to accept messages")  # noqa: B023
            await asyncio.sleep(rnd.uniform(0.0, 1.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        reader.join(10)
        complete = [line.decode().split() for line in lines if line.endswith(b"\n")]
        accepted |= {msg_id for msg_id, _ in complete}
        rounds.append([int(seq) for _, seq in complete])
    assert min(rounds[1]) > max(rounds[0])  # numbers are never reused after a kill -9
    assert len(set(rounds[0] + rounds[1])) == len(rounds[0]) + len(rounds[1])

    in_box = ids_in(db)
    await kit.until(lambda: accepted <= sub.ids() | in_box, what="ids in = ids delivered or still queued")

    state_topic = f"xq/v1/{site_id}/{kit.GW}/state"
    wills = [m.body for m in sub.snapshot() if m.topic == state_topic and m.body.get("state") == "offline"]
    assert any(w.get("reason") == "connection lost" for w in wills)  # the last will of a killed child

    box = Outbox(OutboxConfig(path=db), kit.GW)
    assert box.next_seq() > max(rounds[1])
    assert sum(box.depth().values()) == len(in_box)
    receipter(own_broker.host, own_broker.port, site_id)  # the children's events wait for their receipts
    uplink = make_uplink(box, own_broker.url, site_id, kit, receipt_timeout_s=0.5)
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: sum(box.depth().values()) == 0, what="the restarted uplink to drain")
        await kit.until(lambda: accepted <= sub.ids(), what="every accepted id delivered")
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _make_certs(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=xq-test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip


@pytest.fixture
def cert_dir() -> Iterator[Path]:
    """Certificates mosquitto can read after dropping root to its own user (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="xq-tls-"))
    d.chmod(0o755)
    _make_certs(d)
    for f in d.iterdir():
        f.chmod(0o644)  # a throw-away test key
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def test_tls_uplink(tmp_path: Path, cert_dir: Path, site_id: str, kit: Any) -> None:
    port = kit.free_port()
    conf = cert_dir / "tls.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
        f"cafile {cert_dir / 'ca.crt'}\ncertfile {cert_dir / 'server.crt'}\nkeyfile {cert_dir / 'server.key'}\n"
    )
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL)
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    uplink = make_uplink(box, f"mqtts://127.0.0.1:{port}", site_id, kit, ca_file=cert_dir / "ca.crt")
    task = asyncio.create_task(uplink.run())
    try:
        box.put(kit.alarm(box.next_seq()))
        await kit.until(lambda: uplink.acked_total()["alarm"] == 1, what="an alarm acknowledged over TLS")
        await kit.until(lambda: box.awaiting_receipt()["alarm"] == 1, what="its row awaiting the backend's receipt")
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        # A broker whose certificate we cannot verify: no connection, the row stays, retries go on.
        uplink = make_uplink(box, f"mqtts://127.0.0.1:{port}", site_id, kit)
        task = asyncio.create_task(uplink.run())
        box.put(kit.alarm(box.next_seq()))
        await kit.until(lambda: uplink.state == "backoff", what="a refused TLS handshake")
        assert not uplink.connected and box.depth()["alarm"] == 2
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()
        broker.kill()
        broker.wait()


async def test_refused_connection_backs_off_and_keeps_rows(tmp_path: Path, site_id: str, kit: Any) -> None:
    port = kit.free_port()
    conf = tmp_path / "closed.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\nlog_dest none\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL)
    kit.wait_for(lambda: _listening(port), what="the broker to listen")  # so the refusal is a CONNACK
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    box.put(kit.alarm(box.next_seq()))

    def broken_birth() -> Any:
        raise ValueError("a device list that does not validate")

    uplink = Uplink(
        UplinkConfig(url=f"mqtt://127.0.0.1:{port}", reconnect_min_s=0.1, reconnect_max_s=0.2),
        site=site_id, gateway_id=kit.GW, outbox=box, birth=broken_birth,
    )  # fmt: skip
    task = asyncio.create_task(uplink.run())
    try:
        await kit.until(lambda: uplink.state == "backoff", what="the refused CONNACK")
        await kit.until(lambda: uplink.state != "backoff", what="a retry")
        assert not task.done() and not uplink.connected and box.depth()["alarm"] == 1
    finally:
        await uplink.stop()
        await asyncio.wait_for(task, 10)
        box.close()
        broker.kill()
        broker.wait()


async def test_stop_before_run_started(tmp_path: Path, site_id: str, kit: Any) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    uplink = make_uplink(box, "mqtt://127.0.0.1:1", site_id, kit)
    task = asyncio.create_task(uplink.run())
    await uplink.stop()  # the task has not run yet: it must still end
    await asyncio.wait_for(task, 10)
    assert uplink.state == "stopped"
    box.close()
