"""Devices replayed from samples: a device type nobody wrote a simulator for, simulated from its profile alone.

A layout entry's ``replay:`` (or, by default, a device whose type has no firmware or behaviour here) plays a
list of samples in a loop — by default the profile's own ``examples`` (the datasheet payloads and register
blocks ``xiaoqu profile validate`` already checked), or samples the layout gives:

- MQTT (:class:`ReplayMqttDevice`): publishes the current sample on its topic every ``period_s`` while the
  sample lasts (``hold_s``), then the next one. At connect it says ``online`` (retained) on the profile's
  status topic, with ``offline`` as its MQTT last will, and it publishes on the heartbeat topic. The
  profile's device time stamps (``mqtt.timestamps`` with a plain path such as ``$.ts``) are rewritten to
  the time of sending, so a datasheet's old time stamp does not flag the device's clock.
- Modbus (:class:`ReplayBehaviour`): the pymodbus server's tables hold the current sample's register
  blocks; the next sample replaces them after ``hold_s``.

A replayed device does not answer commands (nothing in a sample says what the device would do).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from contract.base import StrictModel
from device_profiles.mqtt_mapping import _steps, fill_topic
from device_profiles.schema import Profile, Table

logger = logging.getLogger(__name__)


class ReplayStep(StrictModel):
    """One sample: a profile example by name, or a payload (MQTT) or register blocks (Modbus) of its own."""

    example: str | None = Field(default=None, description="the name of one of the profile's examples")
    topic: str | None = Field(default=None, description="MQTT: topic template, e.g. '{prefix}/up'")
    payload: dict[str, Any] | str | None = Field(default=None, description="MQTT: the JSON payload")
    registers: dict[Table, dict[int, list[int]]] | None = Field(
        default=None, description="Modbus: table → start address → register (or bit) values"
    )
    hold_s: float | None = Field(default=None, gt=0, le=86_400, description="how long it lasts; default period_s")


class ReplaySpec(StrictModel):
    """``replay:`` of a layout device."""

    period_s: float = Field(default=5.0, gt=0, le=3600, description="MQTT: publish the current sample this often")
    steps: list[ReplayStep] = Field(default_factory=list, description="default: every example of the profile")
    loop: bool = Field(default=True, description="start again after the last sample (else keep the last one)")
    fresh_timestamps: bool = Field(default=True, description="rewrite the profile's time stamp paths to now")


@dataclass(frozen=True, slots=True)
class Sample:
    """A resolved step: what is sent (or held) and for how long."""

    name: str
    hold_s: float
    topic: str | None = None
    payload: Any = None
    registers: dict[Table, dict[int, list[int]]] | None = None


def resolve(profile: Profile, spec: ReplaySpec) -> list[Sample]:
    """The samples a device of ``profile`` replays; ``ValueError`` naming the step that does not fit."""
    mqtt = profile.protocol == "mqtt"
    if not mqtt and not profile.protocol.startswith("modbus"):
        raise ValueError(f"{profile.protocol} devices are not replayed (MQTT and Modbus only)")
    steps = spec.steps or [ReplayStep(example=e.name) for e in profile.examples
                           if (e.payload is not None) == mqtt]
    if not steps:
        raise ValueError(f"profile {profile.id} has no {'MQTT' if mqtt else 'register'} examples to replay: "
                         "add examples to the profile or give replay.steps")
    by_name = {e.name: e for e in profile.examples}
    samples: list[Sample] = []
    for i, step in enumerate(steps):
        where = f"replay.steps[{i}]"
        topic, payload, registers = step.topic, step.payload, step.registers
        name = step.example or f"step {i}"
        if step.example is not None:
            if topic is not None or payload is not None or registers is not None:
                raise ValueError(f"{where}: either an example's name or a sample of its own, not both")
            ex = by_name.get(step.example)
            if ex is None:
                raise ValueError(f"{where}: profile {profile.id} has no example {step.example!r}; "
                                 f"its examples: {', '.join(by_name) or 'none'}")
            topic, payload, registers = ex.topic, ex.payload, ex.registers
        if mqtt:
            if payload is None or topic is None or registers is not None:
                raise ValueError(f"{where}: an MQTT device replays a topic and a payload")
            if isinstance(payload, str):
                try:
                    payload = json.loads(payload)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{where}: payload is not JSON: {exc}") from None
        elif registers is None or payload is not None:
            raise ValueError(f"{where}: a Modbus device replays register blocks")
        samples.append(Sample(name, step.hold_s or spec.period_s, topic, payload, registers))
    return samples


def _stamp(unit: str) -> Any:
    now = time.time()
    if unit == "ms":
        return int(now * 1000)
    if unit == "s":
        return int(now)
    return datetime.now(UTC).isoformat()


def _set(payload: Any, path: str, value: Any) -> bool:
    """Set the node at a plain path (``$.a.b[0]``); False when the path is not plain or not in the payload."""
    steps = _steps(path)
    if not steps:
        return False
    cur = payload
    for step in steps[:-1]:
        try:
            cur = cur[step]
        except (KeyError, IndexError, TypeError):
            return False
    last = steps[-1]
    if isinstance(cur, dict) and isinstance(last, str) and last in cur:
        cur[last] = value
        return True
    if isinstance(cur, list) and isinstance(last, int) and -len(cur) <= last < len(cur):
        cur[last] = value
        return True
    return False


class ReplayMqttDevice:
    """One MQTT device replaying its samples from its own thread (paho runs the network loop)."""

    def __init__(self, device_id: str, profile: Profile, spec: ReplaySpec, host: str, port: int) -> None:
        self.id = device_id
        self.profile = profile
        self.spec = spec
        self.samples = resolve(profile, spec)
        self.host, self.port = host, port
        settings = profile.mqtt
        self.prefix = fill_topic(settings.prefix if settings else "xqdev/{device_id}", prefix="", device_id=device_id)
        self.status_topic = self.topic(settings.status_topic) if settings and settings.status_topic else None
        hb = profile.heartbeat
        self.heartbeat_topic = self.topic(hb.topic) if hb is not None and hb.topic else None
        self.stamps = [(self.topic(t.topic), t.path, t.unit) for t in (settings.timestamps if settings else [])]
        self.published: list[tuple[str, str]] = []
        """(sample name, topic) of every publication, in order."""
        self.silent = False
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = self._new_client()

    def _new_client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"replay-{self.id}-{uuid.uuid4().hex[:6]}")
        if self.status_topic:
            client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        return client

    def topic(self, template: str) -> str:
        return fill_topic(template, prefix=self.prefix, device_id=self.id)

    def _on_connect(self, client: Any, _u: Any, _f: Any, _reason: Any, _p: Any = None) -> None:
        if self.status_topic:
            client.publish(self.status_topic, "online", qos=1, retain=True)
        self._connected.set()

    def start(self, connect_timeout_s: float = 10.0) -> None:
        self.silent = False
        self._connected.clear()
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            logger.warning("%s: not connected to %s:%d yet; replaying anyway", self.id, self.host, self.port)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"replay-{self.id}", daemon=True)
        self._thread.start()

    def message(self, sample: Sample) -> tuple[str, bytes]:
        """The topic and payload a sample is sent as now (time stamps rewritten when asked)."""
        assert sample.topic is not None
        topic = self.topic(sample.topic)
        payload = copy.deepcopy(sample.payload)
        if self.spec.fresh_timestamps:
            for stamp_topic, path, unit in self.stamps:
                if stamp_topic == topic:
                    _set(payload, path, _stamp(unit))
        return topic, json.dumps(payload, ensure_ascii=False).encode()

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            sample = self.samples[index]
            until = time.monotonic() + sample.hold_s
            while not self._stop.is_set():
                topic, body = self.message(sample)
                self.client.publish(topic, body, qos=1)
                self.published.append((sample.name, topic))
                if self.heartbeat_topic:
                    self.client.publish(self.heartbeat_topic, json.dumps({"ts": _stamp("ms")}), qos=0)
                left = until - time.monotonic()
                if left <= 0 or self._stop.wait(min(self.spec.period_s, left)) or time.monotonic() >= until:
                    break
            if index + 1 < len(self.samples):
                index += 1
            elif self.spec.loop:
                index = 0

    def restart(self) -> None:
        """Power back on after :meth:`power_off`: a new connection, ``online`` again, the samples from the first."""
        self.client = self._new_client()
        self.start()

    def power_off(self) -> None:
        """The connection drops without a DISCONNECT: the broker publishes the last will (``offline``)."""
        self.silent = True
        self._halt()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.client.loop_stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.client.disconnect()
        self.client.loop_stop()


def replay_behaviour(samples: list[Sample], loop: bool = True) -> Any:
    """A factory for :class:`simulators.modbus.ModbusDevice`'s ``behaviour``: the tables hold the samples in turn."""
    from simulators.modbus import Behaviour, ModbusDevice

    class ReplayBehaviour(Behaviour):
        def __init__(self, device: ModbusDevice) -> None:
            super().__init__(device)
            self.samples = samples
            self.index = 0
            self.loop = loop

        def initialise(self) -> None:
            self.hold(0)
            if len(self.samples) > 1:
                self.spawn(self._cycle())

        def hold(self, index: int) -> None:
            """Write sample ``index``'s register blocks into the tables (growing a table when needed)."""
            self.index = index
            registers = self.samples[index].registers or {}
            for table, blocks in registers.items():
                regs = self.device.tables[table]
                for start, block in blocks.items():
                    if start + len(block) > len(regs):
                        regs.extend([0] * (start + len(block) - len(regs)))
                    regs[start : start + len(block)] = [int(v) for v in block]

        async def _cycle(self) -> None:
            while True:
                await self.device.clock.sleep(self.samples[self.index].hold_s)
                nxt = self.index + 1
                if nxt >= len(self.samples):
                    if not self.loop:
                        return
                    nxt = 0
                self.hold(nxt)

    return ReplayBehaviour
