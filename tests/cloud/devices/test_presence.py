"""Presence through the real ingest (Mosquitto + PostgreSQL): only the device itself refreshes ``last_seen``;
the gateway's device.offline events set the state, so the device list and the offline alarm agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.db import DatabaseConfig
from contract.codec import encode
from contract.messages import Event, PointSample, TelemetryBatch
from contract.topics import TopicKind, topic

pytestmark = pytest.mark.integration


def _samples(gw: str, seq: int, device: str, ts: datetime, quality: str) -> TelemetryBatch:
    return TelemetryBatch(gw=gw, seq=seq, ts=ts, points=[
        PointSample(device=device, point="gas.concentration", ts=ts, value=3.0, quality=quality),  # type: ignore[arg-type]
    ])


def _offline(gw: str, seq: int, device: str, ts: datetime, active: bool) -> Event:
    return Event(gw=gw, seq=seq, ts=ts, device=device, event="device.offline", key="device.offline",
                 severity="major", active=active, detail={"reason": "device reported offline (last will)"})


def test_stale_republished_values_never_bring_an_offline_device_back(
    migrated: DatabaseConfig, start_worker, publisher, site_id, h
) -> None:
    start_worker(migrated)
    dsn, gw = migrated.dsn, f"{site_id}-gw"
    publisher.publish(topic(site_id, gw, TopicKind.STATE), encode(h.birth(site_id, gw, ["gas1"])))
    h.wait_for(lambda: h.scalar(dsn, "SELECT count(*) FROM devices") == 1, what="device registered")
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    tel, ev = topic(site_id, gw, TopicKind.TELEMETRY), topic(site_id, gw, TopicKind.EVENT)

    publisher.publish(tel, encode(_samples(gw, 2, "gas1", t0, "good")))
    h.wait_for(lambda: h.scalar(dsn, "SELECT state FROM devices WHERE id = 'gas1'") == "online", what="online")

    publisher.publish(ev, encode(_offline(gw, 3, "gas1", t0 + timedelta(seconds=5), True)))
    h.wait_for(lambda: h.scalar(dsn, "SELECT state FROM devices WHERE id = 'gas1'") == "offline", what="offline")

    # the gateway's periodic full report: the last values again, quality bad, newer time stamps
    for i in range(3):
        publisher.publish(tel, encode(_samples(gw, 4 + i, "gas1", t0 + timedelta(seconds=10 + i), "bad")))
    h.wait_for(lambda: h.scalar(dsn, "SELECT count(*) FROM telemetry WHERE quality = 2") == 3, what="bad stored")
    # a message received after those, and a presence flush that includes it (so it includes them too)
    after = datetime.now(UTC)
    publisher.publish(tel, encode(_samples(gw, 9, "other", t0, "good")))  # unknown device: only the gateway counts
    h.wait_for(lambda: h.scalar(dsn, "SELECT last_seen >= %s FROM gateways", (after,)) is True, what="a later flush")
    assert h.scalar(dsn, "SELECT state FROM devices WHERE id = 'gas1'") == "offline"
    assert h.scalar(dsn, "SELECT last_seen FROM devices WHERE id = 'gas1'") == t0

    # the device really speaks again (the gateway clears device.offline): online
    publisher.publish(ev, encode(_offline(gw, 10, "gas1", t0 + timedelta(seconds=20), False)))
    h.wait_for(lambda: h.scalar(dsn, "SELECT state FROM devices WHERE id = 'gas1'") == "online", what="back online")
    assert h.scalar(dsn, "SELECT offline_since FROM devices WHERE id = 'gas1'") is None
