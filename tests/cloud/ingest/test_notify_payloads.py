"""The pg_notify payloads of one batch: every id announced once, no payload at PostgreSQL's 8000-byte limit."""

from __future__ import annotations

import json
import uuid

from cloud.ingest.store import NOTIFY_MAX_BYTES, notify_payloads


def test_a_thousand_event_ids_fit_in_payloads_below_the_limit() -> None:
    ids = [str(uuid.uuid4()) for _ in range(1000)]  # a full batch of events (batch_max_messages)
    payloads = notify_payloads("events", ids)
    assert all(len(p.encode()) <= NOTIFY_MAX_BYTES for p in payloads)
    assert [i for p in payloads for i in json.loads(p)["events"]] == ids
    assert len(payloads) == 6  # 197 ids each (40 bytes apiece): not one id per payload either


def test_long_gateway_ids_and_nothing() -> None:
    ids = [f"gw-{n:060d}" for n in range(500)]
    payloads = notify_payloads("gateways", ids)
    assert all(len(p.encode()) <= NOTIFY_MAX_BYTES for p in payloads)
    assert [i for p in payloads for i in json.loads(p)["gateways"]] == ids
    assert notify_payloads("acks", []) == []
