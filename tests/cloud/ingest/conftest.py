"""Fixtures for the ingest tests: a migrated database, a publisher and in-process workers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.db import DatabaseConfig
from cloud.db.migrate import migrate
from cloud.ingest.config import IngestConfig
from cloud.ingest.worker import IngestWorker
from contract.messages import DeviceInfo, GatewayState, Location, PointSample, TelemetryBatch
from contract.mqtt import MqttSettings


def wait_for(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def scalar(dsn: str, sql: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


@pytest.fixture
def migrated(pg_dsn: str) -> DatabaseConfig:
    db = DatabaseConfig(dsn=pg_dsn, flavour="native")
    migrate(db)
    return db


def ingest_config(broker_host: str, broker_port: int, site_id: str, **kw: object) -> IngestConfig:
    base: dict[str, object] = {
        "mqtt": MqttSettings(host=broker_host, port=broker_port),
        "client_id": f"ing-{site_id}",
        "group": f"g{site_id}",
        "site": site_id,
        "batch_max_wait_ms": 30,
        "presence_flush_s": 0.3,
        "maintenance_interval_s": 0.5,
        "session_expiry_s": 300,
    }
    base.update(kw)
    return IngestConfig.model_validate(base)


@pytest.fixture
def start_worker(mqtt_broker, site_id: str) -> Iterator[Callable[..., IngestWorker]]:
    workers: list[IngestWorker] = []

    def start(db: DatabaseConfig, index: int = 0, **kw: object) -> IngestWorker:
        on_committed = kw.pop("on_committed", None)
        cfg = ingest_config(mqtt_broker.host, mqtt_broker.port, site_id, **kw)
        w = IngestWorker(db, cfg, index=index, on_committed=on_committed)  # type: ignore[arg-type]
        w.start()
        workers.append(w)
        wait_for(w.subscribed.is_set, what="worker subscribed")
        return w

    yield start
    for w in workers:
        w.stop()


class Publisher:
    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mqtt_broker, site_id: str) -> Iterator[Publisher]:
    p = Publisher(mqtt_broker.host, mqtt_broker.port, f"pub-{site_id}")
    yield p
    p.close()


def birth(site: str, gw: str, devices: list[str], seq: int = 1) -> GatewayState:
    return GatewayState(
        gw=gw,
        seq=seq,
        ts=datetime.now(UTC),
        state="online",
        software="test",
        devices=[
            DeviceInfo(device=d, profile="smoke", location=Location(site=site, building="B1", floor=3)) for d in devices
        ],
    )


def telemetry(gw: str, seq: int, device: str, n: int, start: datetime | None = None) -> TelemetryBatch:
    t0 = start or datetime.now(UTC) - timedelta(seconds=n)
    return TelemetryBatch(
        gw=gw,
        seq=seq,
        ts=t0,
        points=[
            PointSample(device=device, point="temp", ts=t0 + timedelta(seconds=i), value=20.0 + i) for i in range(n)
        ],
    )


@pytest.fixture
def h() -> SimpleNamespace:
    """Helpers for the tests (conftest modules cannot be imported under --import-mode=importlib)."""
    return SimpleNamespace(birth=birth, telemetry=telemetry, scalar=scalar, wait_for=wait_for, Publisher=Publisher)
