"""CPython stand-ins for the MicroPython modules the firmware imports.

``install()`` puts this folder on ``sys.path`` so the firmware's own imports resolve here:
``umqtt.simple`` (over paho-mqtt 2.x), ``machine`` (pins, ADC, UART, RTC the simulator drives through a
:class:`machine.Board`), ``utime``, ``ujson``, ``ubinascii``, ``uhashlib``. Nothing here is imported by the
firmware under MicroPython, where the real modules exist.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SHIM_DIR = Path(__file__).resolve().parent


LIB_DIR = SHIM_DIR.parent / "lib"


def install() -> None:
    """Make ``import machine`` / ``from umqtt.simple import MQTTClient`` resolve to the shim, and the
    firmware's shared library (``import xqlink``, stateless) to ``firmware_stubs/lib``: on a device it is a
    second file in flash next to ``main.py``."""
    for path in (str(SHIM_DIR), str(LIB_DIR)):
        if path not in sys.path:
            sys.path.append(path)


FIRMWARE_DIR = SHIM_DIR.parent
FIRMWARES = ("door_controller", "smoke_detector")


def load(kind: str, instance: str) -> ModuleType:
    """A fresh module object running ``firmware_stubs/<kind>/main.py``: one per simulated device, so each
    device has its own module globals (its own firmware RAM). Not registered in ``sys.modules``."""
    if kind not in FIRMWARES:
        raise ValueError(f"unknown firmware {kind!r}; known: {', '.join(FIRMWARES)}")
    install()
    path = FIRMWARE_DIR / kind / "main.py"
    spec = importlib.util.spec_from_file_location(f"xq_firmware.{kind}.{instance}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with the package
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
