"""Dead letters: messages off the contract (or refused by the database), kept with their payload cut to
``max_bytes`` and the payload's full size."""

from __future__ import annotations

from cloud.ingest.models import DeadLetter
from cloud.ingest.writers.tx import Cursor


def write_dead_letters(cur: Cursor, dead: list[DeadLetter], max_bytes: int) -> None:
    if not dead:
        return
    cur.execute(
        "INSERT INTO dead_letters (received_at, topic, payload, payload_size, code, reason) "
        "SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::bytea[], %s::int[], "
        "%s::text[], %s::text[])",
        (
            [x.received_at for x in dead],
            [x.topic.replace("\x00", "\ufffd") for x in dead],
            [x.payload[:max_bytes] for x in dead],
            [len(x.payload) for x in dead],
            [x.code for x in dead],
            [x.reason.replace("\x00", "\ufffd") for x in dead],
        ),
    )
