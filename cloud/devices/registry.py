"""Devices and gateways, the policy: registration from birth messages, a cache of known ids, presence tracking.
The SQL is in :mod:`cloud.devices.repository`, the rows in :mod:`cloud.devices.models`.

Presence (``last_seen``, ``state``) is kept in memory from traffic and written periodically in one
statement (:meth:`PresenceTracker.flush`), never with a database write per message. Only what the device
itself said counts: telemetry samples of quality ``bad`` (a gateway republishing stale values of a device it
knows is offline) and the gateway's own statements about it (``device.offline``) never refresh
``last_seen``. The gateway's ``device.offline`` events set the device's state directly
(:func:`apply_offline_events`), so the device list and the offline alarm agree.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime

import psycopg
from psycopg.rows import TupleRow

from cloud.devices import repository
from cloud.devices.models import AnnouncedDevice, GatewayStateRow, OfflineStatement
from contract.messages import DeviceInfo, GatewayState

log = logging.getLogger(__name__)

GATEWAY_STATEMENTS = frozenset({"device.offline", "linkage.action"})
"""Event types in which the gateway speaks *about* a device: they never count as the device being heard."""

Conn = psycopg.Connection[TupleRow]
Cursor = psycopg.Cursor[TupleRow]


class DeviceDirectory:
    """Which device ids exist, cached; unknown ids are looked up again at most every ``negative_ttl_s``."""

    def __init__(self, negative_ttl_s: float = 5.0) -> None:
        self._known: set[str] = set()
        self._missing: dict[str, float] = {}
        self._negative_ttl_s = negative_ttl_s
        self._lock = threading.Lock()

    def load_all(self, conn: Conn) -> int:
        ids = repository.all_device_ids(conn)
        with self._lock:
            self._known |= ids
            self._missing.clear()
        return len(ids)

    def add(self, ids: Iterable[str]) -> None:
        with self._lock:
            for i in ids:
                self._known.add(i)
                self._missing.pop(i, None)

    def known(self, device_id: str) -> bool:
        return device_id in self._known

    def resolve(self, conn: Conn, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that exist, asking the database about the ones not cached yet."""
        now = time.monotonic()
        wanted = set(ids)
        found = wanted & self._known
        ask = [i for i in wanted - found if self._missing.get(i, 0.0) <= now]
        if ask:
            exist = repository.existing_device_ids(conn, ask)
            with self._lock:
                self._known |= exist
                for i in ask:
                    if i not in exist:
                        self._missing[i] = now + self._negative_ttl_s
            found |= exist
        return found


def register_birth(cur: Cursor, site: str, state: GatewayState, received_at: datetime) -> bool:
    """Apply a gateway state message (birth or death); True when it changed the gateway row.

    State messages are ordered by ``(epoch, seq)``: one older than the one already applied is ignored, so a
    replayed retained birth never overrides a newer death, and the same one twice changes nothing; a new
    epoch (the gateway's outbox was created anew: re-imaged box, new SD card, seq from 1 again) supersedes
    whatever the old one said. Devices announced in a birth are upserted.
    """
    repository.ensure_sites(cur, {site} | {d.location.site for d in state.devices})
    changed = repository.apply_gateway_state(
        cur,
        GatewayStateRow(
            gateway_id=state.gw,
            site_id=site,
            state=state.state,
            reason=state.reason,
            epoch=state.epoch,
            seq=state.seq,
            received_at=received_at,
            software=state.software,
            config_version=state.config_version,
            config_error=state.config_error,
        ),
    )
    if changed and state.devices:
        repository.upsert_announced_devices(cur, state.gw, [announced(d) for d in state.devices])
    return changed


def announced(d: DeviceInfo) -> AnnouncedDevice:
    """A device of a birth message as the row it registers."""
    loc = d.location
    return AnnouncedDevice(d.device, d.profile, loc.site, loc.building, loc.floor, loc.unit, loc.area, d.name)


def apply_offline_events(cur: Cursor, events: Iterable[OfflineStatement | tuple[str, bool, datetime]]) -> int:
    """Apply the gateways' ``device.offline`` events (device, active, observed at) to the device list, so
    the list and the offline alarm never disagree: raised → ``offline`` from that time (``offline_since``);
    cleared → ``online`` again. Applied oldest first; an event older than what the row already reflects
    changes nothing."""
    rows = sorted((OfflineStatement(*e) for e in events), key=lambda e: e.ts)
    changed = 0
    for s in rows:
        changed += repository.set_offline(cur, s) if s.active else repository.set_back_online(cur, s)
    return changed


class PresenceTracker:
    """Newest observation per device and newest message per gateway, in memory until flushed."""

    def __init__(self) -> None:
        self._devices: dict[str, datetime] = {}
        self._gateways: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def note(self, devices: dict[str, datetime], gateways: dict[str, datetime]) -> None:
        with self._lock:
            for key, ts in devices.items():
                old = self._devices.get(key)
                if old is None or ts > old:
                    self._devices[key] = ts
            for key, ts in gateways.items():
                old = self._gateways.get(key)
                if old is None or ts > old:
                    self._gateways[key] = ts

    def pending(self) -> int:
        with self._lock:
            return len(self._devices) + len(self._gateways)

    def flush(self, conn: Conn, online_window_s: float) -> int:
        """Write everything noted since the last flush in one statement; returns the rows noted."""
        with self._lock:
            devices, self._devices = self._devices, {}
            gateways, self._gateways = self._gateways, {}
        if not devices and not gateways:
            return 0
        try:
            repository.write_presence(conn, online_window_s, devices, gateways)
        except psycopg.Error:
            self.note(devices, gateways)  # keep them for the next flush
            raise
        return len(devices) + len(gateways)


def mark_offline(conn: Conn, offline_after_s: float) -> int:
    """Devices not heard from within ``offline_after_s`` become 'offline'; returns how many changed."""
    return repository.mark_silent_offline(conn, offline_after_s)
