"""The installer's device routes: watch a device's events and points arrive, probe it through its gateway
(pass / fail per point), and record its commissioning in the audit log."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, status

from cloud.api import console_queries as q
from cloud.api.console_models import (
    CommissioningIn,
    CommissioningOut,
    CommissioningRecord,
    DeviceEvent,
    DevicePoints,
    Location,
    PointCounts,
    PointReading,
    PointStatus,
    ProbeOut,
)
from cloud.api.deps import Conn, ShippedProfiles, State, not_found, require
from cloud.auth.security import Principal
from cloud.auth.store import audit
from cloud.dispatch.commands import FINAL_STATES, TRANSIT_MARGIN, queue_command
from contract.messages import PROBE_COMMAND, ProbePoint
from device_profiles import CompiledProfile, UnknownProfile

router = APIRouter(prefix="/api/devices", tags=["installer"])

DevicesRead = Annotated[Principal, Depends(require("devices.read"))]


@router.get("/{device_id}/events", response_model=list[DeviceEvent],
            summary="A device's latest events (commissioning: watch a test arrive)")
async def device_events(
    device_id: str, conn: Conn, _: DevicesRead, since: datetime | None = None, limit: int = 50
) -> list[DeviceEvent]:
    return await q.device_events(conn, device_id, since, min(max(limit, 1), 500))


QUALITY: dict[int, PointStatus] = {0: "good", 1: "uncertain", 2: "bad"}


@router.get("/{device_id}/points", response_model=DevicePoints,
            summary="Each profile point: the latest value the gateway reported")
async def device_points(
    device_id: str, conn: Conn, state: State, profiles: ShippedProfiles, _: DevicesRead, since: datetime | None = None
) -> DevicePoints:
    """Pass / fail per point from what the gateway actually read (its first read reports every point with
    its quality): ``good``, ``uncertain``, ``bad`` (the read failed) or ``missing`` (nothing since ``since``,
    default the last 24 h)."""
    dev = await q.device(conn, device_id)
    if dev is None:
        raise not_found(f"device {device_id!r}")
    try:
        points = CompiledProfile(profiles.get(dev.profile_id)).points
    except UnknownProfile:
        points = []
    since = since or state.clock.now() - timedelta(days=1)
    latest = await q.latest_values(conn, device_id, since)
    out = []
    for p in points:
        r = latest.get(p.name)
        out.append(
            PointReading(
                name=p.name, label=p.label, unit=p.unit,
                value=None if r is None else (r.value_text if r.value_text is not None else r.value),
                ts=None if r is None else r.ts,
                status="missing" if r is None else QUALITY.get(r.quality, "bad"),
            )
        )

    def count(s: PointStatus) -> int:
        return sum(1 for p in out if p.status == s)

    counts = PointCounts(good=count("good"), uncertain=count("uncertain"), bad=count("bad"), missing=count("missing"))
    return DevicePoints(device_id=device_id, profile_id=dev.profile_id, since=since, counts=counts, points=out)


@router.post("/{device_id}/commissioning", status_code=201, response_model=CommissioningOut,
             summary="Record a device's commissioning")
async def commission(
    device_id: str,
    body: CommissioningIn,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("devices.register"))],
) -> CommissioningOut:
    async with conn.transaction():
        dev = await q.device(conn, device_id)
        if dev is None:
            raise not_found(f"device {device_id!r}")
        record = CommissioningRecord(
            passed=all(c.passed for c in body.checks),
            checks=body.checks,
            note=body.note,
            location=Location(building=dev.building, floor=dev.floor, unit=dev.unit),
            profile_id=dev.profile_id,
        )
        await audit(conn, user.username, "device.commission", "device", device_id, record.model_dump(mode="json"),
                    ts=state.clock.now())
    return CommissioningOut(device_id=device_id, **record.model_dump())


# ---------------------------------------------------------------------------------------------- probe

PROBE_GATEWAY_S = 5.0
"""What the gateway may take: an MQTT topic not heard yet is waited for this long (its probe window)."""


async def _probe_out(conn: Conn, device_id: str, command_id: UUID) -> ProbeOut | None:
    row = await q.probe(conn, device_id, command_id, PROBE_COMMAND)
    if row is None:
        return None
    points = [ProbePoint.model_validate(p) for p in row.probe or []]
    done = row.state in FINAL_STATES
    return ProbeOut(
        command_id=row.id, device_id=row.device_id, profile_id=row.profile_id, gateway_id=row.gateway_id,
        state=row.state, done=done, ok=(row.state == "succeeded") if done else None, reason=row.reason,
        passed=sum(1 for p in points if p.ok), failed=sum(1 for p in points if not p.ok), points=points,
        requested_at=row.created_at, answered_at=row.answered_at,
    )


async def _audit_result(conn: Conn, out: ProbeOut, actor: str, now: datetime) -> None:
    """The outcome goes into the audit log once (``device.probe.result``), by whichever request first sees it."""
    async with conn.transaction():
        if await q.probe_result_audited(conn, out.device_id, out.command_id):
            return
        detail = {"command_id": str(out.command_id), "state": out.state, "reason": out.reason, "passed": out.passed,
                  "failed": out.failed, "failed_points": [p.name for p in out.points if not p.ok], "asked_by": actor}
        await audit(conn, f"gateway:{out.gateway_id}", "device.probe.result", "device", out.device_id, detail, ts=now)


async def _wait_probe(conn: Conn, state: State, device_id: str, command_id: UUID, wait_s: float,
                      actor: str) -> ProbeOut:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        out = await _probe_out(conn, device_id, command_id)
        if out is None:
            raise not_found(f"probe {command_id} of device {device_id!r}")
        if out.done:
            await _audit_result(conn, out, actor, state.clock.now())
            return out
        if asyncio.get_running_loop().time() >= deadline:
            return out
        await asyncio.sleep(0.2)


@router.post("/{device_id}/probe", response_model=ProbeOut,
             summary="Probe a device through its gateway: pass / fail per point")
async def probe(
    device_id: str,
    conn: Conn,
    state: State,
    user: Annotated[Principal, Depends(require("devices.probe"))],
    wait_s: Annotated[float, Query(ge=0, le=60)] = 15.0,
) -> ProbeOut:
    """Sends the gateway's probe command (``gateway.probe``): the gateway reads every point of the device once
    (Modbus through its running poller, MQTT from the latest messages) and answers with the decoded value or
    the reason of the failure per point (including a value outside the point's plausible range). Waits up to
    ``wait_s`` for the answer; when ``done`` is false, ask ``GET /api/devices/{id}/probe/{command_id}``."""
    now = state.clock.now()
    async with conn.transaction():
        dev = await q.device(conn, device_id)
        if dev is None:
            raise not_found(f"device {device_id!r}")
        if dev.gateway_id is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"device {device_id!r} is not bound to a gateway")
        cid = await queue_command(
            conn, site_id=dev.site_id, gateway_id=dev.gateway_id, device_id=device_id, command=PROBE_COMMAND,
            args={}, origin=user.username, now=now, ack_timeout=timedelta(seconds=PROBE_GATEWAY_S) + TRANSIT_MARGIN,
            expires_after=timedelta(minutes=2),
        )
        await audit(conn, user.username, "device.probe", "device", device_id,
                    {"command_id": str(cid), "gateway_id": dev.gateway_id, "profile_id": dev.profile_id}, ts=now)
    await state.engine.send([cid])
    return await _wait_probe(conn, state, device_id, cid, wait_s, user.username)


@router.get("/{device_id}/probe/{command_id}", response_model=ProbeOut,
            summary="A probe's state and per-point results")
async def probe_result(device_id: str, command_id: UUID, conn: Conn, state: State, user: DevicesRead) -> ProbeOut:
    return await _wait_probe(conn, state, device_id, command_id, 0.0, user.username)
