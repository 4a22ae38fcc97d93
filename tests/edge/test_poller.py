"""Modbus poller against a real pymodbus server: coalesced reads, exception responses, a long outage."""

from __future__ import annotations

import asyncio

import pytest
from conftest import free_port
from edge_agent_helpers import FakeClock, FakeOutbox, ModbusTestServer, wait_for

from device_profiles import CompiledProfile, load_catalog
from device_profiles.commands import render_modbus, validate_args
from device_profiles.read_plan import contiguous_runs, plan_reads
from edge.modbus import BusPoller, PolledDevice, tcp_link
from edge.rules import DeviceRules, Emitter, TelemetryBatcher

pytestmark = pytest.mark.integration


def _make(port: int, units: list[int], clock: FakeClock, offline_after_s: float = 10.0,
          backoff_max_s: float = 2.0) -> tuple[BusPoller, FakeOutbox, TelemetryBatcher]:
    profile = CompiledProfile(load_catalog().get("acme-em200"))
    outbox = FakeOutbox()
    emitter = Emitter(outbox, "gw1")
    batcher = TelemetryBatcher(emitter, clock)
    devices = [
        PolledDevice(f"lift{u}", u, plan_reads(profile.points, profile.profile.modbus), 1.0,
                     DeviceRules(f"lift{u}", profile, emitter, batcher, clock, offline_after_s=offline_after_s))
        for u in units
    ]
    poller = BusPoller(tcp_link("127.0.0.1", port, 0.5), devices, clock, backoff_initial_s=0.25,
                       backoff_max_s=backoff_max_s)
    return poller, outbox, batcher


async def test_devices_sharing_a_connection_are_polled_in_few_requests() -> None:
    port = free_port()
    clock = FakeClock()
    async with ModbusTestServer(port, {1: {"ir": [3, 1]}, 2: {"ir": [5]}}) as server:
        poller, outbox, batcher = _make(port, [1, 2], clock)
        profile = CompiledProfile(load_catalog().get("acme-em200"))
        blocks = plan_reads(profile.points, profile.profile.modbus)
        assert len(blocks) == contiguous_runs(profile.points) == 1
        task = asyncio.create_task(poller.run())
        try:
            await wait_for(lambda: poller.stats.polls_total >= 4, what="4 polls")
            batcher.flush()
            got = {(d, p): v for d, p, v, _ in outbox.samples()}
            assert got[("lift1", "car.floor")] == 3
            assert got[("lift1", "car.direction")] == "up"
            assert got[("lift2", "car.floor")] == 5
            # one request per device per poll: the 11 input registers are one block
            assert poller.link.requests_total <= poller.stats.polls_total + 1
            # report by exception: an unchanged value is not reported twice
            assert sum(1 for d, p, *_ in outbox.samples() if (d, p) == ("lift1", "car.floor")) == 1
            await server.set(1, "ir", 5, [1 << 13])  # emergency call
            await wait_for(lambda: outbox.events("elevator.emergency_call"), what="emergency call event")
            ev = outbox.events("elevator.emergency_call")[0]
            assert ev.device == "lift1" and ev.active and ev.severity == "major"
            # a command's writes go through the same connection
            cmd = profile.command("fire_recall")
            assert cmd is not None
            await poller.write(1, render_modbus(cmd, validate_args(cmd, {"floor": 1}), profile.profile.modbus))
            assert await server.get(1, "hr", 100, 3) == [1, 0, 1]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_exception_response_marks_points_bad_but_device_stays_online() -> None:
    port = free_port()
    clock = FakeClock()
    # only 4 input registers exist: reading 0..10 gets "illegal data address"
    async with ModbusTestServer(port, {1: {"ir": [2]}}, size=4):
        poller, outbox, _batcher = _make(port, [1], clock)
        task = asyncio.create_task(poller.run())
        try:
            await wait_for(lambda: poller.stats.refused_total >= 3, what="refused reads")
            clock.advance(60)
            await wait_for(lambda: poller.stats.refused_total >= 6, what="more refused reads")
            assert poller.devices[0].rules.online is True
            assert not outbox.events("device.offline")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_poller_survives_a_long_outage_and_recovers() -> None:
    """Device server down for 5 virtual minutes (backoff cap 2 s → >100 attempts), then back."""
    port = free_port()
    clock = FakeClock()
    server = await ModbusTestServer(port, {1: {"ir": [4]}}).start()
    poller, outbox, batcher = _make(port, [1], clock, offline_after_s=10.0, backoff_max_s=2.0)
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: poller.devices[0].rules.online is True, what="online")
        await server.stop()
        down_at = clock.monotonic()
        await wait_for(lambda: clock.monotonic() - down_at > 300, timeout=60, what="5 virtual minutes")
        assert not task.done()
        offline = outbox.events("device.offline")
        assert len(offline) == 1, offline
        assert offline[0].active and offline[0].severity == "major" and not offline[0].life_safety
        assert poller.connect_attempts > 100
        assert poller.backoff(poller.bus_failures) == 2.0
        await server.set(1, "ir", 0, [9])
        await server.start()
        await wait_for(lambda: len(outbox.events("device.offline")) == 2, timeout=30, what="back online")
        assert outbox.events("device.offline")[1].active is False
        batcher.flush()
        await wait_for(lambda: ("lift1", "car.floor", 9, "good") in outbox.samples() or batcher.flush(),
                       what="new value after recovery")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
