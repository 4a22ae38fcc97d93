"""What the console shows instead of ids: the device profiles' own labels (``label: 火警``) for event types,
points and commands, plus the labels of the alarm types the backend itself raises (gateway offline, device
silent) and of the video analytics' event types, which no device profile declares.

Served by ``GET /api/labels``; the browser never shows a type id when a label exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.messages import Scalar, Severity
from device_profiles import Profile
from device_profiles.schema import ArgSpec

# Alarm types that come from the backend or the gateway's video analytics, not from a device profile:
# type → (zh-CN, en).
BUILTIN_EVENT_TYPES: dict[str, tuple[str, str]] = {
    "gateway.offline": ("网关离线", "Gateway offline"),
    "device.offline": ("设备离线", "Device offline"),
    "device.silent": ("设备失联", "Device silent"),
    "fire_lane.blocked": ("消防通道占用", "Fire lane blocked"),
    "fire_lane.cleared": ("消防通道恢复", "Fire lane clear"),
    "elevator.ebike_detected": ("电动车进电梯", "E-bike in lift car"),
    "elevator.ebike_cleared": ("电动车已离开", "E-bike left the car"),
    "intrusion.detected": ("区域入侵", "Intrusion"),
    "intrusion.cleared": ("入侵解除", "Intrusion cleared"),
    "camera.offline": ("摄像机离线", "Camera offline"),
    "camera.online": ("摄像机上线", "Camera online"),
    "linkage.action": ("联动动作", "Linkage action"),
    "device.bad_payload": ("设备报文异常", "Device sent a malformed message"),
    "device.bad_value": ("设备数值无法解析", "Device value does not convert"),
    "device.clock_skew": ("设备时钟偏差", "Device clock off"),
}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class EventLabel(_Out):
    """One event row of a profile."""

    type: str
    key: str = Field(description="the alarm identity of the row: its key, or type / type#{n} for repeated rows")
    label: str | None
    severity: Severity
    life_safety: bool
    detail: dict[str, Scalar] = Field(description="the row's fixed detail (templated values left out)")
    repeated: bool


class PointLabel(_Out):
    name: str = Field(description="repeated points keep their template name (zone{n}.fire); {n} matches digits")
    label: str | None
    unit: str | None
    enum: dict[int | str, str] | None


class CommandLabel(_Out):
    name: str
    label: str | None
    args: dict[str, ArgSpec]


class ProfileLabels(_Out):
    vendor: str
    model: str
    device_type: str
    protocol: str
    events: list[EventLabel]
    points: list[PointLabel]
    commands: list[CommandLabel]


class EventTypeLabel(_Out):
    """One label per event type: the profiles' label (joined when their rows differ) or a built-in one."""

    label: str | None
    en: str | None
    severity: Severity | None
    life_safety: bool
    source: Literal["profile", "builtin"]


class Labels(_Out):
    """``GET /api/labels``."""

    profiles: dict[str, ProfileLabels]
    event_types: dict[str, EventTypeLabel]


def _profile_labels(p: Profile) -> ProfileLabels:
    return ProfileLabels(
        vendor=p.vendor,
        model=p.model,
        device_type=p.device_type,
        protocol=p.protocol,
        events=[
            EventLabel(
                type=e.type,
                key=e.key_for(None) if e.repeat is None else (e.key or f"{e.type}#{{n}}"),
                label=e.label,
                severity=e.severity,
                life_safety=e.life_safety,
                detail={k: v for k, v in e.detail.items() if "{" not in str(v)},
                repeated=e.repeat is not None,
            )
            for e in p.events
        ],
        points=[PointLabel(name=pt.name, label=pt.label, unit=pt.unit, enum=pt.enum) for pt in p.points],
        commands=[CommandLabel(name=c.name, label=c.label, args=dict(c.args)) for c in p.commands],
    )


def labels(profiles: Iterable[Profile]) -> Labels:
    """Per profile: events, points and commands with their labels; per event type: one label."""
    by_profile: dict[str, ProfileLabels] = {}
    first: dict[str, tuple[Severity, bool]] = {}
    texts: dict[str, list[str]] = {}
    for p in sorted(profiles, key=lambda p: p.id):
        by_profile[p.id] = _profile_labels(p)
        for e in p.events:
            first.setdefault(e.type, (e.severity, e.life_safety))
            seen = texts.setdefault(e.type, [])
            if e.label and e.label not in seen:
                seen.append(e.label)
    # One label per type: the profiles' label, or theirs joined (平层关人 / 非平层关人) when rows differ.
    types = {
        t: EventTypeLabel(label=" / ".join(texts[t]) or None, en=None, severity=severity, life_safety=life_safety,
                          source="profile")
        for t, (severity, life_safety) in first.items()
    }
    for t, (zh, en) in BUILTIN_EVENT_TYPES.items():
        types.setdefault(t, EventTypeLabel(label=zh, en=en, severity=None, life_safety=False, source="builtin"))
    return Labels(profiles=by_profile, event_types=types)
