"""Bridge MQTT devices into the gateway's rules, and carry commands to them.

Per device (``{prefix}`` = the profile's ``mqtt.prefix`` with ``{device_id}`` filled in) the bridge
subscribes to every topic its profile names: point topics (decoded with
:func:`device_profiles.mqtt_mapping.extract_scalar`), momentary ``on_message`` events, the status topic
(retained online/offline and the device's last will), the heartbeat topic and the command-result topic.

The connection is a :class:`contract.mqtt.MqttClient` (it reconnects and resubscribes by itself); every
message is handed to the asyncio loop and handled there, so rules, events and the outbox are touched from one thread.
A malformed payload is logged and counted, reported up as ``device.bad_payload`` at most once per
``bad_payload_interval_s`` per device, and never crashes the bridge.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contract.clock import Clock
from contract.messages import Scalar
from contract.mqtt import ConnectResult, Message, MqttClient, MqttPublishError, MqttSettings
from device_profiles import CompiledProfile, ConcreteEvent, ConcretePoint
from device_profiles.commands import Publish
from device_profiles.mqtt_decode import checked_time, decode_points
from device_profiles.mqtt_mapping import Missing, PathError, extract, extract_scalar, fill_topic
from device_profiles.schema import CommandResultSpec, DeviceOutcome, ResultCode, TopicTimestamp
from edge.rules.device import DeviceRules

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    status: DeviceOutcome
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(eq=False)
class BridgedDevice:
    device_id: str
    profile: CompiledProfile
    rules: DeviceRules
    bad_payloads_total: int = 0
    last_bad_report: float | None = None
    last_command_id: int = 0  # the device-side id last handed out (uint16 / uint32 / string profiles)

    @property
    def prefix(self) -> str:
        settings = self.profile.profile.mqtt
        template = settings.prefix if settings else "xqdev/{device_id}"
        return fill_topic(template, prefix="", device_id=self.device_id)

    def topic(self, template: str) -> str:
        return fill_topic(template, prefix=self.prefix, device_id=self.device_id)


@dataclass
class _Route:
    device: BridgedDevice
    points: list[ConcretePoint] = field(default_factory=list)
    timestamp: TopicTimestamp | None = None
    momentary: list[ConcreteEvent] = field(default_factory=list)
    status: bool = False
    heartbeat: bool = False
    result: CommandResultSpec | None = None


def parse_status(payload: bytes) -> bool | None:
    """Online (True), offline (False) or not a status (None): ``online``, ``"offline"``, ``{"online": true}``,
    ``{"state": "online"}`` or ``{"status": "offline"}``."""
    text = payload.decode("utf-8", errors="replace").strip()
    value: Any = text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        pass
    if isinstance(value, dict):
        if isinstance(value.get("online"), bool):
            return bool(value["online"])
        value = value.get("state", value.get("status"))
    if isinstance(value, str) and value.lower() in ("online", "offline"):
        return value.lower() == "online"
    if isinstance(value, bool):
        return value
    return None


def wire_key(value: Scalar) -> str:
    """A device-side command id as a lookup key: the integer 17 and the text "17" are the same id."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _code(results: dict[int | str, ResultCode], code: Scalar) -> ResultCode | None:
    keys: list[int | str] = [code] if not isinstance(code, bool | float) else []
    text = wire_key(code)
    keys.append(text)
    try:
        keys.append(int(text))
    except ValueError:
        pass
    return next((results[k] for k in keys if k in results), None)


def result_outcome(spec: CommandResultSpec, data: dict[str, Any]) -> CommandOutcome:
    """The outcome a device's answer means under the profile: a result code mapped by ``results``, or
    ``ok_path`` true; the device's own reason text (``reason_path``) wins over the code's."""
    reason: str | None = None
    if spec.reason_path:
        try:
            reason = str(extract_scalar(data, spec.reason_path)) or None
        except Missing:
            reason = None
    if spec.result_path is not None:
        try:
            code = extract_scalar(data, spec.result_path)
        except Missing:
            return CommandOutcome("failed", reason or f"answer without a result code at {spec.result_path}")
        meaning = _code(spec.results, code)
        if meaning is None:
            return CommandOutcome("failed", reason or f"unknown result code {code!r}")
        return CommandOutcome(meaning.status, reason or meaning.reason)
    try:
        ok = extract_scalar(data, spec.ok_path)
    except Missing:
        ok = False
    return CommandOutcome("succeeded" if ok is True else "failed", reason)


class MqttBridge:
    def __init__(
        self,
        broker: MqttSettings,
        devices: list[BridgedDevice],
        clock: Clock,
        *,
        bad_payload_interval_s: float = 60.0,
    ) -> None:
        """``broker`` is the whole connection the devices' broker needs (account, TLS files, client id)."""
        self.url = broker.address
        self.devices = {d.device_id: d for d in devices}
        self.clock = clock
        self.bad_payload_interval_s = bad_payload_interval_s
        self.routes: dict[str, list[_Route]] = {}
        for d in devices:
            self._add_routes(d)
        self._client = MqttClient(
            broker,
            reconnect=True,
            on_message=self._on_message,
            on_connect=self._on_connect,
        )
        self._client.subscribe(self.routes)
        self._pending: dict[tuple[str, str], asyncio.Future[CommandOutcome]] = {}  # (device, device-side id)
        self._wire_ids: dict[tuple[str, str], Scalar] = {}  # (device, backend command id) → device-side id
        # Commands the gateway stopped waiting for: (device, device-side id) → (backend command id, forget at)
        self._late: dict[tuple[str, str], tuple[str, float]] = {}
        self.late_window_s = 600.0
        self.on_late_result: Callable[[str, str, CommandOutcome], None] | None = None
        """Called with (device, backend command id, outcome) for an answer that comes after the timeout."""
        self.latest: dict[str, bytes] = {}
        """Topic → the last payload on it (topics that carry points): what a probe decodes."""
        self._arrived = asyncio.Event()
        self.messages_total = 0
        self.bad_payloads_total = 0

    # --- routing table ----------------------------------------------------------------------------------
    def _route(self, topic: str, device: BridgedDevice) -> _Route:
        routes = self.routes.setdefault(topic, [])
        for r in routes:
            if r.device is device:
                return r
        r = _Route(device)
        routes.append(r)
        return r

    def _add_routes(self, d: BridgedDevice) -> None:
        for p in d.profile.points:
            if p.mqtt is not None:
                self._route(d.topic(p.mqtt.topic), d).points.append(p)
        for e in d.profile.events:
            if e.on_message is not None:
                self._route(d.topic(e.on_message.topic), d).momentary.append(e)
        settings = d.profile.profile.mqtt
        for ts in settings.timestamps if settings is not None else []:
            self._route(d.topic(ts.topic), d).timestamp = ts
        if settings is not None and settings.status_topic:
            self._route(d.topic(settings.status_topic), d).status = True
        if settings is not None and settings.command_result is not None:
            self._route(d.topic(settings.command_result.topic), d).result = settings.command_result
        hb = d.profile.profile.heartbeat
        if hb is not None and hb.topic:
            self._route(d.topic(hb.topic), d).heartbeat = True

    # --- lifecycle ---------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._client.connected

    async def run(self) -> None:
        """Connect (the client retries and reconnects on its own, resubscribing) and serve until cancelled."""
        self._client.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self._client.close())
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_result(CommandOutcome("failed", "gateway stopping"))

    async def wait_connected(self, timeout: float) -> bool:
        return await self._client.wait_connected(timeout)

    def _on_connect(self, _result: ConnectResult) -> None:
        logger.info("device bridge connected to %s, %d topics", self.url, len(self.routes))

    def _on_message(self, msg: Message) -> None:
        self.handle(msg.topic, msg.payload, msg.retain)

    async def wait_latest(self, topics: set[str], timeout_s: float) -> dict[str, bytes]:
        """The latest payload on each of ``topics``, waiting up to ``timeout_s`` for those not heard yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not topics <= self.latest.keys() and (left := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                break
        return {t: self.latest[t] for t in topics if t in self.latest}

    # --- messages ----------------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """One device message (runs on the event loop). Never raises on device input.

        ``retained``: the broker kept it from earlier (delivered on subscribe). Only the status topic's
        retained message (the device's own online / last will) decides presence; a retained data message is
        old news: it never counts as the device answering, and is ignored while the device is offline.
        """
        self.messages_total += 1
        routes = self.routes.get(topic, [])
        if any(r.points for r in routes):
            self.latest[topic] = payload
            self._arrived.set()
        for route in routes:
            try:
                self._handle_route(route, topic, payload, retained)
            except (ValueError, TypeError, KeyError, PathError) as exc:  # bad device input: log, count, go on
                self._bad_payload(route.device, topic, str(exc))

    def _handle_route(self, route: _Route, topic: str, payload: bytes, retained: bool = False) -> None:
        d = route.device
        if route.status:
            status: bool | None = parse_status(payload)
            if status is None:
                self._bad_payload(d, topic, "status is not online/offline")
            else:
                d.rules.set_status(status, "device reported " + ("online" if status else "offline (last will)"))
            if status is False or not (route.points or route.momentary or route.heartbeat or route.result):
                return
        if retained:
            if d.rules.online is False or route.result is not None or route.momentary:
                return  # stale: values of an offline device, old command results, events already raised
        else:
            d.rules.answered()
        if not (route.points or route.momentary or route.result):
            return  # heartbeat only: liveness is all it carries
        try:
            data = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._bad_payload(d, topic, f"not JSON: {exc}")
            return
        if not isinstance(data, dict):
            self._bad_payload(d, topic, f"expected a JSON object, got {type(data).__name__}")
            return
        if route.result is not None:
            self._command_result(d, route.result, data)
        if route.points:
            decoded = decode_points(route.points, data)
            ts = None
            if route.timestamp is not None and (decoded.values or decoded.invalid):
                ts, problem = checked_time(route.timestamp, data, self.clock.now())
                d.rules.flag_clock(problem)
            if decoded.values or decoded.invalid:
                d.rules.ingest(dict(decoded.values), ts=ts, invalid=decoded.invalid)
            elif decoded.missing and not route.momentary:
                self._bad_payload(d, topic, f"none of {', '.join(decoded.missing)} in the payload")
        for e in route.momentary:
            self._momentary(d, e, data)

    def _momentary(self, d: BridgedDevice, e: ConcreteEvent, data: dict[str, Any]) -> None:
        match = e.on_message
        assert match is not None
        if match.path is not None:
            try:
                value = extract(data, match.path)
            except Missing:
                return
            if match.eq is not None and value != match.eq:
                return
        detail: dict[str, Scalar] = {}
        for key, path in match.detail.items():
            try:
                detail[key] = extract_scalar(data, path)
            except Missing:
                continue
        d.rules.momentary(e, detail)

    def _command_result(self, d: BridgedDevice, spec: CommandResultSpec, data: dict[str, Any]) -> None:
        try:
            cid = wire_key(extract_scalar(data, spec.id_path))
        except Missing:
            self._bad_payload(d, spec.topic, f"command result without {spec.id_path}")
            return
        fut = self._pending.get((d.device_id, cid))
        late = self._late.pop((d.device_id, cid), None)
        if (fut is None or fut.done()) and late is not None and self.on_late_result is not None:
            outcome = result_outcome(spec, data)
            logger.warning("device %s: answer %s to command %s (id %s) came after the gateway's timeout",
                           d.device_id, outcome.status, late[0], cid)
            self.on_late_result(d.device_id, late[0], outcome)
            return
        if fut is None or fut.done():
            logger.warning("device %s: command result with id %s matches no command waiting for one (unknown, "
                           "already answered or timed out): %s", d.device_id, cid, json.dumps(data)[:300])
            return
        fut.set_result(result_outcome(spec, data))

    def wire_id(self, device_id: str, command_id: str) -> Scalar:
        """The id ``{command_id}`` becomes on the wire for this device: the backend's UUID, or a fresh
        device-side id (per the profile's ``mqtt.command_id``) remembered until the command ends."""
        d = self.devices[device_id]
        settings = d.profile.profile.mqtt
        kind = settings.command_id if settings is not None else "uuid"
        if kind == "uuid":
            return command_id
        existing = self._wire_ids.get((device_id, command_id))
        if existing is not None:
            return existing
        limit = 0xFFFF if kind == "uint16" else 0xFFFFFFFF
        for _ in range(1000):  # skip ids still waiting for an answer (never more than a few)
            d.last_command_id = d.last_command_id % limit + 1
            wire: Scalar = f"{d.last_command_id:08x}" if kind == "string" else d.last_command_id
            if (device_id, wire_key(wire)) not in self._pending and (device_id, wire_key(wire)) not in self._late:
                break
        self._wire_ids[(device_id, command_id)] = wire
        return wire

    def _bad_payload(self, d: BridgedDevice, topic: str, error: str) -> None:
        d.bad_payloads_total += 1
        self.bad_payloads_total += 1
        logger.warning("device %s: bad payload on %s: %s", d.device_id, topic, error)
        now = self.clock.monotonic()
        if d.last_bad_report is not None and now - d.last_bad_report < self.bad_payload_interval_s:
            return
        d.last_bad_report = now
        d.rules.emitter.event(
            d.device_id, "device.bad_payload", key="device.bad_payload", severity="warning", active=True,
            ts=self.clock.now(),
            detail={"topic": topic, "error": error[:200], "count": d.bad_payloads_total},
        )

    # --- commands ----------------------------------------------------------------------------------------
    async def request(self, device_id: str, publish: Publish, command_id: str, timeout_s: float) -> CommandOutcome:
        """Publish a command and wait for the device's result (correlated by id); TimeoutError after ``timeout_s``.

        A profile without a command_result topic: success once the broker has the publish.
        """
        d = self.devices[device_id]
        settings = d.profile.profile.mqtt
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[CommandOutcome] = loop.create_future()
        key = (device_id, wire_key(self.wire_id(device_id, command_id)))
        self._pending[key] = fut
        try:
            try:
                delivery = self._client.publish(publish.topic, json.dumps(publish.payload).encode(), qos=1)
            except MqttPublishError as exc:
                return CommandOutcome("failed", f"not sent: {exc}")
            if not delivery.accepted:
                return CommandOutcome("failed", f"device broker not reachable ({delivery.rc_text})")
            if settings is None or settings.command_result is None:
                try:
                    await delivery.wait(timeout_s)
                except MqttPublishError:
                    return CommandOutcome("failed", "not delivered")
                return CommandOutcome("succeeded", None)
            try:
                return await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:  # an answer may still come: remembered a while, then reported late
                now = self.clock.monotonic()
                self._late = {k: v for k, v in self._late.items() if v[1] > now}
                self._late[key] = (command_id, now + self.late_window_s)
                raise
        finally:
            self._pending.pop(key, None)
            self._wire_ids.pop((device_id, command_id), None)
