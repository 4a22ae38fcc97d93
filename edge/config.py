"""The gateway's typed configuration (YAML), loaded once at the entry point and passed down.

Errors name the file, the line and the field, the same way profile errors do::

    gateway.yaml:31: devices[2].connection.kind: 'modbus' is not one of modbus_tcp, modbus_rtu, mqtt, camera
    gateway.yaml:40: devices[3].profile: profile 'acme-dc100' speaks mqtt but the connection is modbus_tcp
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from ruamel.yaml.comments import CommentedMap

from contract.base import StrictModel
from contract.messages import Identifier, Location, Name, Scalar
from device_profiles import Catalog, CompiledProfile, Issue, ProfileError, load_catalog
from device_profiles.camera import EbikeInElevatorRule
from device_profiles.linkage import command_problem, device_type_problem, event_types
from device_profiles.loader import line_of, read_yaml, validation_issues
from edge.evidence.config import EvidenceConfig
from edge.uplink import OutboxConfig, UplinkConfig

ProfileRef = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
EventTypeRef = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")]


class ConfigError(ProfileError):
    """One or more problems in a gateway config file; ``str()`` lists them one per line (file:line: field: …)."""


class ModbusTcpConnection(StrictModel):
    kind: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit: int = Field(default=1, ge=0, le=255)


class ModbusRtuConnection(StrictModel):
    kind: Literal["modbus_rtu"]
    port: str = Field(min_length=1, description="serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    unit: int = Field(default=1, ge=1, le=247)


class MqttConnection(StrictModel):
    kind: Literal["mqtt"]
    broker: str | None = Field(default=None, description="local device broker URL; default: the uplink's")


class CameraConnection(StrictModel):
    kind: Literal["camera"]
    source_url: str | None = Field(default=None, description="override the profile's camera source URL")


Connection = Annotated[
    ModbusTcpConnection | ModbusRtuConnection | MqttConnection | CameraConnection, Field(discriminator="kind")
]

PROTOCOL_FOR_KIND = {"modbus_tcp": "modbus_tcp", "modbus_rtu": "modbus_rtu", "mqtt": "mqtt", "camera": "camera"}


class ZoneLocation(StrictModel):
    """Where one zone (loop, instance ``n``) of a device is: a panel's zone 13 is on floor 13, east corridor.
    The building defaults to the device's; the other fields say nothing when absent."""

    building: Name | None = None
    floor: int | None = Field(default=None, description="floor number; negative for basements")
    unit: Name | None = None
    area: Name | None = None

    @model_validator(mode="after")
    def _something(self) -> ZoneLocation:
        if self.building is None and self.floor is None and self.unit is None and self.area is None:
            raise ValueError("a zone needs at least one of building, floor, unit, area")
        return self


class DeviceConfig(StrictModel):
    id: Identifier
    profile: ProfileRef
    name: Name | None = None
    location: Location
    connection: Connection
    poll_interval_s: float | None = Field(default=None, gt=0, le=3600, description="override the profile's")
    offline_after_s: float | None = Field(default=None, gt=0, le=86_400, description="override the profile's")
    watches: Identifier | None = Field(
        default=None, description="cameras: the device this camera looks at (e.g. the elevator whose car it films)"
    )
    zones: dict[int, ZoneLocation] | None = Field(
        default=None,
        description="zone (instance n of the profile's repeated events) → its place; events of that zone carry "
        "it as their location. e.g. {12: {floor: 12}, 13: {floor: 13, area: 东侧走廊}}",
    )

    def zone_locations(self) -> dict[int, Location]:
        """Each mapped zone's full location (site and, unless given, building from the device's)."""
        return {
            n: Location(site=self.location.site, building=z.building or self.location.building, floor=z.floor,
                        unit=z.unit, area=z.area)
            for n, z in (self.zones or {}).items()
        }


class LinkageRule(StrictModel):
    """When trigger events are active in a building (or on a camera's watched device), command targets.

    ``require_signals: 2`` implements GB 50116-2013 §4.1.6: the rule acts only once two *independent* alarm
    signals are active — two different devices, or two different zones of one panel — that were raised
    within ``window_s`` of each other.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    triggers: list[EventTypeRef] = Field(min_length=1, description="event types that count as a signal")
    scope: Literal["building", "watched_device"] = Field(
        default="building",
        description="building: targets in the trigger's building; watched_device: the device a camera watches",
    )
    target_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        description="device_type of the targets (door_access, elevator, …)"
    )
    command: Identifier
    args: dict[str, Scalar] = Field(default_factory=dict)
    base_floor_arg: str | None = Field(
        default=None, description="fill this argument with linkage.base_floor (e.g. 'floor' for fire_recall)"
    )
    restore_command: Identifier | None = Field(
        default=None, description="sent to the same targets once every signal has cleared (e.g. restore)"
    )
    require_signals: int = Field(default=1, ge=1, le=8)
    window_s: float = Field(default=300.0, gt=0)


class LinkageConfig(StrictModel):
    base_floor: int = Field(default=1, ge=-5, le=99, description="the fire-service base floor (消防基站)")
    rules: list[LinkageRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> LinkageConfig:
        names = [r.name for r in self.rules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"linkage rule names must be unique; repeated: {', '.join(dup)}")
        return self


class PollingConfig(StrictModel):
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0, description="cap of the exponential backoff")


class TelemetryConfig(StrictModel):
    max_points_per_batch: int = Field(default=500, ge=1, le=10_000)
    flush_s: float = Field(default=1.0, gt=0, le=60)
    full_report_interval_s: float = Field(default=300.0, gt=0, description="every value, changed or not")
    debounce_s: float = Field(default=0.0, ge=0, description="minimum hold of non-life-safety events")


class GatewayConfig(StrictModel):
    gateway_id: Identifier
    site: Identifier
    name: Name | None = None
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    outbox: OutboxConfig
    profiles_dir: list[Path] | None = Field(default=None, description="your profile folders, added to the shipped ones")
    devices: list[DeviceConfig] = Field(default_factory=list)
    linkage: LinkageConfig = Field(default_factory=LinkageConfig)
    polling: PollingConfig = Field(default_factory=PollingConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    metrics_port: int | None = Field(default=9108, ge=0, le=65535, description="127.0.0.1 /metrics; null = off")
    health_interval_s: float = Field(default=30.0, gt=0)
    command_timeout_s: float | None = Field(default=None, gt=0, description="override every profile's timeout_s")
    snapshot_dir: Path | None = Field(default=None, description="camera evidence; default: next to the outbox")
    evidence: EvidenceConfig | None = Field(
        default=None, description="upload camera evidence to the backend over HTTP; absent = keep it on the gateway"
    )

    @model_validator(mode="after")
    def _consistent(self) -> GatewayConfig:
        ids = [d.id for d in self.devices]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"device ids must be unique; repeated: {', '.join(dup)}")
        for i, d in enumerate(self.devices):
            if d.location.site != self.site:
                raise ValueError(f"devices[{i}] ({d.id}): location.site {d.location.site!r} is not {self.site!r}")
            if d.watches is not None and d.watches not in ids:
                raise ValueError(f"devices[{i}] ({d.id}): watches unknown device {d.watches!r}")
        return self

    def device(self, device_id: str) -> DeviceConfig | None:
        return next((d for d in self.devices if d.id == device_id), None)


_line = line_of


def check_against_catalog(config: GatewayConfig, catalog: Catalog, data: Any = None, file: str = "") -> list[Issue]:
    """Every device's profile exists and speaks its connection's protocol; zone maps name the profile's
    instances; linkage triggers are known event types and its commands exist, with valid arguments, in the
    target type's profiles (the vocabulary of ``device_profiles.linkage``, shared with the backend)."""
    issues: list[Issue] = []
    ids = {d.id: d for d in config.devices}
    for i, d in enumerate(config.devices):
        if d.profile not in catalog:
            issues.append(Issue(file, _line(data, "devices", i, "profile"), f"devices[{i}].profile",
                                f"unknown profile {d.profile!r}; known profiles: {', '.join(catalog.ids())}"))
            continue
        profile = catalog.get(d.profile)
        if profile.protocol != PROTOCOL_FOR_KIND[d.connection.kind]:
            issues.append(Issue(file, _line(data, "devices", i, "connection", "kind"), f"devices[{i}].connection.kind",
                                f"profile {d.profile!r} speaks {profile.protocol} but the connection is "
                                f"{d.connection.kind}"))
        if d.zones:
            have = CompiledProfile(profile).instances
            for n in d.zones:
                if n not in have:
                    span = f"it has {min(have)}..{max(have)}" if have else "it has no repeated events"
                    issues.append(Issue(file, _line(data, "devices", i, "zones", n), f"devices[{i}].zones[{n}]",
                                        f"zone {n} is not an instance of profile {d.profile} ({span})"))
        watched = ids.get(d.watches) if d.watches else None
        if profile.camera is not None and watched is not None and watched.profile in catalog:
            target = catalog.get(watched.profile)
            for cam_rule in profile.camera.rules:
                if not isinstance(cam_rule, EbikeInElevatorRule):
                    continue
                for cmd in cam_rule.linkage:
                    problem = command_problem(target, cmd)
                    if problem is not None:
                        issues.append(Issue(file, _line(data, "devices", i, "watches"), f"devices[{i}].watches",
                                            f"camera rule {cam_rule.name!r} asks for {cmd!r} on {watched.id}: "
                                            f"{problem}"))
    known_events = event_types(catalog)
    for j, rule in enumerate(config.linkage.rules):
        where = ("linkage", "rules", j)
        for t, trigger in enumerate(rule.triggers):
            if trigger not in known_events:
                issues.append(Issue(file, _line(data, *where, "triggers", t), f"linkage.rules[{j}].triggers[{t}]",
                                    f"no profile or gateway part raises {trigger!r}"))
        args = dict(rule.args)
        if rule.base_floor_arg:
            args[rule.base_floor_arg] = config.linkage.base_floor
        actions: list[tuple[str, str | None, dict[str, Scalar]]] = [
            ("command", rule.command, args), ("restore_command", rule.restore_command, {})]
        for field, action, cmd_args in actions:
            if action is None:
                continue
            problem = device_type_problem(catalog, rule.target_type, action)
            if problem is not None:
                issues.append(Issue(file, _line(data, *where, field), f"linkage.rules[{j}].{field}", problem))
                continue
            for i, d in enumerate(config.devices):
                if d.profile not in catalog or catalog.get(d.profile).device_type != rule.target_type:
                    continue
                problem = command_problem(catalog.get(d.profile), action, cmd_args)
                if problem is not None:
                    issues.append(Issue(file, _line(data, *where, field), f"linkage.rules[{j}].{field}",
                                        f"target devices[{i}] ({d.id}): {problem}"))
    return issues


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p)


def load_config(path: Path, catalog: Catalog | None = None) -> tuple[GatewayConfig, Catalog]:
    """Parse, validate and cross-check a gateway config; relative paths are relative to the file."""
    name = str(path)
    data = read_yaml(path, name)
    if not isinstance(data, CommentedMap):
        raise ConfigError([Issue(name, 1, "", "a gateway config must be a YAML mapping")])
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, data, name)) from None
    base = path.resolve().parent
    update: dict[str, Any] = {"outbox": config.outbox.model_copy(update={"path": _resolve(base, config.outbox.path)})}
    if config.profiles_dir is not None:
        update["profiles_dir"] = [_resolve(base, p) for p in config.profiles_dir]
    if config.snapshot_dir is not None:
        update["snapshot_dir"] = _resolve(base, config.snapshot_dir)
    if config.evidence is not None and config.evidence.spool_dir is not None:
        update["evidence"] = config.evidence.model_copy(update={"spool_dir": _resolve(base, config.evidence.spool_dir)})
    tls_files = {k: _resolve(base, v) for k in ("ca_file", "cert_file", "key_file")
                 if (v := getattr(config.uplink, k)) is not None}
    if tls_files:
        update["uplink"] = config.uplink.model_copy(update=tls_files)
    config = config.model_copy(update=update)
    if catalog is None:
        catalog = load_catalog(config.profiles_dir)
    issues = check_against_catalog(config, catalog, data, name)
    if issues:
        raise ConfigError(issues)
    return config, catalog
