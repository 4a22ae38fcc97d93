"""One linkage policy, used alike by the gateway's local linkage and the backend's correlation.

**Signal.** A signal is one active alarm condition at one device: the pair (device, event key). Two zones
of one fire panel are two signals (``fire.alarm#12``, ``fire.alarm#13``), two smoke detectors are two,
one zone raised twice is one. GB 50116-2013 §4.1.6 asks for two independent alarm signals ("与" logic)
before automatic linkage; :func:`confirming_signals` says which signals confirm one another: at least
``require`` of them raised within ``window_s`` of each other.

**Vocabulary.** Linkage names profile commands (what a device can do) and event types (what can trigger
it); :func:`command_problem` and :func:`event_types` check both against the profiles at load time, on the
gateway (``edge/config.py``) and in the backend (``cloud/alarms/rules.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from contract.messages import Scalar
from device_profiles.camera import RULE_EVENTS
from device_profiles.commands import CommandError, validate_args
from device_profiles.loader import Catalog
from device_profiles.schema import Profile

GATEWAY_EVENTS = ("device.offline", "device.bad_payload", "linkage.action")
"""Event types the gateway raises by itself, whatever the profiles say."""


@dataclass(frozen=True, order=True, slots=True)
class Signal:
    """One independent alarm signal: an event key at a device."""

    device: str
    key: str

    def __str__(self) -> str:
        return f"{self.device}/{self.key}"


def signal_of(device: str, key: str) -> Signal:
    return Signal(device, key)


def confirming_signals(raised_at: Mapping[Signal, float], require: int, window_s: float) -> list[Signal]:
    """The signals that belong to a run of at least ``require`` signals raised within ``window_s`` of each
    other (times in seconds, any clock); ``[]`` when there is none, i.e. linkage is not confirmed."""
    if require < 1:
        raise ValueError("require must be at least 1")
    items = sorted(raised_at.items(), key=lambda kv: (kv[1], kv[0]))
    found: set[Signal] = set()
    j = 0
    for i in range(len(items)):
        j = max(j, i)
        while j + 1 < len(items) and items[j + 1][1] - items[i][1] <= window_s:
            j += 1
        if j - i + 1 >= require:
            found.update(s for s, _ in items[i : j + 1])
    return sorted(found)


def event_types(catalog: Iterable[Profile], extra: Iterable[str] = ()) -> set[str]:
    """Every event type a device can raise: the profiles' event rows, the camera rules' events and the
    gateway's own (``device.offline`` …), plus ``extra`` (e.g. the backend's ``gateway.offline``)."""
    types = {e.type for p in catalog for e in p.events}
    types.update(RULE_EVENTS.values())
    types.update(GATEWAY_EVENTS)
    types.update(extra)
    return types


def command_problem(profile: Profile, command: str, args: Mapping[str, Scalar] | None = None) -> str | None:
    """Why ``command`` (with ``args``) cannot be sent to a device of ``profile``; None when it can."""
    spec = profile.command(command)
    if spec is None:
        have = ", ".join(c.name for c in profile.commands) or "none"
        return f"profile {profile.id} has no command {command!r} (has: {have})"
    if args is not None:
        try:
            validate_args(spec, args)
        except CommandError as exc:
            return f"profile {profile.id}: {exc}"
    return None


def profile_problem(catalog: Catalog, profile_id: str) -> str | None:
    if profile_id in catalog:
        return None
    return f"unknown profile {profile_id!r}; known profiles: {', '.join(catalog.ids())}"


def device_type_problem(catalog: Catalog, device_type: str, command: str) -> str | None:
    """Why no profile of ``device_type`` takes ``command``; None when at least one does."""
    profiles = [p for p in catalog if p.device_type == device_type]
    if not profiles:
        known = ", ".join(sorted({p.device_type for p in catalog}))
        return f"no profile has device_type {device_type!r} (known: {known})"
    if not any(p.command(command) is not None for p in profiles):
        return f"no {device_type} profile has a command {command!r} ({', '.join(p.id for p in profiles)})"
    return None
