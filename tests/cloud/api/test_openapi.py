"""``/api/openapi.json`` describes every response body: each HTTP route declares what it returns (a model, or
the binary content of a file), and the WebSocket is documented by a plain GET with the change-event schema."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute

from cloud.api.app import create_app
from cloud.api.config import ApiConfig
from cloud.api.deps import AppState
from cloud.api.routers import alarms, audit, auth, commands, console, evidence, installer, orders, sites, ws
from cloud.gateways import router as gateways
from contract.clock import SystemClock

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
ROUTERS: list[APIRouter] = [
    m.router for m in (alarms, audit, auth, commands, console, evidence, installer, orders, sites, ws, gateways)
]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # Building the schema needs no database, engine or bus: the routes are only declared.
    state = AppState(
        config=ApiConfig(jwt_secret="openapi-test-secret-0123456789abcdef"),
        pool=cast(Any, None),
        engine=cast(Any, None),
        bus=cast(Any, None),
        clock=SystemClock(),
    )
    return create_app(state)


@pytest.fixture(scope="module")
def spec(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def described(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether ``schema`` says what the body holds: a named model, a list or map of described things, an object
    with properties, a scalar or a file. Free-form objects (``dict[str, Any]``) and the empty schema do not."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return described(spec["components"]["schemas"][name], spec)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants:
        return all(described(v, spec) for v in variants if v.get("type") != "null")
    kind = schema.get("type")
    if kind == "array":
        return described(schema.get("items") or {}, spec)
    if kind == "object":
        if schema.get("properties"):
            return True
        values = schema.get("additionalProperties")
        return isinstance(values, dict) and bool(values) and described(values, spec)
    return kind in {"string", "integer", "number", "boolean"}


def untyped(spec: dict[str, Any]) -> list[str]:
    """Operations whose successful response (1xx/2xx) has no schema, or one that does not describe the body."""
    missing = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            ok = {code: r for code, r in op["responses"].items() if code[0] in "12"}
            if set(ok) == {"204"} and not ok["204"].get("content"):
                continue  # no content by definition
            schemas = [media.get("schema") or {} for r in ok.values() for media in r.get("content", {}).values()]
            if not schemas or not all(described(s, spec) for s in schemas):
                missing.append(f"{method.upper()} {path}")
    return missing


def test_the_check_tells_typed_from_untyped() -> None:
    spec: dict[str, Any] = {"components": {"schemas": {"M": {"type": "object", "properties": {"a": {}}}}}}
    assert described({"$ref": "#/components/schemas/M"}, spec)
    assert described({"type": "array", "items": {"$ref": "#/components/schemas/M"}}, spec)
    assert described({"type": "object", "additionalProperties": {"type": "string"}}, spec)
    assert not described({}, spec)
    assert not described({"type": "object", "additionalProperties": True}, spec)
    assert not described({"type": "array", "items": {"type": "object", "additionalProperties": True}}, spec)


def test_every_route_describes_its_response(spec: dict[str, Any]) -> None:
    assert untyped(spec) == []


def test_every_api_route_is_in_the_schema(spec: dict[str, Any]) -> None:
    """No HTTP route of the API routers hides from the schema (the console's pages and static files are not API)."""
    for router in ROUTERS:
        for r in router.routes:
            if isinstance(r, APIRoute):
                assert r.include_in_schema, r.path
                assert {m.lower() for m in r.methods} <= set(spec["paths"][r.path]), r.path


def test_the_websocket_is_documented(spec: dict[str, Any]) -> None:
    assert any(isinstance(r, APIWebSocketRoute) and r.path == "/api/ws" for r in ws.router.routes)
    op = spec["paths"]["/api/ws"]["get"]
    change = op["responses"]["101"]["content"]["application/json"]["schema"]
    assert change["title"] == "Change"
    assert {"kind", "op", "id", "data"} <= set(change["required"])
    assert change["properties"]["kind"]["enum"] == ["alarm", "incident", "work_order", "command"]
    assert "$ref" not in str(change)  # self-contained: nothing points into the model's own $defs
    assert "token" in [p["name"] for p in op["parameters"]]


async def test_a_plain_get_of_the_websocket_is_426(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        r = await client.get("/api/ws")
    assert r.status_code == 426
    assert r.headers["upgrade"] == "websocket"
    assert "WebSocket" in r.json()["detail"]
