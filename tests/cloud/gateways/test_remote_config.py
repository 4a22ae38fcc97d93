"""Gateway config from the backend, end to end: API/CLI → PostgreSQL → retained MQTT → the running agent.

Real parts: PostgreSQL (the versioned table), the backend (API + its MQTT publisher), Mosquitto, the gateway
agent with its uplink and outbox, pymodbus elevators. The gateway's state messages are applied to the
database with the same function the ingest worker uses (cloud.devices.registry.register_birth).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract.codec import decode_as
from contract.messages import Event, GatewayState, TelemetryBatch
from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import load_config
from simulators.modbus import ModbusDeviceServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "password-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(cond: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Observer:
    """The backend's view of the gateway's topics (telemetry, events, state)."""

    def __init__(self, host: str, port: int, site: str, gw: str) -> None:
        self.prefix = f"xq/v1/{site}/{gw}/"
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"obs-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(self.prefix + "#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def _of(self, kind: str, model: type, after: int) -> list[Any]:
        with self.lock:
            return [decode_as(model, p) for t, p in self.messages[after:] if t == self.prefix + kind and p]

    def telemetry_from(self, device: str, after: int = 0) -> bool:
        return any(p.device == device for b in self._of("telemetry", TelemetryBatch, after) for p in b.points)

    def states(self, after: int = 0) -> list[GatewayState]:
        return [s for s in self._of("state", GatewayState, after) if s.state == "online"]

    def events(self, after: int = 0) -> list[Event]:
        return self._of("event", Event, after)

    def clear_retained(self) -> None:
        for kind in ("config", "state"):
            self.client.publish(self.prefix + kind, b"", qos=1, retain=True).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _device(dev_id: str, profile: str, site: str, port: int, building: str = "B1") -> str:
    return (f"  - {{id: {dev_id}, profile: {profile}, location: {{site: {site}, building: {building}}}, "
            f"poll_interval_s: 0.2, connection: {{kind: modbus_tcp, host: 127.0.0.1, port: {port}, unit: 1}}}}\n")


@dataclass
class Rig:
    site: str
    gw: str
    api: str
    dsn: str
    broker: Any
    local: Path
    observer: Observer
    lift1: ModbusDeviceServer
    lift2: ModbusDeviceServer


@pytest.fixture
async def rig(db: str, tmp_path: Path, mqtt_broker: Any, site_id: str) -> AsyncIterator[Rig]:
    from cloud.api.config import ApiConfig
    from cloud.auth.roles import Role
    from cloud.auth.store import add_user
    from cloud.config import BackendConfig, DecisionConfig
    from cloud.db import DatabaseConfig
    from cloud.ingest.config import MqttConfig
    from cloud.serve import Backend

    gw = f"gw-rc-{uuid.uuid4().hex[:6]}"  # its own MQTT session (clean_session=False) per run
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s)", (site_id, site_id))
        conn.execute("INSERT INTO gateways (id, site_id) VALUES (%s, %s)", (gw, site_id))
    port = _free_port()
    config = BackendConfig(
        database=DatabaseConfig(dsn=db, pool_max=4),
        api=ApiConfig(port=port, jwt_secret="remote-config-test-secret-0123456789", evidence_dir=tmp_path / "ev"),
        mqtt=MqttConfig(host=mqtt_broker.host, port=mqtt_broker.port),
        decision=DecisionConfig(client_id=f"xq-rc-{uuid.uuid4().hex[:8]}"),
    )
    backend = Backend(config, run_timers=False)
    await backend.start()
    assert backend.pool is not None
    async with backend.pool.connection() as conn:
        await add_user(conn, "inst", PASSWORD, Role.INSTALLER)
        await add_user(conn, "pm", PASSWORD, Role.PROPERTY_MANAGER)
    profile = load_catalog().get("acme-em200")
    observer = Observer(mqtt_broker.host, mqtt_broker.port, site_id, gw)
    async with ModbusDeviceServer(profile, device_id="lift1") as lift1, \
            ModbusDeviceServer(profile, device_id="lift2") as lift2:
        local = tmp_path / "gateway.yaml"
        local.write_text(
            f"gateway_id: {gw}\nsite: {site_id}\nmetrics_port: null\nhealth_interval_s: 1\n"
            f"uplink: {{url: '{mqtt_broker.url}'}}\noutbox: {{path: {tmp_path / 'state' / 'outbox.sqlite3'}}}\n"
            "devices:\n" + _device("lift1", "acme-em200", site_id, lift1.endpoint[1])
        )
        try:
            yield Rig(site_id, gw, f"http://127.0.0.1:{port}", db, mqtt_broker, local, observer, lift1, lift2)
        finally:
            observer.clear_retained()
            observer.close()
            await backend.stop()


async def _token(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    r = await client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _apply_state(dsn: str, site: str, state: GatewayState) -> None:
    """What the ingest worker does with a state message."""
    from cloud.devices.registry import register_birth

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        register_birth(cur, site, state, datetime.now(UTC))


async def _run(agent: GatewayAgent) -> asyncio.Task[None]:
    task = asyncio.create_task(agent.run())
    await wait_for(lambda: agent.ready, "gateway up")
    return task


async def test_pushed_config_is_applied_live_refused_when_broken_and_kept_across_restarts(rig: Rig) -> None:
    obs = rig.observer
    config, catalog = load_config(rig.local)
    agent = GatewayAgent(config, catalog, with_video=False)
    task = await _run(agent)
    try:
        await wait_for(lambda: obs.telemetry_from("lift1"), "lift1 telemetry (local file)")
        rig.lift1.set("fault.overspeed", True)
        await wait_for(lambda: any(e.event == "elevator.overspeed" and e.active for e in obs.events()), "alarm")
        lift1_rules = agent.rules["lift1"]

        # v1 over the API: adds lift2 (and keeps lift1 as it is).
        before = obs.count()
        v1 = ("devices:\n" + _device("lift1", "acme-em200", rig.site, rig.lift1.endpoint[1])
              + _device("lift2", "acme-em200", rig.site, rig.lift2.endpoint[1]))
        async with httpx.AsyncClient(base_url=rig.api) as client:
            r = await client.put(f"/api/gateways/{rig.gw}/config", json={"document": v1},
                                 headers=await _token(client, "pm"))
            assert r.status_code == 403  # property managers do not configure gateways
            r = await client.put(f"/api/gateways/{rig.gw}/config", json={"document": v1, "comment": "add lift2"},
                                 headers=await _token(client, "inst"))
            assert r.status_code == 201, r.text
            assert r.json()["version"] == 1 and r.json()["published"] is True
        await wait_for(lambda: obs.telemetry_from("lift2", after=before), "lift2 telemetry without a restart")
        await wait_for(lambda: any(s.config_version == 1 for s in obs.states(before)), "state with config v1")
        assert agent.rules["lift1"] is lift1_rules  # unchanged device: its state and active alarm are kept
        assert not any(e.event == "elevator.overspeed" and not e.active for e in obs.events())
        assert not task.done()

        # v2 with the CLI: broken (an unknown profile) → refused with file:line: field on the state.
        broken = rig.local.parent / "v2.yaml"
        broken.write_text(v1 + _device("lift3", "no-such-lift", rig.site, 1))
        cli = [sys.executable, "-m", "xiaoqu", "gateway", "config"]
        mqtt_arg = f"{rig.broker.host}:{rig.broker.port}"
        before = obs.count()
        out = await asyncio.to_thread(subprocess.run, [*cli, "push", str(broken), "-g", rig.gw, "--dsn", rig.dsn,
                                                        "--mqtt", mqtt_arg, "-m", "lift3"],
                                      capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0, out.stderr
        assert "stored config v2" in out.stdout
        await wait_for(lambda: any(s.config_error for s in obs.states(before)), "state with the refusal")
        refused = next(s for s in obs.states(before) if s.config_error)
        assert refused.config_version == 1
        assert "config v2:4: devices[2].profile: unknown profile 'no-such-lift'" in refused.config_error
        after_refusal = obs.count()
        rig.lift2.set("car.floor", 7)  # telemetry is by exception: a change shows the poller still runs
        await wait_for(lambda: obs.telemetry_from("lift2", after=after_refusal), "v1 still running")
        assert "lift3" not in agent.rules

        _apply_state(rig.dsn, rig.site, refused)
        async with httpx.AsyncClient(base_url=rig.api) as client:
            headers = await _token(client, "inst")
            body = (await client.get(f"/api/gateways/{rig.gw}/config", headers=headers)).json()
            assert body["version"] == 2 and body["applied"]["config_version"] == 1
            assert "unknown profile" in body["applied"]["config_error"]
            history = (await client.get(f"/api/gateways/{rig.gw}/config/history", headers=headers)).json()
            assert [(v["version"], v["comment"]) for v in history["versions"]] == [(2, "lift3"), (1, "add lift2")]
        out = await asyncio.to_thread(subprocess.run, [*cli, "history", "-g", rig.gw, "--dsn", rig.dsn],
                                      capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 0 and "running config v1; last push refused" in out.stdout
        assert "* v1" in out.stdout and "  v2" in out.stdout
    finally:
        agent.stop()
        await asyncio.wait_for(task, 30)

    # Restart with the same local file (lift1 only): the last good pushed config (v1) is used from the start.
    config, catalog = load_config(rig.local)
    agent = GatewayAgent(config, catalog, with_video=False)
    assert agent.config_version == 1 and set(agent.rules) == {"lift1", "lift2"}
    before = obs.count()
    task = await _run(agent)
    try:
        await wait_for(lambda: obs.telemetry_from("lift2", after=before), "lift2 telemetry after the restart")
        # The retained v2 arrives again on connect and is refused again; v1 runs on.
        await wait_for(lambda: any(s.config_error for s in obs.states(before)), "refusal after restart")
        assert agent.config_version == 1
        stored = json.loads((rig.local.parent / "state/remote-config/last-good.json").read_text())
        assert stored["version"] == 1
    finally:
        agent.stop()
        await asyncio.wait_for(task, 30)
