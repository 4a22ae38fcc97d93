"""The simulated compound: layout, Modbus servers generated from profiles, MQTT devices running the
reference firmware, camera sources, scenario timelines, fault injection and the run report.

The API other tests use::

    from simulators import SimulatedCompound, ModbusDeviceServer, load_layout

The names are imported on first use, so importing ``simulators.cli`` (which the ``xiaoqu`` command does
on every install) does not load pymodbus and paho.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulators.compound import SimulatedCompound
    from simulators.layout import Layout, LayoutError, load_layout
    from simulators.modbus import ModbusDevice, ModbusDeviceServer
    from simulators.scenario import Scenario, ScenarioError, load_scenario

_HOME = {
    "SimulatedCompound": "simulators.compound",
    "Layout": "simulators.layout",
    "LayoutError": "simulators.layout",
    "load_layout": "simulators.layout",
    "ModbusDevice": "simulators.modbus",
    "ModbusDeviceServer": "simulators.modbus",
    "Scenario": "simulators.scenario",
    "ScenarioError": "simulators.scenario",
    "load_scenario": "simulators.scenario",
}

__all__ = [
    "Layout",
    "LayoutError",
    "ModbusDevice",
    "ModbusDeviceServer",
    "Scenario",
    "ScenarioError",
    "SimulatedCompound",
    "load_layout",
    "load_scenario",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'simulators' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
