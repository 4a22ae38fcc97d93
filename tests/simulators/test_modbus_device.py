"""Simulated Modbus devices: values set by point name are what a real pymodbus client decodes with the
gateway's read plan; the fire panel and elevator react to their commands; faults behave like dead, slow
and broken devices."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from device_profiles.commands import render_modbus, validate_args
from device_profiles.compiled import CompiledProfile
from device_profiles.loader import load_catalog
from device_profiles.read_plan import decode_block, plan_reads
from simulators.clock import SimClock
from simulators.faults import send_garbage
from simulators.modbus import ModbusBus, ModbusDevice, ModbusDeviceServer, ModbusPortServer

CATALOG = load_catalog()
FP = CATALOG.get("gst-fp200")
EL = CATALOG.get("acme-em200")


def sample(point: Any, rng: random.Random) -> Any:
    reg = point.register
    if reg.table in ("coil", "discrete_input") or reg.bit is not None or reg.type == "bool":
        return rng.random() < 0.5
    if point.enum:
        return rng.choice(list(point.enum.values()))
    if reg.type.startswith("float"):
        return round(rng.uniform(-100, 100), 2)
    if reg.scale != 1.0:
        return round(rng.randint(0, 600) * reg.scale, 4)
    lo, hi = {"int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-(2**31), 2**31 - 1),
              "uint32": (0, 2**32 - 1)}.get(reg.type, (0, 1000))
    return rng.randint(lo, hi)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_set_then_get_every_point(seed: int) -> None:
    rng = random.Random(seed)
    for profile in (FP, EL):
        dev = ModbusDevice("d", profile)
        for p in CompiledProfile(profile).points:
            if p.name.endswith(".state") or p.name in ("fault.word", "panel.fire", "panel.fault", "panel.normal"):
                continue  # whole words and derived points: checked below
            value = sample(p, rng)
            dev.set(p.name, value)
            got = dev.get(p.name)
            assert got == pytest.approx(value) if isinstance(value, float) else got == value, p.name


def test_bits_are_read_modify_write_and_the_panel_stays_consistent() -> None:
    dev = ModbusDevice("fp", FP, params={"zones": 18})
    assert dev.get("panel.normal") is True and dev.get("panel.zones") == 18
    dev.set("zone12.fault", True)
    dev.set("zone12.fire", True)
    assert dev.get("zone12.state") == 0b110 and dev.get("zone12.fault") is True
    assert dev.get("panel.fire") is True and dev.get("panel.normal") is False and dev.get("zone11.fire") is False
    dev.set("zone12.fire", False)
    assert dev.get("panel.fire") is False and dev.get("panel.fault") is True and dev.get("zone12.fault") is True
    dev.set("zone12.fault", False)
    assert dev.get("panel.normal") is True


async def read_all(client: AsyncModbusTcpClient, profile: Any, unit: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    cp = CompiledProfile(profile)
    for block in plan_reads(cp.points, profile.modbus):
        fn = {"input": client.read_input_registers, "holding": client.read_holding_registers,
              "coil": client.read_coils, "discrete_input": client.read_discrete_inputs}[block.table]
        resp = await fn(block.start, count=block.count, device_id=unit)
        assert not resp.isError(), resp
        words = resp.registers if block.table in ("input", "holding") else resp.bits
        for r in decode_block(block, words):
            assert r.error is None, (r.point.name, r.error)
            values[r.point.name] = r.value
    return values


async def send_command(client: AsyncModbusTcpClient, profile: Any, name: str, unit: int, **args: Any) -> None:
    cmd = profile.command(name)
    for w in render_modbus(cmd, validate_args(cmd, args), profile.modbus):
        if w.table == "coil":
            resp = await client.write_coil(w.address, bool(w.values[0]), device_id=unit)
        else:
            resp = await client.write_registers(w.address, list(w.values), device_id=unit)
        assert not resp.isError(), resp


async def until(cond: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond() if asyncio.iscoroutinefunction(cond) else not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_fire_panel_read_with_the_gateway_read_plan_and_operated() -> None:
    async with ModbusDeviceServer(FP, unit=3, params={"zones": 18}) as sim:
        host, port, unit = sim.endpoint
        sim.set("zone12.fire", True)
        sim.set("zone5.fault", True)
        client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
        await client.connect()
        try:
            seen = await read_all(client, FP, unit)
            assert seen == sim.device.values()
            assert seen["zone12.fire"] is True and seen["panel.fire"] is True and seen["zone5.fault"] is True
            assert seen["panel.backup_voltage"] == pytest.approx(27.3)
            await send_command(client, FP, "silence", unit)
            await send_command(client, FP, "reset", unit)  # 复位 clears zone fire/fault and panel.fire
            await until(lambda: sim.get("panel.fire") is False)
            seen = await read_all(client, FP, unit)
            assert not any(v for k, v in seen.items() if k.endswith((".fire", ".fault")))
            assert seen["panel.normal"] is True
            assert getattr(sim.device.behaviour, "silenced", None) is False
        finally:
            client.close()


@pytest.mark.integration
async def test_elevator_fire_recall_hold_and_restore() -> None:
    clock = SimClock(speed=20.0)  # floor_s 2 scenario seconds → 0.1 s a floor
    async with ModbusDeviceServer(EL, clock=clock, params={"floors": 18, "floor_s": 2.0}) as sim:
        host, port, unit = sim.endpoint
        sim.device.set_many({"car.floor": 9, "door.state": "closed"})
        client = AsyncModbusTcpClient(host, port=port, timeout=2, retries=0)
        await client.connect()
        try:
            await send_command(client, EL, "fire_recall", unit, floor=1)
            floors: list[int] = []

            async def arrived() -> bool:
                v = await read_all(client, EL, unit)
                floors.append(v["car.floor"])
                return bool(v["service.mode"] == "fire_service")

            await until(arrived)
            v = await read_all(client, EL, unit)
            assert v["car.floor"] == 1 and v["door.state"] == "open" and v["car.at_base_floor"] is True
            assert v["car.running"] is False and v["car.run_count"] == 1
            assert floors == sorted(floors, reverse=True) and len(set(floors)) > 2  # floor by floor, downwards
            await send_command(client, EL, "hold_doors", unit, duration_s=2)
            await until(lambda: sim.get("door.held") is True)
            await until(lambda: sim.get("door.held") is False)  # released after 2 scenario seconds
            await send_command(client, EL, "hold_doors", unit, duration_s=600)
            await until(lambda: sim.get("door.held") is True)
            await send_command(client, EL, "release_doors", unit)
            await until(lambda: sim.get("door.held") is False and sim.get("door.state") == "closed")
            await send_command(client, EL, "restore_service", unit)
            await until(lambda: sim.get("service.mode") == "normal")
        finally:
            client.close()


@pytest.mark.integration
async def test_bus_silence_slow_junk_and_garbage() -> None:
    bus = ModbusBus()
    el1, el2 = ModbusDevice("el1", EL, unit=1), ModbusDevice("el2", EL, unit=2)
    bus.add(el1)
    bus.add(el2)
    el2.set("car.floor", 7)
    server = ModbusPortServer(bus)
    await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=0.5, retries=0)
    try:
        await client.connect()
        assert (await client.read_input_registers(0, count=1, device_id=2)).registers == [7]
        unknown = await client.read_input_registers(0, count=1, device_id=9)
        assert unknown.isError()  # no such unit behind this gateway: exception 0x0B
        el2.silent = True
        with pytest.raises(ModbusException):
            await client.read_input_registers(0, count=1, device_id=2)
        el2.silent = False
        if not client.connected:
            await client.connect()
        assert (await client.read_input_registers(0, count=1, device_id=1)).registers == [1]  # neighbour unaffected
        el1.delay_s = 0.2
        assert (await client.read_input_registers(0, count=1, device_id=1)).registers == [1]  # slow but in time
        el1.delay_s = 0.0
        received = await send_garbage("127.0.0.1", server.port, random.Random(1), 20)
        assert received >= 0
        if not client.connected:
            await client.connect()
        assert (await client.read_input_registers(0, count=1, device_id=2)).registers == [7]  # survived the junk
        bus.junk_responses = True
        try:
            r = await client.read_input_registers(0, count=1, device_id=2)
            assert r.isError() or r.registers != [7]  # the answer is junk, never the real value
        except ModbusException:
            pass  # the client gave up on the junk: also what a gateway sees
        bus.junk_responses = False
    finally:
        client.close()
        await server.stop()
