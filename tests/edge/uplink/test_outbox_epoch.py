"""The outbox's boot epoch: created with the SQLite file, kept across restarts, new for a fresh file; every
message the emitter builds carries it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from edge.rules import Emitter
from edge.uplink import Outbox, OutboxConfig


def test_epoch_is_kept_in_the_file_and_new_for_a_fresh_one(tmp_path: Path) -> None:
    first = Outbox(OutboxConfig(path=tmp_path / "a" / "outbox.sqlite3"), "gw1")
    epoch = first.epoch
    assert epoch > 1_700_000_000_000  # ms since 1970
    first.close()
    again = Outbox(OutboxConfig(path=tmp_path / "a" / "outbox.sqlite3"), "gw1")
    assert again.epoch == epoch  # a restart is the same epoch; seq goes on
    again.close()
    time.sleep(0.002)  # epochs are milliseconds: make sure the clock moved
    fresh = Outbox(OutboxConfig(path=tmp_path / "b" / "outbox.sqlite3"), "gw1")  # re-imaged: a new file
    assert fresh.epoch > epoch
    fresh.close()


def test_the_emitter_stamps_every_message_with_the_epoch(tmp_path: Path) -> None:
    box = Outbox(OutboxConfig(path=tmp_path / "outbox.sqlite3"), "gw1")
    try:
        emitter = Emitter(box, "gw1")
        now = datetime.now(UTC)
        ev = emitter.event("d1", "fire.alarm", key="fire.alarm", severity="critical", active=True, ts=now)
        ack = emitter.ack(ev.id, "d1", "succeeded", now)
        assert ev.epoch == ack.epoch == box.epoch and ack.seq > ev.seq
    finally:
        box.close()
