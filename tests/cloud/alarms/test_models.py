"""The alarms domain's records match their tables, and every alarms route describes its response body."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI

from cloud.alarms.models import Alarm, Incident, SuppressionWindow
from cloud.api.routers.alarms import router
from cloud.records import Record


@pytest.mark.integration
@pytest.mark.parametrize(("table", "model"), [("alarms", Alarm), ("incidents", Incident),
                                              ("suppression_windows", SuppressionWindow)])
def test_records_have_exactly_their_tables_columns(db: str, table: str, model: type[Record]) -> None:
    with psycopg.connect(db) as conn:
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)).fetchall()}
    assert set(model.model_fields) == cols


def test_every_alarms_route_has_a_response_schema() -> None:
    app = FastAPI()
    app.include_router(router)
    paths = app.openapi()["paths"]
    assert paths
    for path, ops in paths.items():
        for method, op in ops.items():
            (code,) = [c for c in op["responses"] if c.startswith("2")]
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema.get("$ref") or schema.get("items", {}).get("$ref"), f"{method} {path}: untyped response"
