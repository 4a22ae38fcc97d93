"""The simulated compound: layout, Modbus servers generated from profiles, MQTT devices running the
reference firmware, camera sources, scenario timelines, fault injection and the run report.

The API other tests use::

    from simulators import SimulatedCompound, ModbusDeviceServer, load_layout
"""

from simulators.compound import SimulatedCompound
from simulators.layout import Layout, LayoutError, load_layout
from simulators.modbus import ModbusDevice, ModbusDeviceServer
from simulators.scenario import Scenario, ScenarioError, load_scenario

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
