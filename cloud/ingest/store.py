"""Writing one batch of received MQTT messages to the database, in one transaction.

Telemetry: message ids go into ``ingested_messages`` (ON CONFLICT DO NOTHING); only the points of the
newly inserted messages are COPYed (binary) into ``telemetry``. Events and command acks are inserted by
message id. Gateway state upserts gateways and devices. Anything off-contract becomes a dead letter.
New events, acks and gateway state changes are announced with ``pg_notify('xq_events', …)`` in the
same transaction, so listeners hear of them only once they are committed. The ids of every event and
command ack now in the database (stored by this batch, or found already stored) are handed back per
gateway in ``CommittedBatch.receipts``, for the receipts the worker publishes after the commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from psycopg.rows import TupleRow

from cloud.db import Flavour
from cloud.devices.registry import GATEWAY_STATEMENTS, DeviceDirectory, apply_offline_events, register_birth
from contract.codec import decode
from contract.errors import ContractError
from contract.messages import CommandAck, Event, GatewayState, HealthReport, Message, TelemetryBatch
from contract.topics import Topic

log = logging.getLogger(__name__)

Conn = psycopg.Connection[TupleRow]
NOTIFY_CHANNEL = "xq_events"
NOTIFY_MAX_BYTES = 7900
QUALITY = {"good": 0, "uncertain": 1, "bad": 2}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Inbound:
    """One MQTT message as received, not yet acknowledged."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime


@dataclass(slots=True)
class DeadLetter:
    topic: str
    payload: bytes
    code: str
    reason: str
    received_at: datetime


@dataclass(frozen=True)
class CommittedBatch:
    """What one committed batch stored (handed to ``on_committed``; only new rows, no duplicates)."""

    events: tuple[Event, ...] = ()
    acks: tuple[CommandAck, ...] = ()
    gateways: tuple[GatewayState, ...] = ()
    """State messages that changed a gateway row (birth / death)."""
    sites: dict[str, str] = field(default_factory=dict)
    """Gateway id → site id (from the topics) for the gateways in this batch."""
    messages: int = 0
    telemetry_messages: int = 0
    points: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    dead_letter_codes: dict[str, int] = field(default_factory=dict)
    receipts: dict[tuple[str, str], list[UUID]] = field(default_factory=dict)
    """(site, gateway) → ids of the events and command acks of this batch that are in the database now,
    new or already stored (a re-send): what the gateway may delete from its outbox. Dead letters are not in it."""


@dataclass
class _Decoded:
    telemetry: list[tuple[Inbound, Topic, TelemetryBatch]] = field(default_factory=list)
    events: list[tuple[Inbound, Topic, Event]] = field(default_factory=list)
    acks: list[tuple[Inbound, Topic, CommandAck]] = field(default_factory=list)
    states: list[tuple[Inbound, Topic, GatewayState]] = field(default_factory=list)
    health: list[tuple[Inbound, Topic, HealthReport]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0


def minute_ranges(minutes: Iterable[int]) -> list[tuple[datetime, datetime]]:
    """Contiguous [lo, hi) ranges covering the given minute numbers (minutes since the epoch)."""
    out: list[tuple[datetime, datetime]] = []
    start = prev = None
    for m in sorted(set(minutes)):
        if start is None or prev is None:
            start = prev = m
        elif m == prev + 1:
            prev = m
        else:
            out.append((EPOCH + timedelta(minutes=start), EPOCH + timedelta(minutes=prev + 1)))
            start = prev = m
    if start is not None and prev is not None:
        out.append((EPOCH + timedelta(minutes=start), EPOCH + timedelta(minutes=prev + 1)))
    return out


class BatchWriter:
    """Decodes and stores batches on one connection (not thread-safe: one writer per connection).

    The connection must be in autocommit mode: each batch opens its own transaction block.
    """

    def __init__(
        self,
        conn: Conn,
        flavour: Flavour,
        directory: DeviceDirectory,
        *,
        dead_letter_max_bytes: int = 4096,
        partitions: PartitionCache | None = None,
    ) -> None:
        if not conn.autocommit:
            raise ValueError("BatchWriter needs an autocommit connection (each batch is its own transaction)")
        self.conn = conn
        self.flavour = flavour
        self.directory = directory
        self.dead_letter_max_bytes = dead_letter_max_bytes
        self.partitions = partitions or PartitionCache()
        self.device_seen: dict[str, datetime] = {}
        self.gateway_seen: dict[str, datetime] = {}

    # -- decoding ---------------------------------------------------------------------------------
    def _dead(self, item: Inbound, code: str, reason: str) -> DeadLetter:
        return DeadLetter(item.topic, item.payload, code, reason, item.received_at)

    def decode(self, items: list[Inbound]) -> _Decoded:
        out = _Decoded()
        seen: set[UUID] = set()
        for item in items:
            try:
                topic, message = decode(item.topic, item.payload)
            except ContractError as exc:
                out.dead.append(self._dead(item, exc.code, exc.reason))
                continue
            self._sort(out, seen, item, topic, message)
        return out

    def _sort(self, out: _Decoded, seen: set[UUID], item: Inbound, topic: Topic, message: Message) -> None:
        if isinstance(message, GatewayState):  # idempotent upsert guarded by seq: no id dedup needed
            out.states.append((item, topic, message))
            return
        if isinstance(message, HealthReport):
            out.health.append((item, topic, message))
            return
        if message.id in seen:
            out.duplicates += 1
            return
        seen.add(message.id)
        if isinstance(message, TelemetryBatch):
            out.telemetry.append((item, topic, message))
        elif isinstance(message, Event):
            out.events.append((item, topic, message))
        elif isinstance(message, CommandAck):
            out.acks.append((item, topic, message))
        else:
            out.dead.append(self._dead(item, "unexpected_kind", f"{message.kind!r} is not an uplink message"))

    # -- writing ----------------------------------------------------------------------------------
    def write(self, items: list[Inbound]) -> CommittedBatch:
        """Store ``items`` in one transaction; on a database error about the data, fall back to one
        transaction per message and dead-letter the ones the database refuses. Connection errors
        propagate (the caller retries the whole batch; nothing is acknowledged)."""
        decoded = self.decode(items)
        try:
            return self._write(decoded, len(items))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            if len(items) == 1:
                log.warning("database refused message on %s: %s", items[0].topic, exc)
                dead = _Decoded(dead=[self._dead(items[0], "rejected", f"database refused it: {exc}".strip()[:1000])])
                return self._write(dead, 1)
            log.warning("batch of %d refused (%s); storing message by message", len(items), exc)
        results = [self.write([item]) for item in items]
        return merge(results)

    def _write(self, d: _Decoded, count: int) -> CommittedBatch:
        conn = self.conn
        # Which devices exist (births in this batch count), and which days need partitions.
        birth_devices = {dev.device for _, _, s in d.states if s.state == "online" for dev in s.devices}
        wanted: set[str] = set()
        minutes: set[int] = set()
        msg_devices: dict[UUID, set[str]] = {}
        for _, _, t in d.telemetry:
            devs = {p.device for p in t.points}
            msg_devices[t.id] = devs
            wanted |= devs
            minutes |= _minutes(t)
        wanted.update(e.device for _, _, e in d.events)
        known = self.directory.resolve(conn, wanted - birth_devices) | birth_devices
        if self.flavour == "native" and minutes:
            self.partitions.ensure(conn, {m // 1440 for m in minutes})

        sites: dict[str, str] = {}
        receipts: dict[tuple[str, str], list[UUID]] = {}
        changed_states: list[GatewayState] = []
        new_events: list[Event] = []
        new_acks: list[CommandAck] = []
        dead = list(d.dead)
        points = 0
        device_seen: dict[str, datetime] = {}
        gateway_seen: dict[str, datetime] = {}

        with conn.transaction(), conn.cursor() as cur:
            for item, topic, state in sorted(d.states, key=lambda x: (x[2].epoch, x[2].seq)):
                sites[state.gw] = topic.site
                if register_birth(cur, topic.site, state, item.received_at):
                    changed_states.append(state)
            if birth_devices:
                self.directory.add(birth_devices)

            if d.telemetry:
                cur.execute(
                    "INSERT INTO ingested_messages (id, gateway_id, seq, received_at) "
                    "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::timestamptz[]) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                    (
                        [t.id for _, _, t in d.telemetry],
                        [t.gw for _, _, t in d.telemetry],
                        [t.seq for _, _, t in d.telemetry],
                        [i.received_at for i, _, _ in d.telemetry],
                    ),
                )
                new_ids = {r[0] for r in cur.fetchall()}
                fresh = [x for x in d.telemetry if x[2].id in new_ids]
                d.duplicates += len(d.telemetry) - len(fresh)
                if fresh:
                    points = self._copy(cur, fresh, known, msg_devices, dead, device_seen)
                    if self.flavour == "native":
                        ranges = minute_ranges(minutes)
                        cur.execute(
                            "INSERT INTO telemetry_dirty (lo, hi) "
                            "SELECT * FROM unnest(%s::timestamptz[], %s::timestamptz[])",
                            ([r[0] for r in ranges], [r[1] for r in ranges]),
                        )

            events = []
            for item, topic, ev in d.events:
                if ev.device in known:
                    events.append((item, topic, ev))
                else:
                    dead.append(self._dead(item, "unknown_device", f"device {ev.device!r} is not registered"))
            if events:
                cur.execute(
                    """
                    INSERT INTO events (id, gateway_id, seq, device_id, type, key, location, severity, active,
                                        life_safety, ts, received_at, detail, evidence)
                    SELECT id, gw, seq, dev, typ, k, loc::jsonb, sev, act, ls, ts, rcv, det::jsonb, evi::jsonb
                    FROM unnest(%s::uuid[], %s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
                                %s::text[], %s::bool[], %s::bool[], %s::timestamptz[], %s::timestamptz[], %s::text[],
                                %s::text[])
                         AS u(id, gw, seq, dev, typ, k, loc, sev, act, ls, ts, rcv, det, evi)
                    ON CONFLICT (id) DO NOTHING RETURNING id
                    """,
                    (
                        [e.id for _, _, e in events],
                        [e.gw for _, _, e in events],
                        [e.seq for _, _, e in events],
                        [e.device for _, _, e in events],
                        [e.event for _, _, e in events],
                        [e.key for _, _, e in events],
                        [
                            e.location.model_dump_json(exclude_none=True) if e.location is not None else None
                            for _, _, e in events
                        ],
                        [e.severity for _, _, e in events],
                        [e.active for _, _, e in events],
                        [e.life_safety for _, _, e in events],
                        [e.ts for _, _, e in events],
                        [i.received_at for i, _, _ in events],
                        [json.dumps(e.detail) for _, _, e in events],
                        [json.dumps([x.model_dump(mode="json") for x in e.evidence]) for _, _, e in events],
                    ),
                )
                new = {r[0] for r in cur.fetchall()}
                d.duplicates += len(events) - len(new)
                for item, topic, ev in events:
                    receipts.setdefault((topic.site, ev.gw), []).append(ev.id)  # new or already stored
                    if ev.id in new:
                        new_events.append(ev)
                        sites[ev.gw] = topic.site
                        if ev.event not in GATEWAY_STATEMENTS:
                            _newer(device_seen, ev.device, min(ev.ts, item.received_at))
                offline = [(e.device, e.active, e.ts) for e in new_events if e.event == "device.offline"]
                if offline:
                    apply_offline_events(cur, offline)

            if d.acks:
                a = d.acks
                cur.execute(
                    """
                    INSERT INTO command_acks
                        (id, command_id, gateway_id, device_id, status, reason, detail, ts, received_at, probe)
                    SELECT id, cid, gw, dev, st, rsn, det::jsonb, ts, rcv, prb::jsonb
                    FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                                %s::timestamptz[], %s::timestamptz[], %s::text[])
                         AS u(id, cid, gw, dev, st, rsn, det, ts, rcv, prb)
                    ON CONFLICT (id) DO NOTHING RETURNING id
                    """,
                    (
                        [x.id for _, _, x in a],
                        [x.command_id for _, _, x in a],
                        [x.gw for _, _, x in a],
                        [x.device for _, _, x in a],
                        [x.status for _, _, x in a],
                        [x.reason for _, _, x in a],
                        [json.dumps(x.detail) for _, _, x in a],
                        [x.ts for _, _, x in a],
                        [i.received_at for i, _, _ in a],
                        [None if x.probe is None else json.dumps([p.model_dump(mode="json") for p in x.probe])
                         for _, _, x in a],
                    ),
                )
                new = {r[0] for r in cur.fetchall()}
                d.duplicates += len(a) - len(new)
                for _, topic, x in a:
                    receipts.setdefault((topic.site, x.gw), []).append(x.id)
                    if x.id in new:
                        new_acks.append(x)
                        sites[x.gw] = topic.site

            if d.health:
                latest: dict[str, tuple[Inbound, HealthReport]] = {}
                for item, _, h in d.health:
                    if h.gw not in latest or (h.epoch, h.seq) > (latest[h.gw][1].epoch, latest[h.gw][1].seq):
                        latest[h.gw] = (item, h)
                cur.execute(
                    "UPDATE gateways AS g SET health = u.h::jsonb, health_at = u.ts "
                    "FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS u(id, h, ts) "
                    "WHERE g.id = u.id AND (g.health_at IS NULL OR g.health_at <= u.ts)",
                    (
                        list(latest),
                        [h.health.model_dump_json() for _, h in latest.values()],
                        [h.ts for _, h in latest.values()],
                    ),
                )

            if dead:
                limit = self.dead_letter_max_bytes
                cur.execute(
                    "INSERT INTO dead_letters (received_at, topic, payload, payload_size, code, reason) "
                    "SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::bytea[], %s::int[], "
                    "%s::text[], %s::text[])",
                    (
                        [x.received_at for x in dead],
                        [x.topic.replace("\x00", "\ufffd") for x in dead],
                        [x.payload[:limit] for x in dead],
                        [len(x.payload) for x in dead],
                        [x.code for x in dead],
                        [x.reason.replace("\x00", "\ufffd") for x in dead],
                    ),
                )

            _notify(cur, "events", [str(e.id) for e in new_events])
            _notify(cur, "acks", [str(x.id) for x in new_acks])
            _notify(cur, "gateways", [s.gw for s in changed_states])

        # Committed: remember presence for the periodic flush.
        for item, _, msg in [*d.telemetry, *d.events, *d.acks, *d.states, *d.health]:
            _newer(gateway_seen, msg.gw, item.received_at)
        for k, v in device_seen.items():
            _newer(self.device_seen, k, v)
        for k, v in gateway_seen.items():
            _newer(self.gateway_seen, k, v)
        codes: dict[str, int] = {}
        for dl in dead:
            codes[dl.code] = codes.get(dl.code, 0) + 1
        return CommittedBatch(
            events=tuple(new_events),
            acks=tuple(new_acks),
            gateways=tuple(changed_states),
            sites=sites,
            messages=count,
            telemetry_messages=len(d.telemetry),
            points=points,
            duplicates=d.duplicates,
            dead_letters=len(dead),
            dead_letter_codes=codes,
            receipts=receipts,
        )

    def _copy(
        self,
        cur: psycopg.Cursor[TupleRow],
        fresh: list[tuple[Inbound, Topic, TelemetryBatch]],
        known: set[str],
        msg_devices: dict[UUID, set[str]],
        dead: list[DeadLetter],
        device_seen: dict[str, datetime],
    ) -> int:
        """COPY the points of ``fresh`` messages (the hot loop: keep it lean)."""
        n = 0
        q = QUALITY
        with cur.copy(
            "COPY telemetry (ts, device_id, point, value, value_text, quality) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["timestamptz", "text", "text", "float8", "text", "int2"])
            write = copy.write_row
            for item, _, msg in fresh:
                devs = msg_devices[msg.id]
                unknown = devs - known
                points = msg.points if not unknown else [p for p in msg.points if p.device not in unknown]
                any_bad = False
                for p in points:
                    v = p.value
                    qc = q[p.quality]
                    if qc == 2:
                        any_bad = True
                    if v.__class__ is str:
                        write((p.ts, p.device, p.point, None, v, qc))
                    else:
                        write((p.ts, p.device, p.point, float(v), None, qc))
                n += len(points)
                seen = min(msg.ts, item.received_at)  # the batch's observation time, never in the future
                # Stale values a gateway republishes (quality bad) are not the device speaking.
                live = {p.device for p in points if p.quality != "bad"} if any_bad else devs - unknown
                for dev in live:
                    _newer(device_seen, dev, seen)
                if unknown:
                    names = ", ".join(sorted(unknown)[:10])
                    dead.append(
                        self._dead(
                            item,
                            "unknown_device",
                            f"{len(msg.points) - len(points)} of {len(msg.points)} points are for "
                            f"unregistered device(s): {names}",
                        )
                    )
        return n

    def take_presence(self) -> tuple[dict[str, datetime], dict[str, datetime]]:
        devices, self.device_seen = self.device_seen, {}
        gateways, self.gateway_seen = self.gateway_seen, {}
        return devices, gateways


def _minutes(msg: TelemetryBatch, spread: int = 10) -> set[int]:
    """Minute numbers (since the epoch) the message's points fall in; cheap when they are close together."""
    stamps = [p.ts for p in msg.points]
    lo = int(min(stamps).timestamp()) // 60
    hi = int(max(stamps).timestamp()) // 60
    if hi - lo <= spread:
        return set(range(lo, hi + 1))
    return {int(ts.timestamp()) // 60 for ts in stamps}


def _newer(target: dict[str, datetime], key: str, ts: datetime) -> None:
    old = target.get(key)
    if old is None or ts > old:
        target[key] = ts


def notify_payloads(key: str, ids: list[str]) -> list[str]:
    """``{"<key>": [ids…]}`` JSON texts, each at most :data:`NOTIFY_MAX_BYTES` (PostgreSQL refuses a NOTIFY
    payload of 8000 bytes or more, and a refused batch falls back to one transaction per message)."""
    payloads: list[str] = []
    chunk: list[str] = []
    size = len(json.dumps({key: []}))
    for i in ids:
        item = len(json.dumps(i).encode()) + 2  # the quoted id and its ", " separator
        if chunk and size + item > NOTIFY_MAX_BYTES:
            payloads.append(json.dumps({key: chunk}))
            chunk, size = [], len(json.dumps({key: []}))
        chunk.append(i)
        size += item
    if chunk:
        payloads.append(json.dumps({key: chunk}))
    return payloads


def _notify(cur: psycopg.Cursor[TupleRow], key: str, ids: list[str]) -> None:
    """``pg_notify`` ``{"<key>": [ids…]}`` in chunks below PostgreSQL's 8000-byte payload limit."""
    payloads = notify_payloads(key, ids)
    if payloads:
        cur.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", (NOTIFY_CHANNEL, payloads))


def merge(results: list[CommittedBatch]) -> CommittedBatch:
    codes: dict[str, int] = {}
    sites: dict[str, str] = {}
    receipts: dict[tuple[str, str], list[UUID]] = {}
    for r in results:
        sites.update(r.sites)
        for k, v in r.dead_letter_codes.items():
            codes[k] = codes.get(k, 0) + v
        for gw, ids in r.receipts.items():
            receipts.setdefault(gw, []).extend(ids)
    return CommittedBatch(
        events=tuple(e for r in results for e in r.events),
        acks=tuple(a for r in results for a in r.acks),
        gateways=tuple(g for r in results for g in r.gateways),
        sites=sites,
        messages=sum(r.messages for r in results),
        telemetry_messages=sum(r.telemetry_messages for r in results),
        points=sum(r.points for r in results),
        duplicates=sum(r.duplicates for r in results),
        dead_letters=sum(r.dead_letters for r in results),
        dead_letter_codes=codes,
        receipts=receipts,
    )


class PartitionCache:
    """Daily telemetry partitions known to exist (native flavour); creates missing ones in their own
    short transaction, before the batch transaction, so DDL locks never sit inside an ingest transaction."""

    def __init__(self) -> None:
        self._days: set[int] = set()

    def ensure(self, conn: Conn, days: Iterable[int]) -> None:
        missing = sorted(set(days) - self._days)
        if not missing:
            return
        with conn.transaction():
            conn.execute(
                "SELECT xq_ensure_telemetry_partition(d::date) FROM unnest(%s::date[]) AS d",
                ([(EPOCH + timedelta(days=d)).date() for d in missing],),
            )
        self._days.update(missing)

    def forget(self, days: Iterable[int]) -> None:
        self._days.difference_update(days)
