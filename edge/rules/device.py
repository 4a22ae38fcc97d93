"""Per-device rules: report by exception, a periodic full report, profile events and liveness.

Every source (Modbus poller, MQTT bridge) hands decoded point values to :meth:`DeviceRules.ingest`.
Events come from the profile through :class:`device_profiles.conditions.EventTracker`, whose ``for`` /
``clear_for`` durations run on the injected monotonic clock. Non-life-safety events can be debounced
further by a gateway-wide minimum hold (``debounce_s``); life-safety events never wait for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from contract.clock import Clock
from contract.messages import Location, PointSample, Quality, Scalar
from device_profiles import CompiledProfile, ConcreteEvent
from device_profiles.conditions import EventTracker
from device_profiles.mqtt_decode import Invalid
from edge.rules.active import ActiveEvent
from edge.rules.emitter import Emitter
from edge.rules.telemetry import TelemetryBatcher

logger = logging.getLogger(__name__)

DEFAULT_OFFLINE_AFTER_S = 60.0


class Liveness:
    """Online/offline from "last time the device answered", with an offline window.

    ``None`` until the first verdict: a device that answers is online; one that never answers goes offline
    once the window has passed since the gateway started watching it.
    """

    def __init__(self, offline_after_s: float, started_at: float) -> None:
        self.offline_after_s = offline_after_s
        self.last_seen: float | None = None
        self._since = started_at
        self.online: bool | None = None

    def seen(self, now: float) -> bool | None:
        """Record an answer; returns True when this brings the device (back) online."""
        self.last_seen = now
        if self.online is not True:
            was = self.online
            self.online = True
            return True if was is False else None
        return None

    def check(self, now: float) -> bool | None:
        """Returns False when the window has just run out (the device goes offline)."""
        last = self.last_seen if self.last_seen is not None else self._since
        if self.online is not False and now - last >= self.offline_after_s:
            self.online = False
            return False
        return None

    def force(self, online: bool) -> bool:
        """Set the state from an explicit report (MQTT status/LWT); True when it changed."""
        changed = self.online is not online
        self.online = online
        return changed


class DeviceRules:
    def __init__(
        self,
        device_id: str,
        profile: CompiledProfile,
        emitter: Emitter,
        batcher: TelemetryBatcher,
        clock: Clock,
        *,
        offline_after_s: float | None = None,
        debounce_s: float = 0.0,
        zones: Mapping[int, Location] | None = None,
    ) -> None:
        self.device_id = device_id
        self.profile = profile
        self.emitter = emitter
        self.batcher = batcher
        self.clock = clock
        hb = profile.profile.heartbeat
        window = offline_after_s or (hb.offline_after_s if hb else DEFAULT_OFFLINE_AFTER_S)
        self.liveness = Liveness(window, clock.monotonic())
        events: list[ConcreteEvent] = []
        for e in profile.events:
            if debounce_s > 0 and not e.life_safety and e.when is not None:
                e = dataclasses.replace(e, for_s=max(e.for_s, debounce_s), clear_for_s=max(e.clear_for_s, debounce_s))
            events.append(e)
        self.tracker = EventTracker(events)
        self.zones: dict[int, Location] = dict(zones or {})
        self.values: dict[str, Scalar] = {}
        self.quality: dict[str, Quality] = {}
        self._reported: dict[str, tuple[Scalar, Quality]] = {}
        self._deadband = {p.name: p.deadband for p in profile.points}
        self._invalid: set[str] = set()  # points whose last value did not convert (device.bad_value raised)
        self.clock_skew: str | None = None  # why the device's own time stamps are not used (device.clock_skew)

    # --- liveness -------------------------------------------------------------------------------------------
    @property
    def online(self) -> bool | None:
        return self.liveness.online

    def answered(self) -> None:
        """The device answered (a poll, any MQTT message on its topics)."""
        if self.liveness.seen(self.clock.monotonic()):
            self._offline_event(False, "answering again")

    def check_liveness(self) -> None:
        if self.liveness.check(self.clock.monotonic()) is False:
            self._offline_event(True, f"no answer for {self.liveness.offline_after_s:g} s")

    def set_status(self, online: bool, reason: str) -> None:
        """An explicit status report (MQTT status topic / last will)."""
        if online:
            self.liveness.last_seen = self.clock.monotonic()
        was = self.liveness.online
        if self.liveness.force(online) and not (online and was is None):
            self._offline_event(not online, reason)

    def _offline_event(self, offline: bool, reason: str) -> None:
        if offline:
            logger.warning("device %s offline: %s", self.device_id, reason)
            now = self.clock.now()
            for name in list(self.values):  # its last values are stale now: reported once as bad quality
                self._set_bad(name, now)
        else:
            logger.info("device %s back online", self.device_id)
        self.emitter.event(
            self.device_id, "device.offline", key="device.offline", severity="major", active=offline,
            ts=self.clock.now(), detail={"reason": reason, "offline_after_s": self.liveness.offline_after_s},
            stateful=True,
        )

    # --- restart ----------------------------------------------------------------------------------------------
    def restore(self, active: Iterable[ActiveEvent]) -> None:
        """Seed the state with the events this device had raised before a restart (or before its config
        changed): nothing is raised again; each is cleared once its condition is seen false (a device that stays
        offline keeps them). An event its profile no longer has is cleared now, saying why."""
        rows = {a.key: a for a in active}
        for key in list(rows):
            if key == "device.offline":
                self.liveness.online = False  # the first answer clears it; no second raise while it stays down
            elif key.startswith("device.bad_value#"):
                self._invalid.add(key.removeprefix("device.bad_value#"))
            elif key == "device.clock_skew":
                self.clock_skew = "raised before the gateway restarted"
            else:
                continue
            del rows[key]
        for key in self.tracker.restore(rows):
            a = rows[key]
            logger.warning("device %s: active event %s is not in profile %s any more: clearing it", self.device_id,
                           key, self.profile.profile.id)
            self.emitter.event(
                self.device_id, a.event, key=key, severity=a.severity, active=False, life_safety=a.life_safety,
                ts=self.clock.now(), location=a.location,
                detail={"reason": f"cleared by the gateway: the event is no longer in profile "
                                  f"{self.profile.profile.id}"[:300]},
            )

    # --- values ---------------------------------------------------------------------------------------------
    def ingest(self, values: Mapping[str, Scalar | None], ts: datetime | None = None,
               bad: Mapping[str, str] | None = None, invalid: Mapping[str, Invalid] | None = None) -> None:
        """New readings (``None`` / ``bad``: the point could not be read; ``invalid``: the device sent a value
        that does not convert to the point's type). Reports by exception, runs events."""
        ts = ts or self.clock.now()
        for name, value in values.items():
            if value is None:
                self._set_bad(name, ts)
                continue
            self.values[name] = value
            self.quality[name] = "good"
            if name in self._invalid:
                self._invalid.discard(name)
                self._bad_value_event(name, None, ts)
            if self._changed(name, value, "good"):
                self._report(name, value, "good", ts)
        for name in bad or {}:
            self._set_bad(name, ts)
        for name, inv in (invalid or {}).items():
            self._set_invalid(name, inv, ts)
        self.evaluate(ts)

    def _set_invalid(self, name: str, inv: Invalid, ts: datetime) -> None:
        """Stored with quality bad (the raw value, so the installer sees what came) and the reason in a
        ``device.bad_value`` event raised once per point until it converts again."""
        self.values[name] = inv.raw
        self.quality[name] = "bad"
        if self._changed(name, inv.raw, "bad"):
            self._report(name, inv.raw, "bad", ts)
        if name not in self._invalid:
            self._invalid.add(name)
            logger.warning("device %s: point %s: %s", self.device_id, name, inv.reason)
            self._bad_value_event(name, inv, ts)

    def _bad_value_event(self, name: str, inv: Invalid | None, ts: datetime) -> None:
        detail: dict[str, Scalar] = {"point": name}
        if inv is not None:
            detail |= {"value": str(inv.raw)[:100], "reason": inv.reason[:300]}
        self.emitter.event(self.device_id, "device.bad_value", severity="warning", active=inv is not None, ts=ts,
                           detail=detail, key=f"device.bad_value#{name}", stateful=True)

    def flag_clock(self, problem: str | None) -> None:
        """The device's time stamps could not be used (``problem``: why; the gateway's time is used) or can
        be again (``None``): a ``device.clock_skew`` event raised once and cleared."""
        if problem is None and self.clock_skew is None:
            return
        if problem is not None and self.clock_skew is not None:
            self.clock_skew = problem  # still off: flagged once
            return
        self.clock_skew = problem
        if problem is not None:
            logger.warning("device %s: %s; using the gateway's time", self.device_id, problem)
        self.emitter.event(self.device_id, "device.clock_skew", key="device.clock_skew", severity="warning",
                           active=problem is not None, stateful=True,
                           ts=self.clock.now(),
                           detail={"reason": (problem or "device time stamps in window again")[:300]})

    def _set_bad(self, name: str, ts: datetime) -> None:
        if self.quality.get(name) == "bad":
            return
        self.quality[name] = "bad"
        last = self.values.get(name)
        if last is not None:
            self._report(name, last, "bad", ts)

    def evaluate(self, ts: datetime | None = None) -> None:
        """Run the event conditions (also called periodically so ``for`` durations elapse without new data)."""
        good = {k: v for k, v in self.values.items() if self.quality.get(k) == "good"}
        for t in self.tracker.update(good, self.clock.monotonic()):
            e = t.event
            detail = {**e.detail, **self.profile.readings_detail(e, good)} if e.readings else e.detail
            self.emitter.event(
                self.device_id, e.type, key=e.key, severity=e.severity, active=t.active, life_safety=e.life_safety,
                ts=ts or self.clock.now(), detail=detail, location=self.location_of(e, e.detail), stateful=True,
            )

    def location_of(self, event: ConcreteEvent, detail: Mapping[str, Scalar]) -> Location | None:
        """The zone's place from the gateway config's zone map: by the event's ``zone`` detail, else its
        instance number; None (= the device's own location) when the event is not about a mapped zone."""
        if not self.zones:
            return None
        zone = detail.get("zone")
        n: int | None = None
        if isinstance(zone, int) and not isinstance(zone, bool):
            n = zone
        elif isinstance(zone, str) and zone.isdigit():
            n = int(zone)
        elif zone is None:
            n = event.n
        return self.zones.get(n) if n is not None else None

    def _changed(self, name: str, value: Scalar, quality: Quality) -> bool:
        prev = self._reported.get(name)
        if prev is None or prev[1] != quality:
            return True
        old = prev[0]
        band = self._deadband.get(name)
        if (band is not None and isinstance(value, int | float) and not isinstance(value, bool)
                and isinstance(old, int | float) and not isinstance(old, bool)):
            return abs(float(value) - float(old)) > band
        return value != old

    def _report(self, name: str, value: Scalar, quality: Quality, ts: datetime) -> None:
        self._reported[name] = (value, quality)
        self.batcher.add(PointSample(device=self.device_id, point=name, ts=ts, value=value, quality=quality))

    def full_report(self) -> None:
        """Every known value, whatever changed (the periodic full report)."""
        ts = self.clock.now()
        for name, value in self.values.items():
            self._report(name, value, self.quality.get(name, "good"), ts)

    def momentary(self, event: ConcreteEvent, detail: Mapping[str, Scalar], ts: datetime | None = None) -> None:
        """A momentary event (MQTT ``on_message``): raised once, never cleared."""
        good = {k: v for k, v in self.values.items() if self.quality.get(k) == "good"}
        merged = {**event.detail, **self.profile.readings_detail(event, good), **detail}
        self.emitter.event(
            self.device_id, event.type, key=event.key, severity=event.severity, active=True,
            life_safety=event.life_safety, ts=ts or self.clock.now(), detail=merged,
            location=self.location_of(event, merged),
        )
