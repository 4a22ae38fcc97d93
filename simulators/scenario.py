"""Scenario timelines: YAML files of steps at scenario times, validated like layouts (file:line: field).

::

    name: fire drill
    steps:
      - {at: 5, action: smoke, device: b3-f12-sd1, alarm: true}
      - {at: 12.5, action: set, device: b3-fp, point: zone12.fire, value: true}

Device ids in a scenario are the layout's ids; a compound whose ids were prefixed (tests) maps them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator
from ruamel.yaml.comments import CommentedMap

from contract.base import StrictModel
from device_profiles.loader import Issue, ProfileError, read_yaml, validation_issues
from simulators.layout import Id

Value = bool | int | float | str


class ScenarioError(ProfileError):
    """Problems with a scenario file, one ``file:line: field: message`` per line."""


class _Step(StrictModel):
    at: float = Field(ge=0, description="scenario seconds from the start")
    note: str | None = None


class SetPoint(_Step):
    """Set Modbus points by profile name: ``point`` + ``value``, or ``values: {point: value}``."""

    action: Literal["set"]
    device: Id
    point: str | None = None
    value: Value | None = None
    values: dict[str, Value] | None = None

    @model_validator(mode="after")
    def _one(self) -> SetPoint:
        if (self.point is None) == (self.values is None):
            raise ValueError("give either point + value or values")
        if self.point is not None and self.value is None:
            raise ValueError("point needs a value")
        return self

    def as_dict(self) -> dict[str, Value]:
        if self.values is not None:
            return dict(self.values)
        assert self.point is not None and self.value is not None
        return {self.point: self.value}


class Smoke(_Step):
    """Raise (``alarm: true``) or clear a smoke detector's alarm by filling/clearing its chamber."""

    action: Literal["smoke"]
    device: Id
    alarm: bool = True
    obscuration: float | None = Field(default=None, ge=0, le=20, description="%/m; default 6.0 raise, 0.2 clear")


class Door(_Step):
    """A door event at a door controller: a card presented (granted/denied) or the door forced open."""

    action: Literal["door"]
    device: Id
    event: Literal["access_granted", "access_denied", "forced_open", "door_closed", "tamper"]
    card: str | None = Field(default=None, description="default: an authorised (granted) or unknown (denied) card")
    open_s: float = Field(default=5.0, ge=0, description="forced_open: the door stays open this long")


class Silent(_Step):
    """The device stops answering (Modbus: no response; MQTT: power cut → last will) / answers again."""

    action: Literal["silent", "restore"]
    device: Id


class Slow(_Step):
    action: Literal["slow"]
    device: Id
    delay_ms: float = Field(ge=0, le=60_000)


class GarbageModbus(_Step):
    """Junk at a Modbus port: ``frames`` raw junk frames from a TCP client, and/or the server answering
    junk for ``junk_responses_s`` scenario seconds."""

    action: Literal["garbage_modbus"]
    device: Id
    frames: int = Field(default=10, ge=0, le=10_000)
    junk_responses_s: float = Field(default=0.0, ge=0)


class MalformedMqtt(_Step):
    """Publish junk payloads on a device topic (``{prefix}/<topic>``)."""

    action: Literal["malformed_mqtt"]
    device: Id
    topic: str = Field(default="state", description="suffix after xqdev/{device_id}/")
    count: int = Field(default=8, ge=1, le=1000)


class Wan(_Step):
    """Cut or restore the uplink proxy between gateway and uplink broker."""

    action: Literal["wan"]
    state: Literal["cut", "restore"]


class Broker(_Step):
    """Stop, start or restart the broker the simulation started."""

    action: Literal["broker"]
    op: Literal["stop", "start", "restart"]


class Camera(_Step):
    """Tell a camera source which scene to play (fire_lane_blocked, fire_lane_clear, ebike, …)."""

    action: Literal["camera"]
    device: Id
    scene: str


class Mark(_Step):
    """A marker in the report (phase boundaries)."""

    action: Literal["mark"]
    message: str


Step = Annotated[
    SetPoint | Smoke | Door | Silent | Slow | GarbageModbus | MalformedMqtt | Wan | Broker | Camera | Mark,
    Field(discriminator="action"),
]


class Scenario(StrictModel):
    name: str
    description: str | None = None
    duration: float | None = Field(default=None, gt=0, description="seconds; default: last step + 5")
    steps: list[Step] = Field(default_factory=list)

    @property
    def end(self) -> float:
        last = max((s.at for s in self.steps), default=0.0)
        return self.duration if self.duration is not None else last + 5.0

    def ordered(self) -> list[Step]:
        """Steps by time; steps at the same time keep their file order."""
        return sorted(self.steps, key=lambda s: s.at)


def load_scenario(path: Path, display: str | None = None) -> Scenario:
    name = display or str(path)
    try:
        data = read_yaml(path, name)
    except ProfileError as exc:
        raise ScenarioError(exc.issues) from None
    if not isinstance(data, CommentedMap):
        raise ScenarioError([Issue(name, 1, "", "a scenario must be a YAML mapping")])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(validation_issues(exc, data, name)) from None
