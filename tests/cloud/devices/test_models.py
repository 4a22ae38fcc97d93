"""The registry's typed side: every sites/devices route declares its response model, a device has exactly its
table's columns, and a birth's device becomes the row it registers."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.routing import APIRoute

from cloud.api.routers import sites
from cloud.db import DatabaseConfig
from cloud.devices.models import AnnouncedDevice, Device, OfflineStatement
from cloud.devices.registry import announced
from cloud.devices.repository import DEVICE_COLUMNS
from contract.messages import DeviceInfo, Location


def test_every_route_declares_a_response_model() -> None:
    routes = [r for r in sites.router.routes if isinstance(r, APIRoute)]
    assert routes
    assert [r.path for r in routes if r.response_model is None] == []


def test_a_birth_device_is_registered_where_the_birth_says() -> None:
    info = DeviceInfo(
        device="b3-f13-sd1", profile="smoke", name="13F corridor",
        location=Location(site="cq", building="B3", floor=13, unit="2", area="corridor"),
    )
    assert announced(info) == AnnouncedDevice("b3-f13-sd1", "smoke", "cq", "B3", 13, "2", "corridor", "13F corridor")


def test_an_offline_statement_is_still_a_plain_tuple() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert tuple(OfflineStatement("d1", True, at)) == ("d1", True, at)


@pytest.mark.integration
def test_a_device_has_exactly_its_tables_columns(migrated: DatabaseConfig) -> None:
    with psycopg.connect(migrated.dsn) as conn:
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'devices'").fetchall()}
    assert set(Device.model_fields) == cols
    assert set(DEVICE_COLUMNS.split(", ")) == cols
