import hashlib
import json
from datetime import UTC, datetime
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract import (
    Command,
    CommandAck,
    Event,
    GatewayState,
    MalformedMessage,
    PointSample,
    TelemetryBatch,
    UnsupportedVersion,
    decode,
    encode,
)
from contract.codec import topic_for
from contract.ids import new_id
from contract.messages import PROBE_COMMAND, DeviceInfo, Location, ProbePoint

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def _batch(n: int = 2) -> TelemetryBatch:
    return TelemetryBatch(
        gw="gw-1",
        seq=7,
        ts=NOW,
        points=[PointSample(device="fp-1", point=f"zone{i}.state", ts=NOW, value=i) for i in range(n)],
    )


def test_ids_are_unique_and_time_ordered() -> None:
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert all(i.version == 7 for i in ids)


@pytest.mark.parametrize(
    "message",
    [
        _batch(),
        Event(gw="gw-1", seq=1, ts=NOW, device="fp-1", event="fire.alarm", key="fire.alarm#12",
              severity="critical", active=True, life_safety=True, detail={"zone": 12}),
        GatewayState(gw="gw-1", seq=0, ts=NOW, state="online", devices=[
            DeviceInfo(device="fp-1", profile="gst-fp200", location=Location(site="s1", building="B3", floor=12))]),
        Command(gw="gw-1", seq=3, ts=NOW, device="el-1", command="fire_recall", args={"floor": 1}),
        CommandAck(gw="gw-1", seq=4, ts=NOW, command_id=new_id(), device="el-1", status="succeeded"),
        CommandAck(gw="gw-1", seq=5, ts=NOW, command_id=new_id(), device="hp-1", status="failed",
                   reason="1 of 2 points failed: pressure", probe=[
                       ProbePoint(name="pressure", label="管网压力", source="holding 0 float32", value=-1.59e-23,
                                  shown="-0.00", unit="MPa", ok=False, reason="below the plausible minimum 0.01"),
                       ProbePoint(name="status.low_pressure", source="holding 2 bit 1", value=True, shown="True",
                                  ok=True)]),
    ],
)
def test_round_trip_through_topic(message: TelemetryBatch | Event | GatewayState | Command | CommandAck) -> None:
    topic = topic_for("s1", message)
    parsed, back = decode(topic, encode(message))
    assert back == message
    assert parsed.gateway == "gw-1"


def test_an_ack_without_probe_results_is_what_it_was() -> None:
    """The probe field is additive: an ordinary ack encodes without it, and a receiver built before it reads
    every other ack unchanged."""
    ack = CommandAck(gw="gw-1", seq=4, ts=NOW, command_id=new_id(), device="el-1", status="succeeded")
    assert "probe" not in json.loads(encode(ack))
    assert PROBE_COMMAND == "gateway.probe"
    Command(gw="gw-1", seq=3, ts=NOW, device="el-1", command=PROBE_COMMAND)  # a valid command name


def test_unknown_version_is_its_own_error() -> None:
    raw = json.loads(encode(_batch()))
    raw["v"] = 3
    with pytest.raises(UnsupportedVersion, match="version 3 is not supported"):
        decode("xq/v1/s1/gw-1/telemetry", json.dumps(raw))


def test_version_1_event_is_upgraded_with_its_type_as_key() -> None:
    """A gateway not yet updated keeps delivering: v1 events are keyed as v1 backends keyed them."""
    v1 = {"v": 1, "id": "0190d3a0-0000-7000-8000-000000000001", "gw": "gw-1", "seq": 5,
          "ts": "2026-11-21T08:30:00Z", "kind": "event", "device": "fp-1", "event": "fire.alarm",
          "severity": "critical", "active": True, "life_safety": True, "detail": {"zone": 12}}
    _, msg = decode("xq/v1/s1/gw-1/event", json.dumps(v1))
    assert isinstance(msg, Event)
    assert (msg.v, msg.key, msg.epoch, msg.seq) == (2, "fire.alarm", 0, 5)
    assert msg.detail == {"zone": 12}


def test_version_1_with_v2_fields_names_the_field() -> None:
    v1 = json.loads(encode(_batch()))
    v1["v"] = 1
    v1["bogus"] = 1
    with pytest.raises(MalformedMessage, match=r"v1, upgraded.*bogus"):
        decode("xq/v1/s1/gw-1/telemetry", json.dumps(v1))


def test_receipt_and_config_round_trip() -> None:
    from contract.messages import GatewayConfigPush, Receipt

    rc = Receipt(gw="gw-1", seq=0, ts=NOW, ids=[new_id(), new_id()])
    _, back = decode("xq/v1/s1/gw-1/receipt", encode(rc))
    assert back == rc
    doc = "gateway: {id: gw-1}\n"
    cfg = GatewayConfigPush(gw="gw-1", seq=0, ts=NOW, version=3, document=doc,
                            sha256=hashlib.sha256(doc.encode()).hexdigest())
    _, back2 = decode("xq/v1/s1/gw-1/config", encode(cfg))
    assert back2 == cfg


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"gw": "gw-1"}', "missing contract version"),
        (b'{"v": 2, "gw": "gw-1", "seq": -1, "ts": "2026-01-01T00:00:00Z", "points": []}', "seq"),
    ],
)
def test_malformed_payloads_have_reasons(payload: bytes, fragment: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode("xq/v1/s1/gw-1/telemetry", payload)
    assert fragment in info.value.reason


def test_naive_timestamp_refused() -> None:
    raw = json.loads(encode(_batch()))
    raw["ts"] = "2026-11-21T08:30:00"
    with pytest.raises(MalformedMessage, match="ts"):
        decode("xq/v1/s1/gw-1/telemetry", json.dumps(raw))


def test_unknown_keys_refused() -> None:
    raw = json.loads(encode(_batch()))
    raw["extra"] = 1
    with pytest.raises(MalformedMessage, match="extra"):
        decode("xq/v1/s1/gw-1/telemetry", json.dumps(raw))


def test_gateway_cannot_speak_for_another() -> None:
    with pytest.raises(MalformedMessage, match="does not match gateway"):
        decode("xq/v1/s1/gw-2/telemetry", encode(_batch()))


def test_kind_must_match_topic() -> None:
    ev = Event(gw="gw-1", seq=1, ts=NOW, device="d", event="x", key="x", severity="info", active=True)
    with pytest.raises(MalformedMessage):
        decode("xq/v1/s1/gw-1/telemetry", encode(ev))


@given(st.binary(max_size=300))
def test_decode_never_raises_anything_but_contract_errors(payload: bytes) -> None:
    try:
        decode("xq/v1/s1/gw-1/event", payload)
    except (MalformedMessage, UnsupportedVersion):
        pass


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
            st.text(min_size=1, max_size=20),
            st.one_of(st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=20)),
        ),
        min_size=1,
        max_size=20,
    ),
    st.integers(0, 2**40),
)
def test_telemetry_round_trip_property(points: list[tuple[str, str, object]], seq: int) -> None:
    msg = TelemetryBatch(gw="gw-1", seq=seq, ts=NOW,
                         points=[PointSample(device=d, point=p, ts=NOW, value=v) for d, p, v in points])  # type: ignore[arg-type]
    _, back = decode("xq/v1/s1/gw-1/telemetry", encode(msg))
    assert back == msg
    assert isinstance(back.id, UUID)
