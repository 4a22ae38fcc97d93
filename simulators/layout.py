"""The compound layout: site → buildings → floors (→ units), devices by profile and address, gateways.

A layout file is YAML validated by pydantic; every problem is reported as ``file:line: field: message``
(the same :class:`~device_profiles.loader.ProfileError` the profile loader raises). A device entry may
stand for one device per floor (``per_floor``), with ``{floor}``/``{building}`` in its id, so a whole
compound stays short. Modbus devices either get their own TCP port (``modbus: {unit: 1}``) or sit on a
named bus — several unit ids behind one Modbus TCP gateway port (``modbus: {bus: b1-lift-bus, unit: 2}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError, model_validator
from ruamel.yaml.comments import CommentedMap

from contract.base import StrictModel
from contract.messages import Scalar
from device_profiles.loader import Catalog, Issue, ProfileError, line_of, read_yaml, validation_issues
from device_profiles.schema import Profile
from simulators.replay_devices import ReplaySpec, resolve

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# a template: an id that may contain {floor} / {building} before expansion
IdTemplate = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9{][A-Za-z0-9_.{}-]{0,80}$")]
Id = Annotated[str, StringConstraints(pattern=ID_RE.pattern)]
ParamValue = Scalar | list[str]


class LayoutError(ProfileError):
    """Problems with a layout file, one ``file:line: field: message`` per line."""


class FloorRange(StrictModel):
    first: int = 1
    last: int | None = Field(default=None, description="default: the building's top floor")


class ModbusAddress(StrictModel):
    unit: int = Field(default=1, ge=1, le=247, description="unit id (slave id)")
    bus: IdTemplate | None = Field(default=None, description="a bus (shared port); {building} is filled in")
    port: int | None = Field(default=None, ge=0, le=65535, description="fixed port (own-port devices only)")


class CameraSource(StrictModel):
    """What the camera simulator plays; the camera package (simulators.camera) serves it."""

    kind: Literal["mjpeg"] = "mjpeg"
    scene: Literal["fire_lane", "elevator"] = "fire_lane"
    fps: float = Field(default=5.0, gt=0, le=30)


class DeviceEntry(StrictModel):
    id: IdTemplate
    profile: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    building: Id | None = Field(default=None, description="site-level devices: the building it is in")
    floor: int | None = None
    unit: str | None = Field(default=None, description="dwelling unit, e.g. '1-0302'")
    location: str | None = Field(default=None, description="free text: 'F12 corridor east', 'entrance'")
    per_floor: FloorRange | None = Field(default=None, description="one device per floor; {floor} in the id")
    modbus: ModbusAddress | None = None
    source: CameraSource | None = None
    gateway: Id | None = Field(default=None, description="default: the building's gateway")
    params: dict[str, ParamValue] = Field(default_factory=dict, description="simulation parameters")
    replay: ReplaySpec | None = Field(
        default=None, description="play samples (default: the profile's examples) instead of a device simulator"
    )

    @model_validator(mode="after")
    def _check(self) -> DeviceEntry:
        if self.per_floor is not None and "{floor}" not in self.id:
            raise ValueError("a per_floor device's id must contain {floor}")
        if self.per_floor is not None and self.floor is not None:
            raise ValueError("use either floor or per_floor, not both")
        if self.modbus is not None and self.modbus.bus is not None and self.modbus.port is not None:
            raise ValueError("a device on a bus takes the bus's port; drop port")
        return self


class Bus(StrictModel):
    """Several unit ids behind one Modbus TCP gateway port."""

    id: IdTemplate = Field(description="{building} is filled in for a building's bus")
    port: int | None = Field(default=None, ge=0, le=65535, description="fixed port; default from port_base")


class Building(StrictModel):
    id: Id
    name: str | None = None
    floors: int = Field(ge=1, le=200)
    basement_floors: int = Field(default=0, ge=0, le=10)
    units_per_floor: int = Field(default=0, ge=0, le=64)
    gateway: Id | None = None
    buses: list[Bus] = Field(default_factory=list)
    devices: list[DeviceEntry] = Field(default_factory=list)


class Gateway(StrictModel):
    id: Id
    name: str | None = None
    building: Id | None = None


class ModbusSettings(StrictModel):
    host: str = "127.0.0.1"
    port_base: int = Field(default=0, ge=0, le=65000, description="0 = pick free ports and report them")


class Site(StrictModel):
    id: Id
    name: str | None = None


class LayoutFile(StrictModel):
    site: Site
    modbus: ModbusSettings = ModbusSettings()
    gateways: list[Gateway] = Field(default_factory=list)
    buses: list[Bus] = Field(default_factory=list, description="site-level buses")
    devices: list[DeviceEntry] = Field(default_factory=list, description="site-level devices (fire-lane cameras)")
    buildings: list[Building] = Field(default_factory=list)


# ---------------------------------------------------------------------- the expanded layout


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One concrete device of the compound."""

    id: str
    profile: str
    protocol: str
    building: str | None
    floor: int | None
    unit: str | None
    location: str | None
    gateway: str | None
    modbus_unit: int | None = None
    bus: str | None = None
    port: int | None = None
    source: CameraSource | None = None
    params: dict[str, ParamValue] = field(default_factory=dict)
    replay: ReplaySpec | None = None


@dataclass(frozen=True, slots=True)
class BusSpec:
    id: str
    port: int | None
    units: dict[int, str]


@dataclass
class Layout:
    """The expanded compound: devices in file order, buses, gateways and what each serves."""

    site: Site
    modbus: ModbusSettings
    buildings: list[Building]
    devices: list[DeviceSpec]
    buses: dict[str, BusSpec]
    gateways: dict[str, Gateway]
    source: str = "<layout>"
    id_prefix: str = ""

    def device(self, device_id: str) -> DeviceSpec:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(f"no device {device_id!r} in {self.source}")

    def served_by(self, gateway_id: str) -> list[DeviceSpec]:
        return [d for d in self.devices if d.gateway == gateway_id]

    def by_protocol(self, *protocols: str) -> list[DeviceSpec]:
        return [d for d in self.devices if d.protocol in protocols]

    def with_id_prefix(self, prefix: str) -> Layout:
        """The same compound with every device, bus and gateway id prefixed (tests: ``f"{site_id}-"``), so
        MQTT topics (``xqdev/{device_id}/…``) of parallel runs never mix."""

        def p(x: str | None) -> str | None:
            return None if x is None else prefix + x

        devices = []
        for d in self.devices:
            new_id = prefix + d.id
            if not ID_RE.match(new_id):
                raise ValueError(f"{new_id!r} is not a valid device id")
            devices.append(DeviceSpec(
                id=new_id, profile=d.profile, protocol=d.protocol, building=d.building, floor=d.floor, unit=d.unit,
                location=d.location, gateway=p(d.gateway), modbus_unit=d.modbus_unit, bus=p(d.bus), port=d.port,
                source=d.source, params=d.params, replay=d.replay,
            ))
        buses = {prefix + k: BusSpec(prefix + b.id, b.port, {u: prefix + i for u, i in b.units.items()})
                 for k, b in self.buses.items()}
        gateways = {prefix + k: g.model_copy(update={"id": prefix + g.id}) for k, g in self.gateways.items()}
        return Layout(self.site, self.modbus, self.buildings, devices, buses, gateways, self.source,
                      self.id_prefix + prefix)


def replayed_by_default(profile: Profile) -> bool:
    """A device type with no simulator here (no firmware for an MQTT type, no behaviour for a Modbus one
    that has register examples) replays its profile's examples."""
    from simulators.modbus import BEHAVIOURS
    from simulators.mqtt_devices import FIRMWARE_BY_TYPE

    if profile.protocol == "mqtt":
        return profile.device_type not in FIRMWARE_BY_TYPE
    if profile.protocol.startswith("modbus"):
        has_blocks = any(e.registers is not None for e in profile.examples)
        return profile.device_type not in BEHAVIOURS and has_blocks
    return False


def _fill(value: ParamValue, building: Building | None, floor: int | None) -> ParamValue:
    if isinstance(value, str):
        return value.replace("{building}", building.id if building else "").replace("{floor}", str(floor))
    return value


def _locate(data: Any, loc: list[str | int]) -> int | None:
    return line_of(data, *loc)


def _path(loc: list[str | int]) -> str:
    out = ""
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out


def load_layout(path: Path, catalog: Catalog, display: str | None = None) -> Layout:
    """Read, validate and expand a layout file; raise :class:`LayoutError` listing every problem."""
    name = display or str(path)
    try:
        data = read_yaml(path, name)
    except ProfileError as exc:
        raise LayoutError(exc.issues) from None
    if not isinstance(data, CommentedMap):
        raise LayoutError([Issue(name, 1, "", "a layout must be a YAML mapping")])
    for key in [k for k in data if isinstance(k, str) and k.startswith("x-")]:
        del data[key]  # extension fields: anchors for repeated blocks (as in docker-compose)
    try:
        model = LayoutFile.model_validate(data)
    except ValidationError as exc:
        raise LayoutError(validation_issues(exc, data, name)) from None
    return expand(model, catalog, data, name)


def parse_layout(model: LayoutFile, catalog: Catalog, source: str = "<layout>") -> Layout:
    """Expand an already validated layout model (built in code, e.g. by a test)."""
    return expand(model, catalog, None, source)


def expand(model: LayoutFile, catalog: Catalog, data: Any, name: str) -> Layout:
    issues: list[Issue] = []

    def issue(loc: list[str | int], message: str) -> None:
        issues.append(Issue(name, _locate(data, loc) if data is not None else None, _path(loc), message))

    gateways: dict[str, Gateway] = {}
    for i, g in enumerate(model.gateways):
        if g.id in gateways:
            issue(["gateways", i, "id"], f"gateway id {g.id!r} is used twice")
        gateways[g.id] = g
    for b in model.buildings:
        if b.gateway is not None and b.gateway not in gateways:
            gateways[b.gateway] = Gateway(id=b.gateway, building=b.id)
    building_ids = [b.id for b in model.buildings]
    for bi, b in enumerate(model.buildings):
        if building_ids.count(b.id) > 1 and building_ids.index(b.id) != bi:
            issue(["buildings", bi, "id"], f"building id {b.id!r} is used twice")
    for i, g in enumerate(model.gateways):
        if g.building is not None and g.building not in building_ids:
            issue(["gateways", i, "building"], f"unknown building {g.building!r}")

    buses: dict[str, BusSpec] = {}

    def add_buses(bus_list: list[Bus], loc: list[str | int], building: Building | None) -> None:
        for i, bus in enumerate(bus_list):
            bus_id = bus.id.replace("{building}", building.id if building else "")
            if not ID_RE.match(bus_id):
                issue([*loc, i, "id"], f"{bus_id!r} is not a valid bus id")
            if bus_id in buses:
                issue([*loc, i, "id"], f"bus id {bus_id!r} is used twice")
            buses[bus_id] = BusSpec(bus_id, bus.port, {})

    add_buses(model.buses, ["buses"], None)
    for bi, b in enumerate(model.buildings):
        add_buses(b.buses, ["buildings", bi, "buses"], b)

    devices: list[DeviceSpec] = []
    seen: dict[str, str] = {}

    declared = {b.id: b for b in model.buildings}

    def add(entry: DeviceEntry, loc: list[str | int], building: Building | None) -> None:
        if entry.profile not in catalog:
            issue([*loc, "profile"], f"unknown profile {entry.profile!r}; known: {', '.join(catalog.ids())}")
            return
        building_id = building.id if building else None
        if entry.building is not None:
            if building is not None and entry.building != building.id:
                issue([*loc, "building"], f"the device is listed in building {building.id!r}")
                return
            building = declared.get(entry.building, building)  # an undeclared one is a label on the device
            building_id = entry.building
        profile = catalog.get(entry.profile)
        is_modbus = profile.protocol.startswith("modbus")
        if is_modbus and profile.protocol != "modbus_tcp":
            issue([*loc, "profile"], f"{profile.protocol} devices are not simulated (Modbus TCP only)")
            return
        replay = entry.replay if entry.replay is not None else (ReplaySpec() if replayed_by_default(profile) else None)
        if replay is not None:
            try:
                resolve(profile, replay)
            except ValueError as exc:
                issue([*loc, "replay"] if entry.replay is not None else [*loc, "profile"], str(exc))
                return
        if profile.protocol == "camera" and entry.source is None:
            issue([*loc], "a camera needs a source (which scene the camera simulator plays)")
        if profile.protocol != "camera" and entry.source is not None:
            issue([*loc, "source"], "only cameras have a source")
        if not is_modbus and entry.modbus is not None:
            issue([*loc, "modbus"], f"profile {entry.profile} speaks {profile.protocol}, not Modbus")
        gateway = entry.gateway or (building.gateway if building else None)
        if gateway is not None and gateway not in gateways:
            issue([*loc, "gateway"], f"unknown gateway {gateway!r}")
        if entry.per_floor is not None:
            if building is None:
                issue([*loc, "per_floor"], "per_floor needs a building")
                return
            last = entry.per_floor.last if entry.per_floor.last is not None else building.floors
            floors: list[int | None] = list(range(entry.per_floor.first, last + 1))
        else:
            floors = [entry.floor]
        for floor in floors:
            dev_id = entry.id.replace("{floor}", str(floor)).replace("{building}", building_id or "")
            if not ID_RE.match(dev_id):
                issue([*loc, "id"], f"{dev_id!r} is not a valid device id (letters, digits, '_', '-', '.'; ≤ 64)")
                continue
            if dev_id in seen:
                issue([*loc, "id"], f"device id {dev_id!r} is already used ({seen[dev_id]})")
                continue
            seen[dev_id] = _path(loc)
            unit_id = bus_id = port = None
            if is_modbus:
                addr = entry.modbus or ModbusAddress()
                unit_id, port = addr.unit, addr.port
                bus_id = addr.bus.replace("{building}", building.id if building else "") if addr.bus else None
                if bus_id is not None:
                    if bus_id not in buses:
                        issue([*loc, "modbus", "bus"], f"unknown bus {bus_id!r}")
                    elif unit_id in buses[bus_id].units:
                        issue([*loc, "modbus", "unit"],
                              f"unit {unit_id} on bus {bus_id} is already {buses[bus_id].units[unit_id]}")
                    else:
                        buses[bus_id].units[unit_id] = dev_id
            devices.append(DeviceSpec(
                id=dev_id, profile=entry.profile, protocol=profile.protocol,
                building=building_id, floor=floor, unit=entry.unit,
                location=entry.location.replace("{floor}", str(floor)) if entry.location else None,
                gateway=gateway, modbus_unit=unit_id, bus=bus_id, port=port, source=entry.source,
                params={k: _fill(v, building, floor) for k, v in entry.params.items()}, replay=replay,
            ))

    for i, entry in enumerate(model.devices):
        add(entry, ["devices", i], None)
    for bi, b in enumerate(model.buildings):
        for di, entry in enumerate(b.devices):
            add(entry, ["buildings", bi, "devices", di], b)
    fixed = [d.port for d in devices if d.port] + [b.port for b in buses.values() if b.port]
    dupes = sorted({p for p in fixed if fixed.count(p) > 1})
    if dupes:
        issue([], f"fixed ports used twice: {', '.join(map(str, dupes))}")
    if issues:
        raise LayoutError(issues)
    return Layout(model.site, model.modbus, list(model.buildings), devices, buses, gateways, name)
