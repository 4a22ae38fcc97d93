"""Done-when for alarm identity, through every real part: a simulated fire panel (pymodbus, the profile's
register map) polled by the gateway agent with the zone map ``gateway-config`` generates, Mosquitto, the
ingest worker, PostgreSQL and the decision engine. Zone 12 raises, then zone 13, then zone 12 clears:
two alarms, zone 13 stays active, each at its own floor; the two zones are two independent signals
(GB 50116 §4.1.6), so the backend opens a confirmed-fire incident and its linkage commands reach the
building's door controller and elevator through the gateway, which acknowledges them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import rows, until
from psycopg_pool import AsyncConnectionPool

from cloud.alarms.engine import DecisionEngine
from cloud.alarms.rules import load_rules
from cloud.alarms.testkit import migrate_all
from cloud.db import DatabaseConfig
from cloud.dispatch.mqtt import MqttPublisher, PublisherConfig
from cloud.ingest.config import IngestConfig
from cloud.ingest.worker import IngestWorker
from device_profiles.loader import load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig, check_against_catalog
from simulators.compound import SimulatedCompound
from simulators.gateway_config import build_gateway_config
from simulators.layout import load_layout

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATALOG = load_catalog()

TOWER = """\
# One 13-floor building: a fire panel in the ground-floor fire control room whose zone n covers floor n,
# one elevator and the entrance door controller.
site: {id: tower, name: Tower}
modbus: {host: 127.0.0.1, port_base: 0}
buildings:
  - id: b1
    name: 1号楼
    floors: 13
    units_per_floor: 1
    gateway: b1-gw
    buses:
      - {id: b1-lift-bus}
    devices:
      - {id: b1-fp, profile: gst-fp200, floor: 1, location: fire control room, modbus: {unit: 1}, params: {zones: 13}}
      - {id: b1-el1, profile: acme-em200, location: lift 1, modbus: {bus: b1-lift-bus, unit: 1},
         params: {floors: 13, floor_s: 0.1}}
      - {id: b1-door, profile: acme-dc100, floor: 1, location: building entrance}
"""




async def test_panel_zone_12_then_13_then_clear_12(tmp_path: Path, pg_dsn: str, mqtt_broker: Any,
                                                   site_id: str) -> None:
    migrate_all(pg_dsn)
    (tmp_path / "tower.yaml").write_text(TOWER, encoding="utf-8")
    layout = load_layout(tmp_path / "tower.yaml", CATALOG).with_id_prefix(f"{site_id}-")
    p = f"{site_id}-"
    worker = IngestWorker(DatabaseConfig(dsn=pg_dsn, flavour="native"), IngestConfig.model_validate({
        "mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port}, "client_id": f"ing-{site_id}",
        "group": f"g{site_id}", "site": site_id, "batch_max_wait_ms": 30, "session_expiry_s": 60,
    }))
    worker.start()
    publisher = MqttPublisher(PublisherConfig(host=mqtt_broker.host, port=mqtt_broker.port,
                                              client_id=f"dec-{site_id}"))
    publisher.start()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False)
    await pool.open(wait=True)
    engine = DecisionEngine(pool, load_rules(), publisher=publisher)
    stop, ready = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(engine.listen(pg_dsn, stop, ready))
    agent: GatewayAgent | None = None
    agent_task: asyncio.Task[None] | None = None
    try:
        await until(worker.subscribed.is_set, "ingest subscribed")
        await asyncio.wait_for(ready.wait(), 10)
        async with SimulatedCompound(layout, catalog=CATALOG, cameras=False) as sim:
            data = build_gateway_config(layout, CATALOG, f"{p}b1-gw", sim.port_map())
            data["site"] = site_id  # this test's own site: its topics never mix with other runs'
            for d in data["devices"]:
                d["location"]["site"] = site_id
            data["uplink"] = {"url": mqtt_broker.url}
            data["outbox"] = {"path": str(tmp_path / "outbox.sqlite3")}
            config = GatewayConfig.model_validate(data)
            assert not check_against_catalog(config, CATALOG)
            panel_cfg = config.device(f"{p}b1-fp")
            assert panel_cfg is not None and panel_cfg.zones is not None and len(panel_cfg.zones) == 13
            agent = GatewayAgent(config, CATALOG, with_video=False)
            agent_task = asyncio.create_task(agent.run())
            panel_id, lift, door = f"{p}b1-fp", f"{p}b1-el1", f"{p}b1-door"
            await until(lambda: rows(pg_dsn, "SELECT count(*) FROM devices WHERE gateway_id = %s",
                                     f"{p}b1-gw")[0][0] == 3, "the gateway's birth registered its devices")
            await until(lambda: agent is not None and agent.rules[panel_id].online, "panel polled")
            panel = sim.device(panel_id)

            def alarms() -> list[tuple[Any, ...]]:
                return rows(pg_dsn, "SELECT key, active, building, floor FROM alarms WHERE device_id = %s "
                                    "AND type = 'fire.alarm' ORDER BY key", panel_id)

            panel.set("zone12.fire", True)
            await until(lambda: alarms() == [("fire.alarm#12", True, "b1", 12)], "zone 12's alarm")
            assert rows(pg_dsn, "SELECT count(*) FROM incidents") == [(0,)]  # one zone is one signal
            panel.set("zone13.fire", True)
            await until(lambda: len(alarms()) == 2, "zone 13's alarm")
            incident = await until(lambda: rows(pg_dsn, "SELECT id, kind, building, alarm_ids FROM incidents"),
                                   "the confirmed-fire incident")
            panel.set("zone12.fire", False)
            await until(lambda: ("fire.alarm#12", False, "b1", 12) in alarms(), "zone 12 cleared")

            # two alarms; the clear of zone 12 left zone 13 burning; each at its own floor (not the panel's F1)
            assert alarms() == [("fire.alarm#12", False, "b1", 12), ("fire.alarm#13", True, "b1", 13)]
            ids = [i for (i,) in rows(pg_dsn, "SELECT id FROM alarms WHERE device_id = %s ORDER BY id", panel_id)]
            ((incident_id, kind, building, alarm_ids),) = incident
            assert (kind, building, sorted(alarm_ids)) == ("fire", "b1", ids)
            # the linkage plan's commands went down to the gateway, ran on the devices, and came back acked
            await until(lambda: rows(pg_dsn, "SELECT count(*) FROM commands WHERE state = 'succeeded'")[0][0] == 2,
                        "linkage commands acknowledged")
            assert rows(pg_dsn, "SELECT device_id, command, origin FROM commands ORDER BY command") == [
                (lift, "fire_recall", f"incident:{incident_id}"), (door, "release_all", f"incident:{incident_id}")]
            assert sim.mqtt_device(door).state["mode"] == "released"
            stored = rows(pg_dsn, "SELECT key, location->>'floor' FROM events WHERE device_id = %s "
                                  "AND type = 'fire.alarm' ORDER BY seq", panel_id)
            assert stored == [("fire.alarm#12", "12"), ("fire.alarm#13", "13"), ("fire.alarm#12", "12")]
            agent.stop()
            await asyncio.wait_for(agent_task, 20)
            agent_task = None
    finally:
        if agent is not None and agent_task is not None:
            agent.stop()
            await asyncio.wait_for(agent_task, 20)
        stop.set()
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await pool.close()
        publisher.stop()
        worker.stop()
