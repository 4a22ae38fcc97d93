"""Devices and gateways: registration from birth messages, a cache of known ids, presence tracking.

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

from contract.messages import GatewayState

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
        ids = {str(r[0]) for r in conn.execute("SELECT id FROM devices").fetchall()}
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
            rows = conn.execute("SELECT id FROM devices WHERE id = ANY(%s)", (ask,)).fetchall()
            exist = {str(r[0]) for r in rows}
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
    sites = {site} | {d.location.site for d in state.devices}
    cur.execute(
        "INSERT INTO sites (id, name) SELECT s, s FROM unnest(%s::text[]) AS s ON CONFLICT (id) DO NOTHING",
        (sorted(sites),),
    )
    cur.execute(
        """
        INSERT INTO gateways AS g (id, site_id, state, state_reason, state_epoch, state_seq, last_seen, software,
                                   updated_at, config_version, config_error)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s)
        ON CONFLICT (id) DO UPDATE SET
            site_id = EXCLUDED.site_id, state = EXCLUDED.state, state_reason = EXCLUDED.state_reason,
            state_epoch = EXCLUDED.state_epoch, state_seq = EXCLUDED.state_seq,
            software = COALESCE(EXCLUDED.software, g.software),
            last_seen = GREATEST(g.last_seen, EXCLUDED.last_seen), updated_at = now(),
            -- a birth says which pushed config is in force (or why the last was refused); a death says nothing
            config_version = CASE WHEN EXCLUDED.state = 'online' THEN EXCLUDED.config_version ELSE g.config_version END,
            config_error = CASE WHEN EXCLUDED.state = 'online' THEN EXCLUDED.config_error ELSE g.config_error END
        WHERE g.state_seq IS NULL
           OR (EXCLUDED.state_epoch, EXCLUDED.state_seq) > (g.state_epoch, g.state_seq)
           OR (EXCLUDED.state_epoch = g.state_epoch AND EXCLUDED.state_seq = g.state_seq
               AND EXCLUDED.state IS DISTINCT FROM g.state)
        RETURNING id
        """,
        (state.gw, site, state.state, state.reason, state.epoch, state.seq, received_at, state.software,
         state.config_version, state.config_error),
    )
    changed = cur.fetchone() is not None
    if changed and state.devices:
        d = state.devices
        cur.execute(
            """
            INSERT INTO devices AS d (id, gateway_id, profile_id, site_id, building, floor, unit, area, name)
            SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int[],
                                 %s::text[], %s::text[], %s::text[])
            ON CONFLICT (id) DO UPDATE SET
                gateway_id = EXCLUDED.gateway_id, profile_id = EXCLUDED.profile_id, site_id = EXCLUDED.site_id,
                building = EXCLUDED.building, floor = EXCLUDED.floor, unit = EXCLUDED.unit, area = EXCLUDED.area,
                name = COALESCE(EXCLUDED.name, d.name), updated_at = now()
            """,
            (
                [x.device for x in d],
                [state.gw] * len(d),
                [x.profile for x in d],
                [x.location.site for x in d],
                [x.location.building for x in d],
                [x.location.floor for x in d],
                [x.location.unit for x in d],
                [x.location.area for x in d],
                [x.name for x in d],
            ),
        )
    return changed


def apply_offline_events(cur: Cursor, events: Iterable[tuple[str, bool, datetime]]) -> int:
    """Apply the gateways' ``device.offline`` events (device, active, observed at) to the device list, so
    the list and the offline alarm never disagree: raised → ``offline`` from that time (``offline_since``);
    cleared → ``online`` again. An event older than what the row already reflects changes nothing."""
    rows = sorted(events, key=lambda e: e[2])
    changed = 0
    for device, active, ts in rows:
        if active:
            cur.execute(
                "UPDATE devices SET state = 'offline', offline_since = %s, updated_at = now() "
                "WHERE id = %s AND (offline_since IS NULL OR offline_since < %s) "
                "AND (last_seen IS NULL OR last_seen <= %s)",
                (ts, device, ts, ts),
            )
        else:
            cur.execute(
                "UPDATE devices SET state = 'online', offline_since = NULL, "
                "last_seen = GREATEST(last_seen, %s), updated_at = now() "
                "WHERE id = %s AND (offline_since IS NULL OR offline_since <= %s)",
                (ts, device, ts),
            )
        changed += cur.rowcount
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
            with conn.transaction():
                conn.execute(
                    """
                    WITH dev AS (
                        UPDATE devices AS d SET
                            last_seen = GREATEST(d.last_seen, u.ts),
                            state = CASE WHEN GREATEST(d.last_seen, u.ts) > now() - make_interval(secs => %s)
                                          AND (d.offline_since IS NULL OR u.ts > d.offline_since)
                                         THEN 'online' ELSE d.state END,
                            offline_since = CASE WHEN u.ts > d.offline_since THEN NULL ELSE d.offline_since END
                        FROM unnest(%s::text[], %s::timestamptz[]) AS u(id, ts)
                        WHERE d.id = u.id
                        RETURNING 1
                    ), gw AS (
                        UPDATE gateways AS g SET last_seen = GREATEST(g.last_seen, u.ts)
                        FROM unnest(%s::text[], %s::timestamptz[]) AS u(id, ts)
                        WHERE g.id = u.id
                        RETURNING 1
                    )
                    SELECT (SELECT count(*) FROM dev), (SELECT count(*) FROM gw)
                    """,
                    (online_window_s, list(devices), list(devices.values()), list(gateways), list(gateways.values())),
                )
        except psycopg.Error:
            self.note(devices, gateways)  # keep them for the next flush
            raise
        return len(devices) + len(gateways)


def mark_offline(conn: Conn, offline_after_s: float) -> int:
    """Devices not heard from within ``offline_after_s`` become 'offline'; returns how many changed."""
    with conn.transaction():
        cur = conn.execute(
            "UPDATE devices SET state = 'offline', updated_at = now() "
            "WHERE state = 'online' AND last_seen < now() - make_interval(secs => %s)",
            (offline_after_s,),
        )
        return cur.rowcount
