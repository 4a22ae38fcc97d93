"""MQTT devices of the compound: the reference firmware (``firmware_stubs``) running under CPython.

Each device is its own firmware instance — a fresh module object loaded from
``firmware_stubs/<kind>/main.py`` (its own globals = its own RAM) with its own :class:`machine.Board`.
The firmware is cooperative (``setup(cfg)`` then ``step()``), so one driver thread steps every device in
turn every ``step_s`` seconds, selecting the device's board around each call; no thread per device.
The simulation acts on the hardware (a card on the reader UART, the door contact, the smoke chamber's
ADC), never on the firmware's variables, so what goes on the wire is what the firmware decided.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from firmware_stubs import shim

logger = logging.getLogger(__name__)

FIRMWARE_BY_TYPE: dict[str, str] = {"door_access": "door_controller", "smoke_detector": "smoke_detector"}
"""Which firmware runs a profile's ``device_type`` (an explicit registry)."""

# Pins and ADC channels, as wired in the firmware
DOOR_PIN_CONTACT, DOOR_PIN_TAMPER, DOOR_PIN_RELAY, DOOR_READER_UART = 4, 14, 5, 1
SMOKE_ADC_CHAMBER, SMOKE_ADC_BATTERY, SMOKE_PIN_TEST, SMOKE_PIN_TAMPER, SMOKE_PIN_FAULT = 32, 33, 0, 14, 15
SMOKE_PIN_SOUNDER = 2


def _machine() -> Any:
    """The shim's ``machine`` module (the firmware imports it by that name)."""
    shim.install()
    return importlib.import_module("machine")


def obscuration_raw(pct_per_m: float) -> int:
    return round(max(0.0, min(20.0, pct_per_m)) * 65535 / 20)


def battery_raw(pct: float) -> int:
    return round(max(0.0, min(100.0, pct)) * 65535 / 100)


class FirmwareDevice:
    """One MQTT device: its board and its firmware instance."""

    def __init__(self, device_id: str, device_type: str, cfg: dict[str, Any], *, uid: bytes | None = None) -> None:
        if device_type not in FIRMWARE_BY_TYPE:
            raise ValueError(f"no firmware for device type {device_type!r}")
        self.id = device_id
        self.device_type = device_type
        self.kind = FIRMWARE_BY_TYPE[device_type]
        self.cfg = dict(cfg, device_id=device_id)
        self.machine = _machine()
        self.board = self.machine.Board(uid or device_id.encode()[:6].ljust(6, b"\0"))
        if self.kind == "smoke_detector":
            self.board.set_adc(SMOKE_ADC_CHAMBER, obscuration_raw(0.2))
            self.board.set_adc(SMOKE_ADC_BATTERY, battery_raw(float(cfg.get("battery", 95))))
        self.fw: ModuleType = shim.load(self.kind, device_id)
        self.silent = False
        self.started = False
        self.errors = 0
        self._lock = threading.Lock()

    # -------------------------------------------------------------- firmware lifecycle (driver thread)
    def setup(self) -> None:
        with self._lock:
            self.machine.select_board(self.board)
            self.fw.setup(self.cfg)
            self.started = True

    def step(self) -> None:
        if self.silent or not self.started:
            return
        with self._lock:
            self.machine.select_board(self.board)
            try:
                self.fw.step()
            except self.machine.ResetRequested:
                logger.info("%s: firmware reset", self.id)
                self.fw.setup(self.cfg)

    def power_off(self) -> None:
        """Cut power: the TCP connection drops without DISCONNECT, so the broker publishes the last will."""
        with self._lock:
            self.silent = True
            client = self.fw.S.get("client")
            if client is not None:
                client.abort()
            self.fw.S["client"] = None

    def power_on(self) -> None:
        """Boot again from ``setup()`` (RAM is lost, as after a real power cycle)."""
        with self._lock:
            self.machine.select_board(self.board)
            self.fw.setup(self.cfg)
            self.silent = False

    def shutdown(self) -> None:
        with self._lock:
            client = self.fw.S.get("client") if self.started else None
            if client is not None:
                client.disconnect()
            self.started = False

    # -------------------------------------------------------------- what the simulation does to the hardware
    @property
    def state(self) -> dict[str, Any]:
        """The firmware's own view (its ``state()``), e.g. ``{"locked": True, "mode": "normal", …}``."""
        with self._lock:
            self.machine.select_board(self.board)
            result: dict[str, Any] = self.fw.state()
            return result

    @property
    def connected(self) -> bool:
        return self.started and self.fw.S.get("client") is not None

    def present_card(self, card: str) -> None:
        self.board.feed_uart(DOOR_READER_UART, card.encode() + b"\n")

    def set_door_open(self, is_open: bool) -> None:
        self.board.set_pin(DOOR_PIN_CONTACT, 1 if is_open else 0)

    def set_tamper(self, on: bool) -> None:
        self.board.set_pin(DOOR_PIN_TAMPER if self.kind == "door_controller" else SMOKE_PIN_TAMPER, 1 if on else 0)

    def set_obscuration(self, pct_per_m: float) -> None:
        self.board.set_adc(SMOKE_ADC_CHAMBER, obscuration_raw(pct_per_m))

    def set_battery(self, pct: float) -> None:
        self.board.set_adc(SMOKE_ADC_BATTERY, battery_raw(pct))

    def battery(self) -> float:
        return float(self.board.adc.get(SMOKE_ADC_BATTERY, 0)) * 100 / 65535

    def press_test(self, pressed: bool) -> None:
        self.board.set_pin(SMOKE_PIN_TEST, 1 if pressed else 0)

    def set_fault(self, on: bool) -> None:
        self.board.set_pin(SMOKE_PIN_FAULT, 1 if on else 0)

    @property
    def unlocked(self) -> bool:
        return bool(self.board.pin_value(DOOR_PIN_RELAY) == 1)

    @property
    def sounding(self) -> bool:
        return bool(self.board.pin_value(SMOKE_PIN_SOUNDER) == 1)


class FirmwareHost:
    """Steps every firmware instance from one driver thread."""

    def __init__(self, step_s: float = 0.05) -> None:
        self.step_s = step_s
        self.devices: dict[str, FirmwareDevice] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._calls: list[Callable[[], None]] = []
        self._calls_lock = threading.Lock()
        self.loops = 0

    def add(self, device: FirmwareDevice) -> None:
        self.devices[device.id] = device

    def start(self) -> None:
        for dev in self.devices.values():
            dev.setup()
        self._thread = threading.Thread(target=self._run, name="firmware-host", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the driver thread between steps."""
        with self._calls_lock:
            self._calls.append(fn)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            with self._calls_lock:
                calls, self._calls = self._calls, []
            for fn in calls:
                fn()
            for dev in list(self.devices.values()):
                try:
                    dev.step()
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    # a firmware bug must not take the other devices down: log it, keep stepping
                    dev.errors += 1
                    if dev.errors <= 3:
                        logger.warning("%s: firmware step failed: %s", dev.id, exc)
            self.loops += 1
            self._stop.wait(max(0.0, self.step_s - (time.monotonic() - t0)))

    def wait_connected(self, timeout: float = 10.0) -> list[str]:
        """Device ids still not connected after ``timeout`` seconds (empty when all are)."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [d.id for d in self.devices.values() if not d.silent and not d.connected]
            if not missing or time.monotonic() > deadline:
                return missing
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for dev in self.devices.values():
            try:
                dev.shutdown()
            except OSError as exc:
                logger.debug("%s: disconnect failed: %s", dev.id, exc)
