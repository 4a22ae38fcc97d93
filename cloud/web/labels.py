"""What the console shows instead of ids: the device profiles' own labels (``label: 火警``) for event types,
points and commands, plus the labels of the alarm types the backend itself raises (gateway offline, device
silent) and of the video analytics' event types, which no device profile declares.

Served by ``GET /api/labels``; the browser never shows a type id when a label exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from device_profiles import Profile

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


def _profile_labels(p: Profile) -> dict[str, Any]:
    return {
        "vendor": p.vendor,
        "model": p.model,
        "device_type": p.device_type,
        "protocol": p.protocol,
        "events": [
            {
                "type": e.type,
                # The alarm identity of the row: its ``key:`` or type / type#{n} (the template for repeated rows).
                "key": e.key_for(None) if e.repeat is None else (e.key or f"{e.type}#{{n}}"),
                "label": e.label,
                "severity": e.severity,
                "life_safety": e.life_safety,
                "detail": {k: v for k, v in e.detail.items() if "{" not in str(v)},
                "repeated": e.repeat is not None,
            }
            for e in p.events
        ],
        # Repeated points keep their template name (``zone{n}.fire``); the browser matches ``{n}`` to digits.
        "points": [{"name": pt.name, "label": pt.label, "unit": pt.unit, "enum": pt.enum} for pt in p.points],
        "commands": [
            {"name": c.name, "label": c.label, "args": {k: a.model_dump(exclude_none=True) for k, a in c.args.items()}}
            for c in p.commands
        ],
    }


def labels(profiles: Iterable[Profile]) -> dict[str, Any]:
    """Per profile: events, points and commands with their labels; per event type: one label."""
    by_profile: dict[str, Any] = {}
    types: dict[str, dict[str, Any]] = {}
    for p in sorted(profiles, key=lambda p: p.id):
        by_profile[p.id] = _profile_labels(p)
        for e in p.events:
            entry = types.setdefault(
                e.type, {"labels": [], "severity": e.severity, "life_safety": e.life_safety, "source": "profile"}
            )
            if e.label and e.label not in entry["labels"]:
                entry["labels"].append(e.label)
    for t, entry in types.items():
        # One label per type: the profiles' label, or theirs joined (平层关人 / 非平层关人) when rows differ.
        entry["label"] = " / ".join(entry["labels"]) if entry["labels"] else None
        entry["en"] = None
        del entry["labels"]
        types[t] = entry
    for t, (zh, en) in BUILTIN_EVENT_TYPES.items():
        types.setdefault(t, {"label": zh, "en": en, "severity": None, "life_safety": False, "source": "builtin"})
    return {"profiles": by_profile, "event_types": types}
