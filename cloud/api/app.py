"""The FastAPI application: one router per resource, state injected by the composition root."""

from __future__ import annotations

from fastapi import FastAPI

from cloud.api.deps import AppState
from cloud.api.routers import alarms, audit, auth, commands, evidence, orders, sites, ws


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(
        title="xiaoqu backend",
        version="0.1.0",
        description="Alarms, incidents, linkage commands, work orders and audit for smart residential compounds.",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
    )
    app.state.xq = state
    for module in (auth, sites, alarms, commands, orders, audit, evidence, ws):
        app.include_router(module.router)

    @app.get("/api/health", tags=["health"], summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
