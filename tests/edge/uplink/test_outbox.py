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


# -- receipt states (no broker: the outbox's bookkeeping on its own) ---------------------------------------


def _row_state(path: Path, msg_id: str) -> tuple[int, int, float | None, float | None] | None:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT awaiting, attempts, sent_at, next_try FROM outbox WHERE msg_id = ?", (msg_id,))
        found = row.fetchone()
        return None if found is None else (int(found[0]), int(found[1]), found[2], found[3])


def test_receipted_kinds_carry_their_message_id(tmp_path: Path, kit: Any) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    al, ev, st, te = kit.alarm(box.next_seq()), kit.event(box.next_seq()), kit.online(box.next_seq()), kit.telemetry(1)
    ack = CommandAck(gw=kit.GW, seq=box.next_seq(), ts=te.ts, command_id=ev.id, device="d", status="succeeded")
    box.put_many([al, ev, st, te, ack])
    rows = box.fetch("alarm", 0, 10) + box.fetch("event", 0, 10) + box.fetch("telemetry", 0, 10)
    by_kind = {r.kind: r.msg_id for r in rows}
    assert by_kind == {"event": str(ev.id), "state": None, "telemetry": None, "cmd/ack": str(ack.id)}
    assert rows[0].msg_id == str(al.id)
    box.close()


def test_settle_marks_awaiting_with_capped_backoff_and_receipt_deletes(tmp_path: Path, kit: Any) -> None:
    path = tmp_path / "o.db"
    box = Outbox(OutboxConfig(path=path), kit.GW)
    al = kit.alarm(box.next_seq())
    te = kit.telemetry(box.next_seq())
    box.put_many([al, te])
    a_row, t_row = box.fetch("alarm", 0, 1)[0], box.fetch("telemetry", 0, 1)[0]
    assert box.settle([t_row.id], [a_row.id], now=1000.0, first_s=10, max_s=35) == 1
    assert box.depth() == {"alarm": 1, "event": 0, "telemetry": 0}
    assert box.awaiting_receipt() == {"alarm": 1, "event": 0, "telemetry": 0}
    assert box.fetch("alarm", 0, 10) == []  # awaiting rows are not new rows: the cursor never hands them out
    assert _row_state(path, str(al.id)) == (1, 1, 1000.0, 1010.0)
    # Re-sent and acknowledged again: the backoff doubles (20 s), then hits the cap (35 s).
    box.settle([], [a_row.id], now=2000.0, first_s=10, max_s=35)
    assert _row_state(path, str(al.id)) == (1, 2, 2000.0, 2020.0)
    box.settle([], [a_row.id], now=3000.0, first_s=10, max_s=35)
    assert _row_state(path, str(al.id)) == (1, 3, 3000.0, 3035.0)
    assert box.awaiting_receipt()["alarm"] == 1  # still one row
    gone = box.receipt([str(al.id)])
    assert [(r.id, r.lane) for r in gone] == [(a_row.id, "alarm")]
    assert box.depth()["alarm"] == 0 and box.awaiting_receipt()["alarm"] == 0
    assert box.bytes_used() == 0
    box.close()


def test_duplicate_and_unknown_receipts_are_ignored(tmp_path: Path, kit: Any) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    alarms = [kit.alarm(box.next_seq()) for _ in range(3)]
    box.put_many(alarms)
    rows = box.fetch("alarm", 0, 10)
    box.settle([], [r.id for r in rows])
    assert len(box.receipt([str(alarms[0].id)])) == 1
    assert box.receipt([str(alarms[0].id)]) == []  # the same receipt again
    assert box.receipt([str(kit.event(1).id), "not-even-a-uuid"]) == []  # ids that are not ours
    assert box.depth()["alarm"] == 2 and box.awaiting_receipt()["alarm"] == 2
    # A receipt may overtake the PUBACK bookkeeping: the row goes, the late settle finds nothing to mark.
    assert len(box.receipt([str(alarms[1].id)])) == 1
    box.settle([], [rows[1].id])
    assert box.depth()["alarm"] == 1 and box.awaiting_receipt()["alarm"] == 1
    box.close()


def test_claim_due_in_lane_order_holds_and_survives_reopen(tmp_path: Path, kit: Any) -> None:
    config = OutboxConfig(path=tmp_path / "o.db")
    box = Outbox(config, kit.GW)
    ev = kit.event(box.next_seq())
    al = kit.alarm(box.next_seq())
    box.put_many([ev, al])
    rows = box.fetch("alarm", 0, 10) + box.fetch("event", 0, 10)
    box.settle([], [r.id for r in rows], now=1000.0, first_s=10, max_s=60)
    assert box.claim_due(1005.0, 10, hold_s=10, horizon_s=120) == []  # not due yet
    box.close()
    box = Outbox(config, kit.GW)  # a restart (or kill -9: the state is in the table) keeps the schedule
    assert box.awaiting_receipt() == {"alarm": 1, "event": 1, "telemetry": 0}
    due = box.claim_due(1010.0, 10, hold_s=10, horizon_s=120)
    assert [r.msg_id for r in due] == [str(al.id), str(ev.id)]  # the alarm first
    assert due[0].payload and json.loads(due[0].payload)["id"] == str(al.id)  # same message id, same bytes
    assert box.claim_due(1015.0, 10, hold_s=10, horizon_s=120) == []  # claimed: held for hold_s
    assert len(box.claim_due(1021.0, 10, hold_s=10, horizon_s=120)) == 2  # never acknowledged: due again
    assert box.make_due([due[0].id], now=1022.0) == 1
    assert [r.msg_id for r in box.claim_due(1022.0, 10, hold_s=10, horizon_s=120)] == [str(al.id)]
    # The wall clock went back a day: a re-send time far in the future counts as due.
    assert len(box.claim_due(1031.0 - 86400, 10, hold_s=10, horizon_s=120)) == 2
    box.close()


def test_overdue_rows_made_due_when_the_backend_answers(tmp_path: Path, kit: Any) -> None:
    path = tmp_path / "o.db"
    box = Outbox(OutboxConfig(path=path), kit.GW)
    old, recent = kit.alarm(box.next_seq()), kit.alarm(box.next_seq())
    box.put_many([old, recent])
    r_old, r_recent = box.fetch("alarm", 0, 10)
    for t in (1000.0, 1010.0, 1030.0):  # backed off three times: next try at 1030 + 40
        box.settle([], [r_old.id], now=t, first_s=10, max_s=60)
    box.settle([], [r_recent.id], now=1065.0, first_s=10, max_s=60)
    assert box.make_due(sent_before=1060.0, now=1066.0) == 1  # only the row waiting since before 1060
    assert _row_state(path, str(old.id)) == (1, 3, 1030.0, 1066.0)
    assert _row_state(path, str(recent.id)) == (1, 1, 1065.0, 1075.0)
    box.close()


def test_telemetry_budget_never_touches_awaiting_rows(tmp_path: Path, kit: Any) -> None:
    probe = kit.telemetry(0)
    size = len(probe.model_dump_json(exclude_none=True)) + ROW_OVERHEAD_BYTES
    box = Outbox(OutboxConfig(path=tmp_path / "o.db", budget_bytes=size * 5), kit.GW)
    al = kit.alarm(box.next_seq())
    box.put(al)
    box.settle([], [box.fetch("alarm", 0, 1)[0].id])
    for i in range(20):
        box.put(kit.telemetry(box.next_seq(), i))
    assert box.depth()["alarm"] == 1 and box.awaiting_receipt()["alarm"] == 1
    assert len(box.receipt([str(al.id)])) == 1
    box.close()


def test_an_outbox_file_of_the_previous_version_is_upgraded(tmp_path: Path, kit: Any) -> None:
    path = tmp_path / "old.db"
    al, te = kit.alarm(1), kit.telemetry(2)
    with sqlite3.connect(path) as db:  # the schema before receipts, with one alarm and one telemetry row
        db.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, lane INTEGER NOT NULL, kind TEXT NOT NULL,"
            " size INTEGER NOT NULL, payload BLOB NOT NULL);"
            "CREATE INDEX outbox_lane_id ON outbox (lane, id);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        )
        for lane, kind, msg in ((0, "event", al), (2, "telemetry", te)):
            payload = msg.model_dump_json(exclude_none=True).encode()
            db.execute("INSERT INTO outbox (lane, kind, size, payload) VALUES (?, ?, ?, ?)",
                       (lane, kind, len(payload) + ROW_OVERHEAD_BYTES, payload))
    box = Outbox(OutboxConfig(path=path), kit.GW)
    assert box.depth() == {"alarm": 1, "event": 0, "telemetry": 1}
    assert box.awaiting_receipt() == {"alarm": 0, "event": 0, "telemetry": 0}
    row = box.fetch("alarm", 0, 1)[0]
    assert row.msg_id == str(al.id)  # filled from the payload, so a receipt can find it
    assert box.fetch("telemetry", 0, 1)[0].msg_id is None
    box.settle([], [row.id])
    assert len(box.receipt([str(al.id)])) == 1
    box.close()
    box = Outbox(OutboxConfig(path=path), kit.GW)  # opening again changes nothing
    assert box.depth() == {"alarm": 0, "event": 0, "telemetry": 1}
    box.close()


def test_cursor_sends_new_rows_before_resends_of_their_lane(tmp_path: Path, kit: Any) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "o.db"), kit.GW)
    old_alarms = [kit.alarm(box.next_seq()) for _ in range(3)]
    box.put_many(old_alarms)
    box.settle([], [r.id for r in box.fetch("alarm", 0, 10)], now=0.0)
    cursor = _LaneCursor(box, batch=256)
    cursor.add_resends(box.claim_due(100.0, 10, hold_s=10, horizon_s=1e9))
    new_alarm, new_event = kit.alarm(box.next_seq()), kit.event(box.next_seq())
    box.put_many([new_event, new_alarm, kit.telemetry(box.next_seq())])
    order = []
    while (row := cursor.pick()) is not None:
        order.append((row.lane, json.loads(row.payload)["id"]))
    assert order == [
        ("alarm", str(new_alarm.id)),
        *(("alarm", str(a.id)) for a in old_alarms),
        ("event", str(new_event.id)),
        ("telemetry", order[-1][1]),
    ]
    box.close()
