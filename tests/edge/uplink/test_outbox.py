"""The outbox on its own: lanes, durable sequence numbers, the budget, deletion accounting."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from contract.messages import CommandAck, HealthReport
from edge.uplink import Outbox, OutboxConfig, lane_for
from edge.uplink.mqtt import _LaneCursor
from edge.uplink.outbox import ROW_OVERHEAD_BYTES


def ids_in(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [json.loads(p)["id"] for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]


def test_lanes(kit: Any) -> None:
    assert lane_for(kit.alarm(1)) == "alarm"
    assert lane_for(kit.event(1)) == "event"
    assert lane_for(kit.online(1)) == "event"
    assert lane_for(kit.telemetry(1)) == "telemetry"
    ack = CommandAck(gw=kit.GW, seq=1, ts=kit.telemetry(1).ts, command_id=kit.event(1).id, device="d", status="failed")
    assert lane_for(ack) == "event"
    health = HealthReport.model_validate(
        {
            "gw": kit.GW,
            "seq": 1,
            "ts": kit.telemetry(1).ts,
            "health": {
                "outbox_depth": {"alarm": 0, "event": 0, "telemetry": 0},
                "outbox_bytes": 0,
                "uplink_connected": False,
                "devices_online": 0,
                "devices_offline": 0,
            },
        }
    )
    assert lane_for(health) == "telemetry"


def test_seq_never_repeats_across_reopen(tmp_path: Path, kit: Any) -> None:
    config = OutboxConfig(path=tmp_path / "o.db", seq_block=10)
    seen: list[int] = []
    for _ in range(3):
        box = Outbox(config, kit.GW)
        seen += [box.next_seq() for _ in range(25)]
        box.close()  # like a crash: the rest of the reserved block is skipped, never reused
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


def test_put_counts_and_reopen(tmp_path: Path, kit: Any) -> None:
    config = OutboxConfig(path=tmp_path / "o.db")
    box = Outbox(config, kit.GW)
    box.put(kit.alarm(box.next_seq()))
    box.put(kit.event(box.next_seq()))
    box.put_many([kit.telemetry(box.next_seq(), i) for i in range(5)])
    assert box.depth() == {"alarm": 1, "event": 1, "telemetry": 5}
    used = box.bytes_used()
    box.close()
    box = Outbox(config, kit.GW)
    assert box.depth() == {"alarm": 1, "event": 1, "telemetry": 5}
    assert box.bytes_used() == used
    rows = box.fetch("telemetry", 0, 100)
    assert box.delete([rows[0].id, rows[1].id, 999_999]) == 2
    assert box.delete([rows[0].id]) == 0  # already gone: counts do not go negative
    assert box.depth()["telemetry"] == 3
    box.close()


def test_budget_drops_oldest_telemetry_never_alarms(tmp_path: Path, kit: Any) -> None:
    probe = kit.telemetry(0)
    size = len(probe.model_dump_json(exclude_none=True)) + ROW_OVERHEAD_BYTES
    config = OutboxConfig(path=tmp_path / "o.db", budget_bytes=size * 10 + size // 2)
    box = Outbox(config, kit.GW)
    tele = [kit.telemetry(box.next_seq(), i) for i in range(30)]
    for m in tele:
        box.put(m)
    assert box.depth()["telemetry"] == 10
    assert box.dropped_telemetry_total() == 20
    assert ids_in(config.path) == [str(m.id) for m in tele[-10:]]  # the newest ten survive
    alarms = [kit.alarm(box.next_seq()) for _ in range(25)]
    for a in alarms:
        box.put(a)  # past the budget: telemetry makes room, then alarms go over it
    assert box.depth() == {"alarm": 25, "event": 0, "telemetry": 0}
    assert box.bytes_used() > config.budget_bytes
    box.put(kit.telemetry(box.next_seq()))  # no room and nothing older to drop: the new telemetry goes
    assert box.depth()["telemetry"] == 0
    assert box.dropped_telemetry_total() == 31
    box.close()
    box = Outbox(config, kit.GW)
    assert box.dropped_telemetry_total() == 31
    assert {str(a.id) for a in alarms} <= set(ids_in(config.path))
    box.close()


def test_cursor_picks_highest_lane_first_and_new_alarms_jump_the_queue(tmp_path: Path, kit: Any) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    box.put_many([kit.telemetry(box.next_seq(), i) for i in range(600)])
    box.put(kit.event(box.next_seq()))
    cursor = _LaneCursor(box, batch=256)
    picked = [cursor.pick() for _ in range(3)]
    assert [r.lane for r in picked if r] == ["event", "telemetry", "telemetry"]
    box.put(kit.alarm(box.next_seq()))
    nxt = cursor.pick()
    assert nxt is not None and nxt.lane == "alarm"
    rest = []
    while (row := cursor.pick()) is not None:
        rest.append(row)
    assert [r.lane for r in rest] == ["telemetry"] * 598
    assert [r.id for r in rest] == sorted(r.id for r in rest)
    cursor.reset()
    first = cursor.pick()
    assert first is not None and first.lane == "alarm"  # nothing deleted yet: all re-read in order
    box.close()


@pytest.mark.parametrize("bad", [{"x": 1}])
def test_fsync_lanes_config_is_strict(tmp_path: Path, bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="extra"):
        OutboxConfig(path=tmp_path / "o.db", **bad)


def test_one_process_per_outbox_file(tmp_path: Path, kit: Any) -> None:
    config = OutboxConfig(path=tmp_path / "o.db")
    box = Outbox(config, kit.GW)
    with pytest.raises(RuntimeError, match="already open"):
        Outbox(config, kit.GW)
    box.close()
    Outbox(config, kit.GW).close()
