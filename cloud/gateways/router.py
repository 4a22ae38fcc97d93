"""``/api/gateways/{id}/config``: each gateway's config document, versioned; a new version is pushed retained."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import Field

from cloud.api.deps import Conn, State, not_found, require
from cloud.auth.security import Principal
from cloud.dispatch.commands import PublishError
from cloud.gateways import store
from cloud.gateways.publish import RetainingPublisher, publish_config
from contract.base import StrictModel

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/gateways", tags=["gateways"])


class ConfigIn(StrictModel):
    document: str = Field(min_length=1, max_length=store.MAX_DOCUMENT_BYTES,
                          description="YAML: devices, linkage, polling, telemetry, profiles (see docs/edge.md)")
    comment: str | None = Field(default=None, max_length=500, description="why, for the history")


class AppliedOut(StrictModel):
    """What the gateway reported on its last birth."""

    state: str
    config_version: int | None = Field(description="pushed version in force on the gateway; null = its local file")
    config_error: str | None = Field(description="why the last pushed version was refused (the old one runs on)")


class ConfigVersionOut(StrictModel):
    version: int
    sha256: str
    created_at: datetime
    created_by: str
    comment: str | None


class ConfigOut(ConfigVersionOut):
    gateway_id: str
    site_id: str
    document: str
    applied: AppliedOut
    published: bool | None = Field(default=None, description="PUT only: the retained message reached the broker")
    publish_error: str | None = None


class HistoryOut(StrictModel):
    gateway_id: str
    applied: AppliedOut
    versions: list[ConfigVersionOut]


def _summary(c: store.ConfigVersion) -> ConfigVersionOut:
    return ConfigVersionOut(version=c.version, sha256=c.sha256, created_at=c.created_at, created_by=c.created_by,
                            comment=c.comment)


async def _applied(conn: Conn, gateway_id: str) -> AppliedOut:
    a = await store.applied(conn, gateway_id)
    if a is None:
        raise not_found(f"gateway {gateway_id}")
    return AppliedOut(state=a.state, config_version=a.config_version, config_error=a.config_error)


def _out(c: store.ConfigVersion, applied: AppliedOut) -> ConfigOut:
    return ConfigOut(**_summary(c).model_dump(), gateway_id=c.gateway_id, site_id=c.site_id, document=c.document,
                     applied=applied)


@router.put("/{gateway_id}/config", response_model=ConfigOut, status_code=201,
            summary="Store a new config version and push it (retained) to the gateway")
async def put_config(
    gateway_id: str, body: ConfigIn, conn: Conn, state: State,
    user: Annotated[Principal, Depends(require("gateways.config.write"))],
) -> ConfigOut:
    try:
        async with conn.transaction():
            stored = await store.put_config(conn, gateway_id, body.document, user.username, body.comment)
    except store.UnknownGateway as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except store.DocumentError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"document: {exc}") from None
    out = _out(stored, await _applied(conn, gateway_id))
    publisher = state.engine.publisher
    if publisher is None:
        return out.model_copy(update={"published": False, "publish_error": "this backend has no MQTT publisher"})
    try:  # after the commit: the broker never holds a version the database does not
        await publish_config(cast(RetainingPublisher, publisher), stored)
    except PublishError as exc:
        log.error("gateway %s config v%d stored but not published: %s", gateway_id, stored.version, exc)
        return out.model_copy(update={"published": False, "publish_error": str(exc)})
    return out.model_copy(update={"published": True})


@router.get("/{gateway_id}/config", response_model=ConfigOut, summary="The latest (or one) config version")
async def get_config(
    gateway_id: str, conn: Conn, _: Annotated[Principal, Depends(require("gateways.config.read"))],
    version: int | None = None,
) -> ConfigOut:
    cfg = await store.get_config(conn, gateway_id, version)
    if cfg is None:
        raise not_found(f"config of gateway {gateway_id}" + ("" if version is None else f" version {version}"))
    return _out(cfg, await _applied(conn, gateway_id))


@router.get("/{gateway_id}/config/history", response_model=HistoryOut, summary="Every config version, newest first")
async def get_history(
    gateway_id: str, conn: Conn, _: Annotated[Principal, Depends(require("gateways.config.read"))],
    limit: int = 100,
) -> HistoryOut:
    applied = await _applied(conn, gateway_id)
    return HistoryOut(gateway_id=gateway_id, applied=applied,
                      versions=[_summary(c) for c in await store.history(conn, gateway_id, limit)])
