"""The FastAPI application: one router per resource, state injected by the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from cloud.api.deps import AppState
from cloud.api.hardening import EVIDENCE_PREFIX, HardeningMiddleware
from cloud.api.routers import alarms, audit, auth, commands, console, evidence, installer, orders, sites, ws
from cloud.gateways import router as gateways
from cloud.gateways.store import MAX_DOCUMENT_BYTES

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(
        title="xiaoqu backend",
        version="0.1.0",
        description="Alarms, incidents, linkage commands, work orders and audit for smart residential compounds.",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
    )
    app.state.xq = state
    app.add_middleware(
        HardeningMiddleware,
        max_body_bytes=state.config.max_body_bytes,
        large_bodies={
            EVIDENCE_PREFIX: state.config.evidence_max_bytes,
            # a config document of up to MAX_DOCUMENT_BYTES characters, JSON-escaped (\uXXXX: 6 bytes each)
            "/api/gateways/": 6 * MAX_DOCUMENT_BYTES + 64 * 1024,
        },
    )

    @app.exception_handler(psycopg.DataError)
    async def bad_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value the database cannot take (NUL in text, a number out of range): the caller's input, not a fault.
        reason = exc.diag.message_primary if exc.diag and exc.diag.message_primary else str(exc)
        return JSONResponse({"detail": f"invalid value: {reason}"}, status_code=422)

    for module in (auth, sites, alarms, commands, orders, audit, evidence, ws, console, installer, gateways):
        app.include_router(module.router)
    app.include_router(console.pages)  # /install, /sound/alarm.wav (the console's own, not API)

    @app.get("/api/health", response_model=Health, tags=["health"], summary="Liveness")
    async def health() -> Health:
        return Health()

    # The web UI (cloud/web, no build step): the dashboard at /, the grid worker's phone view at /worker.
    # Mounted last so every /api route above matches first.
    @app.get("/worker", include_in_schema=False)
    async def worker_view() -> FileResponse:
        return FileResponse(WEB_DIR / "worker.html")

    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app
