"""Simulated Modbus TCP devices whose register maps come from the same profiles the gateway reads.

A :class:`ModbusDevice` holds the four Modbus tables of one device, sized with
``CompiledProfile.register_extent(table)``, and sets/reads values *by point name* through
``device_profiles.modbus_codec`` — a profile change moves the simulator with it. Behaviours
(:data:`BEHAVIOURS`, chosen by the profile's ``device_type``) make a device react to writes: the fire
panel's operator keys and the elevator's command register.

A :class:`ModbusBus` is what one TCP port serves: one device (unit id) or many unit ids behind one
Modbus TCP gateway. :class:`ModbusPortServer` is a pymodbus ``ModbusTcpServer`` whose datastore is the bus.
Faults: a silent device does not answer at all (the client times out), a slow one answers after a delay,
and a port in ``junk_responses`` mode answers every request with random bytes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice

from contract.messages import Scalar
from device_profiles import modbus_codec
from device_profiles.compiled import CompiledProfile, ConcretePoint
from device_profiles.schema import REGISTER_COUNT, Profile
from simulators.clock import SimClock

logger = logging.getLogger(__name__)

TABLES = ("coil", "discrete_input", "holding", "input")
_FC_TABLE: dict[int, str] = {1: "coil", 5: "coil", 15: "coil", 2: "discrete_input", 4: "input"}
_FC_TABLE.update({fc: "holding" for fc in (3, 6, 16, 22, 23)})
_BIT_TABLES = ("coil", "discrete_input")

Value = bool | int | float | str
ChangeListener = Callable[["ModbusDevice", str, int, int], None]


class UnknownPoint(KeyError):
    def __init__(self, device_id: str, name: str) -> None:
        super().__init__(name)
        self.device_id = device_id
        self.name = name

    def __str__(self) -> str:
        return f"device {self.device_id!r} has no point {self.name!r}"


_COMPILED: dict[int, tuple[Profile, CompiledProfile]] = {}


def compiled(profile: Profile | CompiledProfile) -> CompiledProfile:
    """One :class:`CompiledProfile` per profile object, shared by every device of that profile."""
    if isinstance(profile, CompiledProfile):
        return profile
    hit = _COMPILED.get(id(profile))
    if hit is None or hit[0] is not profile:
        hit = (profile, CompiledProfile(profile))
        _COMPILED[id(profile)] = hit
    return hit[1]


def _width(point: ConcretePoint) -> int:
    assert point.register is not None
    return 16 * REGISTER_COUNT[point.register.type]


class ModbusDevice:
    """One simulated Modbus device: tables, point access by name, fault switches and a behaviour."""

    def __init__(self, device_id: str, profile: Profile | CompiledProfile, *, unit: int = 1,
                 clock: SimClock | None = None, params: dict[str, Scalar] | None = None,
                 behaviour: Callable[[ModbusDevice], Behaviour] | None = None) -> None:
        self.id = device_id
        self.compiled = compiled(profile)
        self.profile = self.compiled.profile
        self.unit = unit
        self.clock = clock or SimClock()
        self.params: dict[str, Scalar] = dict(params or {})
        self.tables: dict[str, list[int]] = {
            t: [0] * max(1, self.compiled.register_extent(t)) for t in TABLES
        }
        self.silent = False
        self.delay_s = 0.0
        self.requests_served = 0
        self.writes: list[tuple[str, int, list[int]]] = []
        self._listeners: list[ChangeListener] = []
        make = behaviour or BEHAVIOURS.get(self.profile.device_type, Behaviour)
        self.behaviour: Behaviour = make(self)
        self.behaviour.initialise()

    # ------------------------------------------------------------------ points by name
    def point(self, name: str) -> ConcretePoint:
        p = self.compiled.points_by_name.get(name)
        if p is None or p.register is None:
            raise UnknownPoint(self.id, name)
        return p

    def _words(self, p: ConcretePoint) -> list[int]:
        assert p.register is not None
        a, n = p.span
        return self.tables[p.register.table][a : a + n]

    def get(self, name: str) -> Value:
        """The decoded value of a point, exactly as a gateway reading the registers would see it."""
        p = self.point(name)
        assert p.register is not None
        words = self._words(p)
        if p.register.table in _BIT_TABLES:
            return bool(words[0])
        return modbus_codec.decode(p.register, words, p.byte_order, p.word_order, p.register_enum)

    def set(self, name: str, value: Value) -> None:
        """Encode ``value`` into the point's registers (read-modify-write for bit and bit-field points)."""
        self._store(name, value)
        self.behaviour.after_set(name)

    def set_many(self, values: dict[str, Value]) -> None:
        for name, value in values.items():
            self._store(name, value)
        for name in values:
            self.behaviour.after_set(name)

    def _store(self, name: str, value: Value) -> None:
        p = self.point(name)
        reg = p.register
        assert reg is not None
        addr, count = p.span
        table = reg.table
        if table in _BIT_TABLES:
            new = [1 if value else 0]
        elif reg.bit is not None or reg.bits is not None:
            if isinstance(value, str):
                if p.register_enum is None:
                    raise modbus_codec.CodecError(f"{value!r} is not a number")
                reverse = {v: k for k, v in p.register_enum.items()}
                if value not in reverse:
                    raise modbus_codec.CodecError(f"{value!r} is not one of {', '.join(reverse)}")
                value = reverse[value]
            width = _width(p)
            raw = int(modbus_codec.raw_from_registers(self._words(p), reg.type, p.byte_order, p.word_order))
            unsigned = raw & ((1 << width) - 1)
            if reg.bit is not None:
                mask = 1 << reg.bit
                unsigned = (unsigned | mask) if value else (unsigned & ~mask)
            else:
                assert reg.bits is not None
                field_mask = ((1 << reg.bits.length) - 1) << reg.bits.start
                unsigned = (unsigned & ~field_mask) | ((int(value) << reg.bits.start) & field_mask)
            signed = unsigned - (1 << width) if reg.type.startswith("int") and unsigned >> (width - 1) else unsigned
            new = modbus_codec.registers_from_raw(signed, reg.type, p.byte_order, p.word_order)
        else:
            new = modbus_codec.encode(reg, value, byte_order=p.byte_order, word_order=p.word_order,
                                      enum=p.register_enum)
        assert len(new) == count
        self.tables[table][addr : addr + count] = new

    def values(self) -> dict[str, Value]:
        """Every point's current value (a snapshot for reports and tests)."""
        return {p.name: self.get(p.name) for p in self.compiled.points if p.register is not None}

    # ------------------------------------------------------------------ Modbus side
    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(device, table, address, count)`` after every Modbus write to this device."""
        self._listeners.append(listener)

    def read(self, table: str, address: int, count: int) -> list[int] | None:
        regs = self.tables[table]
        if address < 0 or count < 1 or address + count > len(regs):
            return None
        self.requests_served += 1
        return regs[address : address + count]

    def write(self, table: str, address: int, values: list[int]) -> bool:
        regs = self.tables[table]
        if table not in ("coil", "holding") or address < 0 or address + len(values) > len(regs):
            return False
        self.requests_served += 1
        regs[address : address + len(values)] = [int(v) for v in values]
        self.writes.append((table, address, list(values)))
        try:
            # react after pymodbus has read the written values back for its response (a device echoes them)
            asyncio.get_running_loop().call_soon(self._after_write, table, address, len(values))
        except RuntimeError:
            self._after_write(table, address, len(values))
        return True

    def _after_write(self, table: str, address: int, count: int) -> None:
        self.behaviour.after_write(table, address, count)
        for listener in self._listeners:
            listener(self, table, address, count)


class ModbusBus:
    """The devices one TCP port serves, by unit id: a pymodbus datastore (duck-typed ``SimCore``)."""

    def __init__(self) -> None:
        self.devices: dict[int, ModbusDevice] = {}
        self.junk_responses = False
        self.rng = random.Random(0)

    def add(self, device: ModbusDevice) -> None:
        if device.unit in self.devices:
            raise ValueError(f"unit id {device.unit} is already used by {self.devices[device.unit].id}")
        self.devices[device.unit] = device

    def device_ids(self) -> list[int]:
        return list(self.devices)

    async def _device(self, unit: int) -> ModbusDevice | None:
        dev = self.devices.get(unit)
        if dev is None:
            return None
        if dev.silent:
            # pymodbus (ignore_missing_devices=True) sends nothing: the client times out, as with a dead device
            raise NoSuchIdException(f"device {dev.id} is silent")
        if dev.delay_s > 0:
            await asyncio.sleep(dev.delay_s)
            if dev.silent:
                raise NoSuchIdException(f"device {dev.id} is silent")
        return dev

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> list[int] | list[bool] | ExcCodes:
        dev = await self._device(device_id)
        if dev is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        words = dev.read(table, address, count)
        if words is None:
            return ExcCodes.ILLEGAL_ADDRESS
        if table in _BIT_TABLES:
            return [bool(w) for w in words]
        return words

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: list[int] | list[bool]) -> ExcCodes | None:
        dev = await self._device(device_id)
        if dev is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if not dev.write(table, address, [int(v) for v in values]):
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus packet hook: in ``junk_responses`` mode every answer is replaced by random bytes."""
        if sending and self.junk_responses:
            return bytes(self.rng.getrandbits(8) for _ in range(max(1, len(data))))
        return data


class _BusServer(ModbusTcpServer):
    """A pymodbus TCP server whose datastore is a :class:`ModbusBus` (pymodbus only calls
    ``async_getValues``/``async_setValues``/``device_ids`` on it)."""

    def __init__(self, bus: ModbusBus, host: str, port: int) -> None:
        placeholder = SimDevice(0, simdata=[SimData(0)])
        super().__init__(placeholder, address=(host, port), ignore_missing_devices=True,
                         trace_packet=bus.trace_packet)
        self.context = cast(Any, bus)


class ModbusPortServer:
    """One listening TCP port serving a bus of one or more devices."""

    def __init__(self, bus: ModbusBus, host: str = "127.0.0.1", port: int = 0) -> None:
        self.bus = bus
        self.host = host
        self.requested_port = port
        self.port = port
        self._server: _BusServer | None = None

    async def start(self) -> None:
        self._server = _BusServer(self.bus, self.host, self.requested_port)
        await self._server.serve_forever(background=True)
        transport = cast(Any, self._server.transport)
        if transport is None:
            raise OSError(f"cannot listen on {self.host}:{self.requested_port}")
        self.port = int(transport.sockets[0].getsockname()[1])
        self.requested_port = self.port  # a restart binds the same port again

    async def stop(self) -> None:
        if self._server is not None:
            await cast(Any, self._server).shutdown()
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None


class ModbusDeviceServer:
    """A single simulated device on its own port, for small tests::

        async with ModbusDeviceServer(catalog.get("gst-fp200"), port=0, unit=1) as dev:
            dev.set("zone12.fire", True)
            host, port, unit = dev.endpoint
    """

    def __init__(self, profile: Profile | CompiledProfile, *, port: int = 0, unit: int = 1, host: str = "127.0.0.1",
                 device_id: str = "sim-device", clock: SimClock | None = None,
                 params: dict[str, Scalar] | None = None) -> None:
        self.device = ModbusDevice(device_id, profile, unit=unit, clock=clock, params=params)
        bus = ModbusBus()
        bus.add(self.device)
        self.server = ModbusPortServer(bus, host, port)

    @property
    def endpoint(self) -> tuple[str, int, int]:
        return self.server.host, self.server.port, self.device.unit

    def set(self, name: str, value: Value) -> None:
        self.device.set(name, value)

    def get(self, name: str) -> Value:
        return self.device.get(name)

    async def __aenter__(self) -> ModbusDeviceServer:
        await self.server.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.device.behaviour.close()
        await self.server.stop()


# ---------------------------------------------------------------------- behaviours


class Behaviour:
    """What a device does on its own: initial values, reactions to writes, consistency rules."""

    def __init__(self, device: ModbusDevice) -> None:
        self.device = device
        self._tasks: set[asyncio.Task[None]] = set()

    def initialise(self) -> None:
        """Set plausible power-on values."""

    def after_set(self, name: str) -> None:
        """Keep derived points consistent after the simulation set ``name``."""

    def after_write(self, table: str, address: int, count: int) -> None:
        """React to a Modbus write from a client."""

    def tick(self, rng: random.Random) -> None:
        """Background drift (called every few scenario seconds when background traffic is on)."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            logger.warning("%s: no event loop to run a device action on", self.device.id)
            return None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()


class FirePanelBehaviour(Behaviour):
    """GB/T 26875.3-style panel: panel.fire/fault follow the zones; coils 0/1/2 are reset/silence/self-test."""

    def initialise(self) -> None:
        d = self.device
        zones = int(d.params.get("zones", 32))
        d.set_many({"panel.normal": True, "panel.auto_mode": True, "panel.zones": zones,
                    "panel.backup_voltage": 27.3})
        self.silenced = False
        self.self_tests = 0

    def _zone_names(self, suffix: str) -> list[str]:
        cache: dict[str, list[str]] = self.__dict__.setdefault("_names", {})
        if suffix not in cache:
            cache[suffix] = [p.name for p in self.device.compiled.points if p.n is not None and p.name.endswith(suffix)]
        return cache[suffix]

    def recompute(self) -> None:
        d = self.device
        fire = any(d.get(n) for n in self._zone_names(".fire"))
        fault = any(d.get(n) for n in self._zone_names(".fault"))
        d._store("panel.fire", fire)
        d._store("panel.fault", fault)
        d._store("panel.normal", not (fire or fault))

    def after_set(self, name: str) -> None:
        if name.startswith("zone") or name in ("panel.fire", "panel.fault"):
            self.recompute()
        if name.endswith(".fire") and self.device.get(name):
            self.silenced = False

    def after_write(self, table: str, address: int, count: int) -> None:
        if table != "coil":
            return
        coils = self.device.tables["coil"]
        for addr in range(address, address + count):
            if addr >= len(coils) or not coils[addr]:
                continue
            coils[addr] = 0  # operator keys are momentary
            if addr == 0:
                logger.info("%s: reset (复位)", self.device.id)
                for n in self._zone_names(".fire") + self._zone_names(".fault"):
                    self.device._store(n, False)
                self.silenced = False
                self.recompute()
            elif addr == 1:
                logger.info("%s: silence (消音)", self.device.id)
                self.silenced = True
            elif addr == 2:
                logger.info("%s: self-test (自检)", self.device.id)
                self.self_tests += 1

    def tick(self, rng: random.Random) -> None:
        v = float(self.device.get("panel.backup_voltage"))
        self.device.set("panel.backup_voltage", round(min(27.6, max(26.4, v + rng.uniform(-0.05, 0.05))), 2))


class ElevatorBehaviour(Behaviour):
    """Holding 100 is the command code (1 fire recall to floor holding 102, 2 hold doors holding 101 s,
    3 release doors, 4 restore normal service, 5 play voice message holding 103); the car moves floor by
    floor, ``floor_s`` scenario seconds per floor (device param ``floor_s``, default 2)."""

    def initialise(self) -> None:
        d = self.device
        self.base_floor = int(d.params.get("base_floor", 1))
        self.top_floor = int(d.params.get("floors", 18))
        self.floor_s = float(d.params.get("floor_s", 2.0))
        d.set_many({"car.floor": self.base_floor, "car.direction": "stopped", "door.state": "closed",
                    "service.mode": "normal", "car.in_door_zone": True, "car.at_base_floor": True,
                    "car.speed": 0.0, "car.load": 0, "car.run_count": 0})
        self._motion: asyncio.Task[None] | None = None
        self._hold: asyncio.Task[None] | None = None
        self.voice_messages: list[int] = []

    def after_set(self, name: str) -> None:
        if name == "car.floor":
            self.device._store("car.at_base_floor", int(self.device.get("car.floor")) == self.base_floor)

    def after_write(self, table: str, address: int, count: int) -> None:
        if table != "holding" or not address <= 100 < address + count:
            return
        regs = self.device.tables["holding"]
        code = regs[100]
        regs[100] = 0  # accepted
        d = self.device
        if code == 1:
            target = int(modbus_codec.raw_from_registers([regs[102]], "int16"))
            logger.info("%s: fire recall to floor %d", d.id, target)
            self._cancel_hold()
            self.move_to(target, then_mode="fire_service")
        elif code == 2:
            seconds = max(1, regs[101])
            self._cancel_hold()
            d.set_many({"door.state": "open", "door.held": True})
            self._hold = self.spawn(self._release_after(seconds))
        elif code == 3:
            self._cancel_hold()
            d.set_many({"door.held": False, "door.state": "closed"})
        elif code == 4:
            self._cancel_hold()
            d.set_many({"service.mode": "normal", "door.held": False, "door.state": "closed"})
        elif code == 5:
            self.voice_messages.append(int(regs[103]))
            logger.info("%s: voice message %d played in the car", d.id, regs[103])
        else:
            logger.info("%s: ignoring unknown command code %d", d.id, code)

    def _cancel_hold(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None

    async def _release_after(self, seconds: float) -> None:
        await self.device.clock.sleep(seconds)
        self.device.set_many({"door.held": False, "door.state": "closed"})

    def move_to(self, target: int, *, then_mode: str | None = None) -> None:
        if self._motion is not None:
            self._motion.cancel()
        self._motion = self.spawn(self._move(target, then_mode))

    async def _move(self, target: int, then_mode: str | None) -> None:
        d = self.device
        floor = int(d.get("car.floor"))
        if floor != target:
            d.set_many({"door.state": "closed", "door.held": False, "car.running": True, "car.speed": 1.5,
                        "car.direction": "up" if target > floor else "down", "car.in_door_zone": False})
            step = 1 if target > floor else -1
            while floor != target:
                await d.clock.sleep(self.floor_s)
                floor += step
                d.set("car.floor", floor)
            d.set("car.run_count", int(d.get("car.run_count")) + 1)
        d.set_many({"car.running": False, "car.speed": 0.0, "car.direction": "stopped", "car.in_door_zone": True,
                    "door.state": "open"})
        if then_mode is not None:
            d.set("service.mode", then_mode)

    def tick(self, rng: random.Random) -> None:
        d = self.device
        if d.get("service.mode") != "normal" or d.get("car.running") or int(d.get("fault.word")):
            return
        occupied = rng.random() < 0.4
        d.set_many({"car.occupied": occupied, "car.load": rng.randint(10, 70) if occupied else 0})
        if rng.random() < 0.3:
            self.move_to(rng.randint(self.base_floor, self.top_floor))
        elif d.get("door.state") == "open" and not d.get("door.held"):
            d.set("door.state", "closed")


BEHAVIOURS: dict[str, type[Behaviour]] = {
    "fire_panel": FirePanelBehaviour,
    "elevator": ElevatorBehaviour,
}
"""Device behaviours by profile ``device_type`` (an explicit registry; other types only hold values)."""
