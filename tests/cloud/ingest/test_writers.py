"""The parts of the per-kind writers that need no database: sorting a batch by kind, what the telemetry of a
batch touches, and the minute ranges queued for the rollup refresh."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from cloud.ingest.models import DecodedBatch, Inbound
from cloud.ingest.store import _sort
from cloud.ingest.writers.state import birth_devices
from cloud.ingest.writers.telemetry import EPOCH, minute_ranges, plan
from contract.codec import decode, encode
from contract.messages import DeviceInfo, Event, GatewayState, Location, PointSample, TelemetryBatch

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def _inbound(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, 1, 1, T0)


def _add(out: DecodedBatch, seen: set[uuid.UUID], kind: str, msg: TelemetryBatch | Event | GatewayState) -> None:
    item = _inbound(f"xq/v1/s1/gw1/{kind}", encode(msg))
    topic, message = decode(item.topic, item.payload)
    _sort(out, seen, item, topic, message)


def _telemetry(points: list[tuple[str, datetime]]) -> TelemetryBatch:
    return TelemetryBatch(
        gw="gw1", seq=1, ts=T0, points=[PointSample(device=d, point="temp", ts=ts, value=1.0) for d, ts in points]
    )


def test_a_batch_is_sorted_by_kind_and_repeated_ids_count_as_duplicates() -> None:
    out, seen = DecodedBatch(), set[uuid.UUID]()
    t = _telemetry([("d1", T0)])
    e = Event(gw="gw1", seq=2, ts=T0, device="d1", event="smoke.alarm", key="smoke.alarm",
              active=True, severity="critical")
    birth = GatewayState(
        gw="gw1", seq=3, ts=T0, state="online",
        devices=[DeviceInfo(device="d9", profile="p", location=Location(site="s1", building="B1"))],
    )
    for kind, msg in (("telemetry", t), ("event", e), ("event", e), ("state", birth), ("state", birth)):
        _add(out, seen, kind, msg)
    assert [r.message.id for r in out.telemetry] == [t.id]
    assert [r.message.id for r in out.events] == [e.id]
    assert len(out.states) == 2  # state messages are guarded by (epoch, seq) in the database, not by id
    assert out.duplicates == 1
    assert out.events[0].topic.site == "s1"
    assert birth_devices(out.states) == {"d9"}


def test_the_telemetry_plan_names_devices_minutes_and_days() -> None:
    t1 = _telemetry([("d1", T0), ("d2", T0 + timedelta(minutes=2))])
    t2 = _telemetry([("d3", T0 + timedelta(days=1))])
    out, seen = DecodedBatch(), set[uuid.UUID]()
    for t in (t1, t2):
        _add(out, seen, "telemetry", t)
    todo = plan(out.telemetry)
    assert todo.devices == {"d1", "d2", "d3"}
    assert todo.by_message == {t1.id: {"d1", "d2"}, t2.id: {"d3"}}
    m0 = int(T0.timestamp()) // 60
    assert todo.minutes == {m0, m0 + 1, m0 + 2, m0 + 1440}
    assert todo.days == {m0 // 1440, m0 // 1440 + 1}


def test_minute_ranges_are_contiguous_and_half_open() -> None:
    assert minute_ranges([]) == []
    assert minute_ranges([5, 3, 4, 9]) == [
        (EPOCH + timedelta(minutes=3), EPOCH + timedelta(minutes=6)),
        (EPOCH + timedelta(minutes=9), EPOCH + timedelta(minutes=10)),
    ]
