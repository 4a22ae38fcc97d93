"""The simulated compound: every device of a layout brought up in one process — the Python API.

::

    async with SimulatedCompound(layout, seed=7, mqtt=broker_url, modbus_port_base=0) as sim:
        sim.device("b3-fp").set("zone12.fire", True)
        host, port, unit = sim.modbus_endpoint("b3-fp")
        sim.mqtt_device("b3-door").present_card("10000001")
        sim.silence("b3-el1"); sim.restore("b3-el1")

Modbus devices are pymodbus servers on one asyncio loop (one server per port; a port serves one device
or a bus of unit ids). MQTT devices run the reference firmware (:mod:`simulators.mqtt_devices`) stepped
from one driver thread. Devices with ``replay`` in the layout (by default those whose type has no firmware
or behaviour here) play samples — their profile's examples — instead (:mod:`simulators.replay_devices`).
Cameras come from :mod:`simulators.camera` when it is importable.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import random
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from device_profiles.loader import Catalog, load_catalog
from simulators.broker import MosquittoProcess
from simulators.clock import SimClock
from simulators.faults import parse_mqtt_url, send_garbage
from simulators.layout import DeviceSpec, Layout, load_layout
from simulators.modbus import ModbusBus, ModbusDevice, ModbusPortServer
from simulators.mqtt_devices import FirmwareDevice, FirmwareHost
from simulators.proxy import TcpProxy
from simulators.replay_devices import ReplayMqttDevice, replay_behaviour, resolve

logger = logging.getLogger(__name__)

DEFAULT_CARDS = [f"1000{i:04d}" for i in range(1, 21)]
"""Authorised card numbers every simulated door controller knows (unless the layout gives ``cards``)."""
UNKNOWN_CARD = "99990000"


class DeviceNotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class SimCamera:
    """A camera from the camera simulator, playing one scene at a time (switched by scenarios)."""

    def __init__(self, spec: DeviceSpec, camera_mod: Any, seed: int) -> None:
        self.id = spec.id
        self.spec = spec
        self._mod = camera_mod
        self.seed = seed
        self.scene_name = ""
        self._scene: Any = None
        self._t0 = time.monotonic()
        self.set_scene("fire_lane_clear" if spec.source and spec.source.scene == "fire_lane" else "elevator_person")
        fps = spec.source.fps if spec.source else 5.0
        self.server = camera_mod.MjpegCamera(self._frame, fps=fps)

    def _frame(self, _t: float) -> Any:
        return self._scene.frame(time.monotonic() - self._t0)

    def set_scene(self, name: str, **params: Any) -> None:
        m = self._mod
        if name == "fire_lane_clear":
            scene = m.Scene(seed=self.seed, kind="fire_lane")
        elif name == "fire_lane_blocked":
            scene = m.fire_lane_blockage_scene(self.seed, arrive_s=float(params.get("arrive_s", 1.0)),
                                               stay_s=float(params.get("stay_s", 86_400.0)))
        elif name == "people_walking":
            scene = m.people_walking_scene(self.seed)
        elif name == "elevator_empty":
            scene = m.elevator_scene(self.seed, ebike=False, person=False)
        elif name == "elevator_person":
            scene = m.elevator_scene(self.seed, ebike=False)
        elif name == "ebike":  # dog.jpg's bicycle wheeled into the car (a real photograph)
            scene = m.elevator_scene(self.seed, thing="bicycle")
        elif name in ("elevator_trolley", "elevator_dog"):  # not e-bikes: must not fire by class
            scene = m.elevator_scene(self.seed, thing="boxes" if name == "elevator_trolley" else "dog")
        elif name == "fire_lane_car":  # dog.jpg's pickup parks in the lane
            scene = m.fire_lane_vehicle_scene(self.seed, arrive_s=float(params.get("arrive_s", 1.0)),
                                              stay_s=float(params.get("stay_s", 86_400.0)))
        else:
            raise ValueError(f"unknown camera scene {name!r}; known: {', '.join(CAMERA_SCENES)}")
        self._scene = scene
        self._t0 = time.monotonic()
        self.scene_name = name

    @property
    def url(self) -> str:
        return str(self.server.url)


CAMERA_SCENES = ("fire_lane_clear", "fire_lane_blocked", "fire_lane_car", "people_walking", "elevator_empty",
                 "elevator_person", "ebike", "elevator_trolley", "elevator_dog")


class SimulatedCompound:
    """Every device of a layout, started together; see the module docstring for the API."""

    def __init__(self, layout: Layout | Path | str, *, catalog: Catalog | None = None, seed: int = 0,
                 mqtt: str | None = None, modbus_port_base: int | None = None, speed: float = 1.0,
                 cameras: bool = True, background: bool = False, background_s: float = 10.0,
                 firmware_step_s: float = 0.05, uplink_proxy: bool = False, uplink: str | None = None,
                 modbus_host: str | None = None, mqtt_devices: bool = True) -> None:
        self.catalog = catalog or load_catalog()
        self.layout = layout if isinstance(layout, Layout) else load_layout(Path(layout), self.catalog)
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = SimClock(speed)
        self.mqtt_url = mqtt
        self.port_base = self.layout.modbus.port_base if modbus_port_base is None else modbus_port_base
        self.modbus_host = modbus_host or self.layout.modbus.host
        self.want_cameras = cameras
        self.background = background
        self.background_s = background_s
        self.uplink_target = uplink
        self.want_proxy = uplink_proxy or uplink is not None
        self.want_mqtt_devices = mqtt_devices
        self.broker: MosquittoProcess | None = None
        self.proxy: TcpProxy | None = None
        self.modbus: dict[str, ModbusDevice] = {}
        self.ports: list[ModbusPortServer] = []
        self._port_of: dict[str, ModbusPortServer] = {}
        self.firmware = FirmwareHost(firmware_step_s)
        self.replayed: dict[str, ReplayMqttDevice] = {}
        self.cameras: dict[str, SimCamera] = {}
        self.camera_status = "no cameras in the layout"
        self._bg_task: asyncio.Task[None] | None = None
        self._started = False
        self.start_s = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> SimulatedCompound:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # nothing half-started is left behind (ports, broker, threads)
            raise

    async def _start(self) -> None:
        t0 = time.monotonic()
        await self._start_modbus()
        mqtt_specs = self.layout.by_protocol("mqtt") if self.want_mqtt_devices else []
        if (mqtt_specs or (self.want_proxy and self.uplink_target is None)) and self.mqtt_url is None:
            self.broker = MosquittoProcess()
            await asyncio.to_thread(self.broker.start)
            self.mqtt_url = self.broker.url
        firmware_specs = [s for s in mqtt_specs if s.replay is None]
        if firmware_specs:
            await asyncio.to_thread(self._start_firmware, firmware_specs)
        replay_specs = [s for s in mqtt_specs if s.replay is not None]
        if replay_specs:
            await asyncio.to_thread(self._start_replay, replay_specs)
        if self.want_proxy:
            host, port = parse_mqtt_url(self.uplink_target or self.mqtt_url or "")
            self.proxy = TcpProxy(host, port)
            await self.proxy.start()
        self._start_cameras()
        if self.background:
            self._bg_task = asyncio.get_running_loop().create_task(self._background())
        self._started = True
        self.start_s = time.monotonic() - t0
        self.clock.restart()  # scenario time 0 = every device up
        logger.info("compound %s up: %d Modbus devices on %d ports, %d MQTT devices (%d replayed), %d cameras in "
                    "%.1fs", self.layout.site.id, len(self.modbus), len(self.ports),
                    len(self.firmware.devices) + len(self.replayed), len(self.replayed), len(self.cameras),
                    self.start_s)

    async def _start_modbus(self) -> None:
        specs = self.layout.by_protocol("modbus_tcp")
        next_port = self.port_base
        buses: dict[str, ModbusPortServer] = {}
        for spec in specs:
            assert spec.modbus_unit is not None
            profile = self.catalog.get(spec.profile)
            behaviour = (replay_behaviour(resolve(profile, spec.replay), spec.replay.loop)
                         if spec.replay is not None else None)
            dev = ModbusDevice(spec.id, profile, unit=spec.modbus_unit, clock=self.clock,
                               params={k: v for k, v in spec.params.items() if not isinstance(v, list)},
                               behaviour=behaviour)
            self.modbus[spec.id] = dev
            if spec.bus is not None and spec.bus in buses:
                buses[spec.bus].bus.add(dev)
                self._port_of[spec.id] = buses[spec.bus]
                continue
            fixed = spec.port if spec.bus is None else self.layout.buses[spec.bus].port
            if fixed:
                port = fixed
            elif self.port_base:
                port = next_port
                next_port += 1
            else:
                port = 0
            bus = ModbusBus()
            bus.rng = random.Random(self.rng.random())
            bus.add(dev)
            server = ModbusPortServer(bus, self.modbus_host, port)
            self.ports.append(server)
            self._port_of[spec.id] = server
            if spec.bus is not None:
                buses[spec.bus] = server
        for server in self.ports:
            await server.start()

    def _start_firmware(self, specs: list[DeviceSpec]) -> None:
        host, port = parse_mqtt_url(self.mqtt_url or "")
        for spec in specs:
            profile = self.catalog.get(spec.profile)
            cfg: dict[str, Any] = {"server": host, "port": port, "keepalive": 30, "salt": self.layout.site.id,
                                   "cards": list(DEFAULT_CARDS), "battery": round(self.rng.uniform(60, 100), 1)}
            cfg.update(spec.params)
            self.firmware.add(FirmwareDevice(spec.id, profile.device_type, cfg))
        self.firmware.start()
        missing = self.firmware.wait_connected(timeout=max(10.0, len(specs) * 0.05))
        if missing:
            logger.warning("%d MQTT devices not connected yet: %s", len(missing), ", ".join(missing[:5]))

    def _start_replay(self, specs: list[DeviceSpec]) -> None:
        host, port = parse_mqtt_url(self.mqtt_url or "")
        for spec in specs:
            assert spec.replay is not None
            dev = ReplayMqttDevice(spec.id, self.catalog.get(spec.profile), spec.replay, host, port)
            self.replayed[spec.id] = dev
            dev.start()

    def _start_cameras(self) -> None:
        specs = self.layout.by_protocol("camera")
        if not specs:
            return
        if not self.want_cameras:
            self.camera_status = "cameras disabled"
            return
        try:
            camera_mod = importlib.import_module("simulators.camera")
        except ImportError as exc:
            self.camera_status = f"cameras are not started: simulators.camera is not importable ({exc})"
            logger.warning("%s", self.camera_status)
            return
        for spec in specs:
            cam = SimCamera(spec, camera_mod, self.rng.randrange(1 << 16))
            cam.server.start()
            self.cameras[spec.id] = cam
        self.camera_status = f"{len(self.cameras)} cameras started"

    async def stop(self) -> None:
        if self._bg_task is not None:
            self._bg_task.cancel()
            self._bg_task = None
        for dev in self.modbus.values():
            dev.behaviour.close()
        for server in self.ports:
            await server.stop()
        if self.firmware.devices:
            await asyncio.to_thread(self.firmware.stop)
        for replayed in self.replayed.values():
            await asyncio.to_thread(replayed.stop)
        for cam in self.cameras.values():
            await asyncio.to_thread(cam.server.stop)
        if self.proxy is not None:
            await self.proxy.stop()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.cleanup)
        self._started = False

    def background_tick(self) -> None:
        """One round of background traffic: each device draws from the one seeded generator, in a fixed order
        (device ids sorted), so the sequence of values is the same for the same seed."""
        for _, dev in sorted(self.modbus.items()):
            if not dev.silent:
                dev.behaviour.tick(self.rng)
        for _, sd in sorted(self.firmware.devices.items()):
            if sd.kind == "smoke_detector":
                sd.set_battery(max(0.0, sd.battery() - self.rng.uniform(0.0, 0.02)))

    async def _background(self) -> None:
        while True:
            await self.clock.sleep(self.background_s)
            self.background_tick()

    # ------------------------------------------------------------------ access
    def device(self, device_id: str) -> ModbusDevice:
        """A Modbus device: ``.set(point, value)``, ``.get(point)``, ``.values()``."""
        try:
            return self.modbus[device_id]
        except KeyError:
            hint = " (an MQTT device: use mqtt_device())" if device_id in self.firmware.devices else ""
            raise DeviceNotFound(f"no Modbus device {device_id!r}{hint}") from None

    def mqtt_device(self, device_id: str) -> FirmwareDevice:
        """An MQTT device's firmware instance and hardware (``present_card``, ``set_obscuration``, ``state``…)."""
        try:
            return self.firmware.devices[device_id]
        except KeyError:
            raise DeviceNotFound(f"no MQTT device {device_id!r}") from None

    def camera(self, device_id: str) -> SimCamera:
        try:
            return self.cameras[device_id]
        except KeyError:
            raise DeviceNotFound(f"no running camera {device_id!r} ({self.camera_status})") from None

    def modbus_endpoint(self, device_id: str) -> tuple[str, int, int]:
        dev = self.device(device_id)
        server = self._port_of[device_id]
        return server.host, server.port, dev.unit

    def port_map(self) -> dict[str, Any]:
        """What a gateway config needs: Modbus endpoints, the broker, the uplink proxy, camera URLs."""
        modbus = {}
        for spec in self.layout.by_protocol("modbus_tcp"):
            host, port, unit = self.modbus_endpoint(spec.id)
            modbus[spec.id] = {"host": host, "port": port, "unit": unit, "bus": spec.bus, "profile": spec.profile,
                               "gateway": spec.gateway}
        return {
            "site": self.layout.site.id,
            "layout": self.layout.source,
            "mqtt": self.mqtt_url,
            "uplink_proxy": self.proxy.url if self.proxy else None,
            "modbus": modbus,
            "cameras": {i: c.url for i, c in self.cameras.items()},
        }

    # ------------------------------------------------------------------ faults
    def silence(self, device_id: str) -> None:
        """The device stops answering (Modbus: no response at all; MQTT: power cut, the broker sends the will)."""
        if device_id in self.modbus:
            self.modbus[device_id].silent = True
        elif device_id in self.firmware.devices:
            self.firmware.devices[device_id].power_off()
        elif device_id in self.replayed:
            self.replayed[device_id].power_off()
        elif device_id in self.cameras:
            self.cameras[device_id].server.pause()
        else:
            raise DeviceNotFound(f"no device {device_id!r}")

    def restore(self, device_id: str) -> None:
        """Undo :meth:`silence` and :meth:`slow`."""
        if device_id in self.modbus:
            self.modbus[device_id].silent = False
            self.modbus[device_id].delay_s = 0.0
        elif device_id in self.firmware.devices:
            dev = self.firmware.devices[device_id]
            if dev.silent:
                self.firmware.call(dev.power_on)
        elif device_id in self.replayed:
            replayed = self.replayed[device_id]
            if replayed.silent:
                replayed.restart()
        elif device_id in self.cameras:
            self.cameras[device_id].server.resume()
        else:
            raise DeviceNotFound(f"no device {device_id!r}")

    def slow(self, device_id: str, delay_ms: float) -> None:
        """Answer every Modbus request ``delay_ms`` late (0 = normal)."""
        self.device(device_id).delay_s = max(0.0, delay_ms) / 1000

    def junk_responses(self, device_id: str, on: bool = True) -> None:
        """Answer every request on the device's port with random bytes."""
        self.device(device_id)
        self._port_of[device_id].bus.junk_responses = on

    async def send_garbage(self, device_id: str, frames: int = 10) -> int:
        host, port, _ = self.modbus_endpoint(device_id)
        return await send_garbage(host, port, self.rng, frames)

    def wan_cut(self) -> None:
        if self.proxy is None:
            raise RuntimeError("no uplink proxy: start the compound with uplink_proxy=True")
        self.proxy.cut()

    def wan_restore(self) -> None:
        if self.proxy is None:
            raise RuntimeError("no uplink proxy: start the compound with uplink_proxy=True")
        self.proxy.restore()

    async def broker_stop(self) -> None:
        if self.broker is None:
            raise RuntimeError("the broker was not started by the simulation (it was given with mqtt=URL)")
        await asyncio.to_thread(self.broker.stop)

    async def broker_start(self) -> None:
        if self.broker is None:
            raise RuntimeError("the broker was not started by the simulation (it was given with mqtt=URL)")
        await asyncio.to_thread(self.broker.start)
