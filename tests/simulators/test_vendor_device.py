"""A vendor MQTT device nobody here wrote code for, onboarded from its profile alone
(``device_profiles/gas_detector/tianlan-gv40.yaml``): the simulated GV-40 (its own JSON: a key/value list in
random order, string values, an integer ``seq``, result codes, a last will), the real gateway agent, the real
ingest and decision engine, Mosquitto and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from cloud.alarms.engine import DecisionEngine
from cloud.alarms.rules import load_rules
from cloud.alarms.testkit import migrate_all
from cloud.db import DatabaseConfig
from cloud.dispatch.mqtt import MqttPublisher, PublisherConfig
from cloud.ingest.config import IngestConfig
from cloud.ingest.worker import IngestWorker
from contract.mqtt import MqttSettings
from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig
from simulators.vendor_devices import TianlanGasDetector

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Rig:
    dsn: str
    site: str
    device_id: str
    sim: TianlanGasDetector
    engine: DecisionEngine
    agent: GatewayAgent

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql, args).fetchall()

    def one(self, sql: str, *args: Any) -> Any:
        rows = self.rows(sql, *args)
        return rows[0][0] if rows else None

    async def command(self, name: str, ack_timeout_s: float | None = None) -> UUID:
        """What POST /api/commands does: queue in a transaction, publish after commit."""
        async with self.engine.pool.connection() as conn, conn.transaction():
            cid = await self.engine.issue_command(
                conn, device_id=self.device_id, command=name, args={}, actor="pm1",
                ack_timeout=timedelta(seconds=ack_timeout_s) if ack_timeout_s else None,
            )
        await self.engine.send([cid])
        return cid


async def until(cond: Callable[[], object], what: str, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {value!r})")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def rig(pg_dsn: str, broker: Any, site: str, tmp: Path, *, reply_delay_s: float = 0.2,
              command_timeout_s: float | None = None) -> AsyncIterator[Rig]:
    migrate_all(pg_dsn)
    worker = IngestWorker(
        DatabaseConfig(dsn=pg_dsn, flavour="native"),
        IngestConfig(mqtt=MqttSettings(host=broker.host, port=broker.port), client_id=f"ing-{site}", group=f"g{site}",
                     site=site, batch_max_wait_ms=30, presence_flush_s=0.3, session_expiry_s=60),
    )
    worker.start()
    publisher = MqttPublisher(PublisherConfig(host=broker.host, port=broker.port, client_id=f"dec-{site}"))
    publisher.start()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False)
    await pool.open(wait=True)
    engine = DecisionEngine(pool, load_rules(), publisher=publisher)
    stop, ready = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(engine.listen(pg_dsn, stop, ready)),
             asyncio.create_task(engine.run_timers(stop, 0.2))]
    device_id = f"{site}-gas1"
    config = GatewayConfig.model_validate({
        "gateway_id": f"{site}-gw", "site": site, "uplink": {"url": broker.url},
        "outbox": {"path": str(tmp / "outbox.sqlite3")}, "metrics_port": None, "health_interval_s": 5,
        "telemetry": {"flush_s": 0.2, "full_report_interval_s": 2}, "command_timeout_s": command_timeout_s,
        "devices": [{"id": device_id, "profile": "tianlan-gv40", "name": "kitchen gas detector",
                     "location": {"site": site, "building": "B1", "floor": 3, "unit": "302"},
                     "connection": {"kind": "mqtt"}}],
    })
    agent = GatewayAgent(config, load_catalog(), with_video=False)
    agent_task = asyncio.create_task(agent.run())
    sim = TianlanGasDetector(device_id, broker.host, broker.port, report_s=0.5, reply_delay_s=reply_delay_s)
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await until(lambda: worker.subscribed.is_set(), "ingest subscribed")
        await until(lambda: agent.uplink.connected and all(b.connected for b in agent.bridges), "gateway connected")
        sim.start()
        yield Rig(pg_dsn, site, device_id, sim, engine, agent)
    finally:
        with contextlib.suppress(OSError):
            sim.stop()
        agent.stop()
        try:
            await asyncio.wait_for(agent_task, 20)  # a gateway that does not stop fails the test …
        finally:  # … after the backend's parts are stopped, so the failure is reported, not a hang
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pool.close()
            publisher.stop()
            worker.stop()


async def test_vendor_device_onboarded_from_its_profile_alone(pg_dsn, mqtt_broker, site_id, tmp_path) -> None:
    async with rig(pg_dsn, mqtt_broker, site_id, tmp_path) as r:
        dev = r.device_id

        def latest(point: str) -> tuple[Any, ...] | None:
            rows = r.rows("SELECT value, value_text, quality FROM telemetry WHERE device_id = %s AND point = %s "
                          "ORDER BY ts DESC LIMIT 1", dev, point)
            return rows[0] if rows else None

        # values typed and right, whatever the order of the vendor's list
        await until(lambda: latest("rssi_dbm"), "first report stored")
        assert latest("gas.concentration") == (3.5, None, 0)  # a number, not the text "3.5"
        assert latest("battery_pct") == (88.0, None, 0)
        assert latest("rssi_dbm") == (-67.0, None, 0)  # CSQ 23 → 2 × 23 − 113 dBm
        assert latest("fault") == (0.0, None, 0)
        assert latest("valve.state") == (None, "open", 0)
        assert latest("gas.level") == (None, "normal", 0)
        await until(lambda: r.one("SELECT state FROM devices WHERE id = %s", dev) == "online", "listed online")
        assert r.one("SELECT profile_id FROM devices WHERE id = %s", dev) == "tianlan-gv40"

        # the life-safety alarm: raised once while the leak lasts
        r.sim.set_gas(31.0)
        await until(lambda: r.one("SELECT count(*) FROM alarms WHERE device_id = %s AND type = 'gas.alarm' "
                                  "AND active", dev) == 1, "gas alarm raised")
        assert r.one("SELECT life_safety FROM alarms WHERE type = 'gas.alarm'") is True

        # close the valve: correlated by the device's own integer seq, result code 0 → succeeded
        close = await r.command("close_valve")
        assert r.one("SELECT ack_timeout_s FROM commands WHERE id = %s", close) == 30 + 15  # profile + margin
        await until(lambda: r.one("SELECT state FROM commands WHERE id = %s", close) == "succeeded", "valve closed")
        assert isinstance(r.sim.commands[0]["seq"], int) and r.sim.commands[0]["v"] == "off"
        await until(lambda: (latest("valve.state") or ())[1:2] == ("closed",), "valve state reported closed")

        # open it while the alarm is on: the device refuses (ret 1) and says why
        opened = await r.command("open_valve")
        await until(lambda: r.one("SELECT state FROM commands WHERE id = %s", opened) == "refused", "refused")
        assert "gas alarm active" in r.one("SELECT reason FROM commands WHERE id = %s", opened)
        assert not r.sim.valve_open

        # the leak ends: cleared, once; still one alarm and one raise + one clear event for all those reports
        r.sim.set_gas(4.0)
        await until(lambda: r.one("SELECT count(*) FROM alarms WHERE type = 'gas.alarm' AND active") == 0, "cleared")
        await asyncio.sleep(2)  # more reports of the same values (and a full report) go by
        assert r.one("SELECT count(*) FROM alarms WHERE type = 'gas.alarm'") == 1
        assert r.rows("SELECT active FROM events WHERE device_id = %s AND type = 'gas.alarm' ORDER BY ts", dev) == [
            (True,), (False,)]

        # its power goes: the broker publishes the last will → offline, in the list and as an alarm
        r.sim.power_off()
        await until(lambda: r.one("SELECT state FROM devices WHERE id = %s", dev) == "offline", "listed offline")
        await until(lambda: r.one("SELECT count(*) FROM alarms WHERE device_id = %s AND type = 'device.offline' "
                                  "AND active", dev) == 1, "offline alarm")
        offline_at = datetime.now(UTC)
        # the gateway's full reports keep republishing its last values, as quality bad: still offline
        await until(lambda: r.one("SELECT count(DISTINCT ts) FROM telemetry WHERE device_id = %s AND quality = 2 "
                                  "AND ts > %s", dev, offline_at) >= 2, "two full reports of stale values")
        flushed_after = datetime.now(UTC)
        await until(lambda: r.one("SELECT last_seen > %s FROM gateways", flushed_after), "a presence flush after them")
        assert r.one("SELECT state FROM devices WHERE id = %s", dev) == "offline"
        assert r.one("SELECT last_seen < %s FROM devices WHERE id = %s", offline_at, dev) is True
        assert r.one("SELECT count(*) FROM alarms WHERE device_id = %s AND type = 'device.offline' AND active",
                     dev) == 1


async def test_an_answer_after_the_backends_timeout_is_recorded(pg_dsn, mqtt_broker, site_id, tmp_path) -> None:
    async with rig(pg_dsn, mqtt_broker, site_id, tmp_path, reply_delay_s=3.0) as r:
        await until(lambda: r.one("SELECT state FROM devices WHERE id = %s", r.device_id) == "online", "online")
        cid = await r.command("close_valve", ack_timeout_s=1.0)  # shorter than the valve takes
        await until(lambda: r.one("SELECT state FROM commands WHERE id = %s", cid) == "timed_out", "timed out")
        await until(lambda: r.one("SELECT state FROM commands WHERE id = %s", cid) == "succeeded_late", "late answer")
        timed_out_at, answered_at = r.rows("SELECT timed_out_at, answered_at FROM commands WHERE id = %s", cid)[0]
        assert timed_out_at is not None and answered_at is not None and answered_at > timed_out_at
        assert not r.sim.valve_open  # it really closed


async def test_a_device_answer_after_the_gateways_own_timeout_is_recorded(
    pg_dsn, mqtt_broker, site_id, tmp_path
) -> None:
    async with rig(pg_dsn, mqtt_broker, site_id, tmp_path, reply_delay_s=3.0, command_timeout_s=1.0) as r:
        await until(lambda: r.one("SELECT state FROM devices WHERE id = %s", r.device_id) == "online", "online")
        cid = await r.command("close_valve")
        await until(lambda: r.one("SELECT state FROM commands WHERE id = %s", cid) == "timed_out", "gateway gave up")
        await until(lambda: r.one("SELECT state FROM commands WHERE id = %s", cid) == "succeeded_late", "late answer")
        statuses = r.rows("SELECT status, detail->>'late' FROM command_acks WHERE command_id = %s ORDER BY ts", cid)
        assert statuses == [("timed_out", None), ("succeeded", "true")]
        timed_out_at, answered_at = r.rows("SELECT timed_out_at, answered_at FROM commands WHERE id = %s", cid)[0]
        assert timed_out_at is not None and answered_at > timed_out_at
        assert not r.sim.valve_open
