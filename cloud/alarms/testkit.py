"""Test and benchmark support: migrate a database, seed a small compound, insert events as ingest does.

Used by the tests under ``tests/cloud/`` and by ``bench/alarm_latency.py``; not used in production paths.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import JsonValue

from cloud.alarms.schema import all_migrations
from cloud.db import DatabaseConfig
from cloud.db.migrate import migrate

SITE = "s1"
GW = "gw1"
DEVICES: list[tuple[str, str, str, int | None, str | None]] = [
    # id, profile, building, floor, unit
    ("panel1", "gst-fp200", "B1", 1, None),
    ("smoke1", "acme-sd10", "B1", 3, None),
    ("smoke2", "acme-sd10", "B1", 4, None),
    ("door1", "acme-dc100", "B1", 1, "101"),
    ("door2", "acme-dc100", "B1", 1, "102"),
    ("elev1", "acme-em200", "B1", None, None),
    ("elev2", "acme-em200", "B1", None, None),
    ("door9", "acme-dc100", "B2", 1, "901"),
    ("smoke9", "acme-sd10", "B2", 2, None),
]


def migrate_all(dsn: str) -> None:
    migrate(DatabaseConfig(dsn=dsn, flavour="native"), all_migrations())


def seed(dsn: str, site: str = SITE, gw: str = GW) -> None:
    """Site ``s1``, grids g1 (B1) and g2 (B2), gateway ``gw1`` and the devices in :data:`DEVICES`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, 'Test compound') ON CONFLICT DO NOTHING", (site,))
        conn.execute(
            "INSERT INTO grids (id, site_id, name, buildings) VALUES (%s, %s, 'Grid 1', '{B1}'), "
            "(%s, %s, 'Grid 2', '{B2}') ON CONFLICT DO NOTHING",
            (f"{site}-g1" if site != SITE else "g1", site, f"{site}-g2" if site != SITE else "g2", site),
        )
        conn.execute(
            "INSERT INTO gateways (id, site_id, state, last_seen) VALUES (%s, %s, 'online', now())", (gw, site)
        )
        for dev, profile, building, floor, unit in DEVICES:
            conn.execute(
                "INSERT INTO devices (id, gateway_id, profile_id, site_id, building, floor, unit, state, last_seen) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 'online', now())",
                (dev, gw, profile, site, building, floor, unit),
            )


def insert_event(
    conn: psycopg.Connection[Any],
    device: str,
    etype: str,
    *,
    severity: str = "critical",
    active: bool = True,
    ts: datetime | None = None,
    gw: str = GW,
    detail: dict[str, JsonValue] | None = None,
    notify: bool = True,
    key: str | None = None,
    location: dict[str, JsonValue] | None = None,
) -> str:
    """What ingest does: insert the event and ``pg_notify('xq_events', …)`` in the same transaction.
    ``key`` defaults to the type (a device with one row per type); ``location`` as ``Event.location``."""
    eid = str(uuid.uuid4())
    with conn.transaction():
        conn.execute(
            "INSERT INTO events (id, gateway_id, seq, device_id, type, key, location, severity, active, life_safety, "
            "ts, detail) VALUES (%s, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                eid,
                gw,
                device,
                etype,
                key or etype,
                json.dumps(location) if location is not None else None,
                severity,
                active,
                severity == "critical",
                ts or datetime.now(UTC),
                json.dumps(detail or {}),
            ),
        )
        if notify:
            conn.execute("SELECT pg_notify('xq_events', %s)", (json.dumps({"events": [eid]}),))
    return eid


def insert_ack(
    conn: psycopg.Connection[Any], command_id: str, device: str, status: str, *, gw: str = GW, reason: str | None = None
) -> str:
    """What ingest does with a CommandAck: store it and notify ``{"acks": [...]}``."""
    aid = str(uuid.uuid4())
    with conn.transaction():
        conn.execute(
            "INSERT INTO command_acks (id, command_id, gateway_id, device_id, status, reason, ts) "
            "VALUES (%s, %s, %s, %s, %s, %s, now())",
            (aid, command_id, gw, device, status, reason),
        )
        conn.execute("SELECT pg_notify('xq_events', %s)", (json.dumps({"acks": [aid]}),))
    return aid
