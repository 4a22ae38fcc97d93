"""Read every point of a device once and say, per point, whether it worked and why not.

Modbus: the points are read in the same coalesced blocks the poller uses; when a block fails with an
exception response, each of its points is read alone so the report names exactly which address is
wrong. MQTT: the device's topics are subscribed for a window and every point is looked for.

The same reading and decoding serve ``xiaoqu onboard probe`` (its own connection, on the gateway box) and the
gateway's probe command (:mod:`edge.commands.probe`: through the running poller's link, or the MQTT
bridge's latest messages), whose results go up as :class:`contract.ProbePoint` on the command's ack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from contract.messages import ProbePoint, Scalar
from device_profiles import CompiledProfile, ConcretePoint, Profile
from device_profiles.mqtt_mapping import Missing, PathError, extract_scalar, fill_topic
from device_profiles.read_plan import PointReading, ReadBlock, decode_block, plan_reads
from device_profiles.values import ConversionError

logger = logging.getLogger(__name__)

EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "device failure",
    5: "acknowledge", 6: "device busy", 10: "gateway path unavailable", 11: "gateway target failed to respond",
}


@dataclass(frozen=True, slots=True)
class PointResult:
    name: str
    label: str | None
    source: str
    value: Scalar | None
    unit: str | None
    error: str | None
    shown: str = ""
    """The value as the installer reads it (at the point's precision)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_contract(self) -> ProbePoint:
        return ProbePoint(name=self.name, label=self.label, source=self.source[:512], value=self.value,
                          shown=self.shown[:128], unit=self.unit, ok=self.ok,
                          reason=None if self.error is None else self.error[:512])


@dataclass(slots=True)
class ProbeReport:
    profile_id: str
    target: str
    results: list[PointResult] = field(default_factory=list)
    connect_error: str | None = None
    requests: int = 0

    @property
    def ok(self) -> bool:
        return self.connect_error is None and bool(self.results) and all(r.ok for r in self.results)

    @property
    def failed(self) -> list[PointResult]:
        return [r for r in self.results if not r.ok]

    def verdict(self) -> str | None:
        """None when every point passed; else one line saying what failed (the reason of a failed ack)."""
        if self.connect_error is not None:
            return self.connect_error
        if not self.results:
            return "the profile has no points to probe"
        bad = self.failed
        if not bad:
            return None
        names = ", ".join(r.name for r in bad[:5]) + (", …" if len(bad) > 5 else "")
        return f"{len(bad)} of {len(self.results)} points failed: {names}"


def point_result(p: ConcretePoint, source: str, value: Scalar | None, error: str | None) -> PointResult:
    """One point's verdict: an error, or a value outside the point's plausible range, is a FAIL with the reason."""
    if error is None:
        error = p.implausible(value)
    return PointResult(p.name, p.label, source, value, p.unit, error, p.display(value))


def _result(reading: PointReading) -> PointResult:
    return point_result(reading.point, reading.point.source, reading.value, reading.error)


Words = list[int] | list[bool]
ReadFn = Callable[[str, int, int], Awaitable[tuple[Words | None, str | None]]]
"""Read ``count`` items of ``table`` from ``start``: (words, None), or (None, the reason it failed)."""


async def probe_blocks(blocks: Iterable[ReadBlock], read: ReadFn) -> list[PointResult]:
    """Read each block once and decode it; a block the device refuses is read point by point so the report
    names exactly which address is wrong; a timeout fails the block's points without more requests."""
    results: list[PointResult] = []
    for block in blocks:
        words, error = await read(block.table, block.start, block.count)
        if words is not None:
            results.extend(_result(r) for r in decode_block(block, words))
            continue
        if error and error.startswith(("timeout", "link error")):
            results.extend(_result(PointReading(p, None, error)) for p in block.points)
            continue
        for p in block.points:  # find exactly which points are at fault: read each one alone
            assert p.register is not None
            single = ReadBlock(block.table, p.register.address, p.register.count, (p,))
            w, e = await read(single.table, single.start, single.count)
            if w is None:
                results.append(_result(PointReading(p, None, e)))
            else:
                results.extend(_result(r) for r in decode_block(single, w))
    return results


async def probe_modbus(
    profile: Profile, host: str, port: int, unit: int, timeout_s: float | None = None
) -> ProbeReport:
    """Probe a Modbus TCP device: every point read once, decoded with the profile."""
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException

    compiled = CompiledProfile(profile)
    settings = profile.modbus
    timeout = timeout_s or (settings.timeout_s if settings else 1.0)
    report = ProbeReport(profile.id, f"modbus://{host}:{port} unit {unit}")
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0, reconnect_delay=0)
    try:
        if not await client.connect():
            report.connect_error = f"cannot connect to {host}:{port} (refused or no answer within {timeout:g}s)"
            return report

        async def read(table: str, start: int, count: int) -> tuple[Words | None, str | None]:
            report.requests += 1
            fn = {
                "coil": client.read_coils, "discrete_input": client.read_discrete_inputs,
                "holding": client.read_holding_registers, "input": client.read_input_registers,
            }[table]
            try:
                resp = await fn(start, count=count, device_id=unit)
            except ModbusException as exc:
                text = str(exc)
                if "timeout" in text.lower() or "no response" in text.lower():
                    return None, f"timeout: no answer within {timeout:g}s"
                return None, f"link error: {text}"
            if resp.isError():
                code = getattr(resp, "exception_code", 0)
                return None, f"Modbus exception {code}: {EXCEPTION_NAMES.get(code, 'unknown')}"
            if table in ("coil", "discrete_input"):
                return list(resp.bits[:count]), None
            return list(resp.registers), None

        report.results = await probe_blocks(plan_reads(compiled.points, settings), read)
    finally:
        client.close()
    return report


def mqtt_topics(
    compiled: CompiledProfile, device_id: str, prefix: str | None = None
) -> list[tuple[str, ConcretePoint]]:
    """Each point of the device with the topic it is read from (templates filled), in the profile's order."""
    if prefix is None:
        prefix = fill_topic(compiled.profile.mqtt.prefix if compiled.profile.mqtt else "xqdev/{device_id}",
                            prefix="", device_id=device_id)
    out: list[tuple[str, ConcretePoint]] = []
    for p in compiled.points:
        assert p.mqtt is not None
        out.append((fill_topic(p.mqtt.topic, prefix=prefix, device_id=device_id), p))
    return out


def decode_payloads(
    points: Iterable[tuple[str, ConcretePoint]], payloads: Mapping[str, bytes | bytearray], missing: str
) -> list[PointResult]:
    """Each point from the latest payload on its topic; ``missing`` says why a topic has none
    (``{topic}`` is filled in)."""
    results: list[PointResult] = []
    for topic, p in points:
        assert p.mqtt is not None
        raw = payloads.get(topic)
        value: Scalar | None = None
        error: str | None = None
        if raw is None:
            error = missing.format(topic=topic)
        else:
            try:
                value = p.convert(extract_scalar(json.loads(raw), p.mqtt.path))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                error = f"payload on {topic} is not JSON: {exc}"
            except (Missing, PathError) as exc:
                error = f"nothing at {p.mqtt.path} in the payload on {topic} ({exc})"
            except ConversionError as exc:
                error = f"{p.mqtt.path} on {topic}: {exc}"
        results.append(point_result(p, f"{topic} {p.mqtt.path}", value, error))
    return results


async def probe_mqtt(profile: Profile, url: str, device_id: str, window_s: float = 10.0) -> ProbeReport:
    """Probe an MQTT device: listen on its topics for ``window_s`` (retained state counts) and decode."""
    from contract.mqtt import Message, MqttClient, MqttError, MqttSettings

    points = mqtt_topics(CompiledProfile(profile), device_id)
    topics = {t for t, _ in points}
    report = ProbeReport(profile.id, f"{url} device {device_id}")
    payloads: dict[str, bytes | bytearray] = {}
    got_all = asyncio.Event()

    def on_message(msg: Message) -> None:
        payloads[msg.topic] = msg.payload
        if set(payloads) >= topics:
            got_all.set()

    try:
        settings = MqttSettings.from_url(url, client_id=f"xq-probe-{device_id}-{time.monotonic_ns()}")
        client = MqttClient(settings, reconnect=False, on_message=on_message)
    except (ValueError, MqttError) as exc:
        report.connect_error = f"cannot connect to broker {url}: {exc}"
        return report
    try:
        client.subscribe(topics)
        await client.connect()
        try:
            await asyncio.wait_for(got_all.wait(), window_s)
        except TimeoutError:
            pass
    except MqttError as exc:
        report.connect_error = f"cannot connect to broker {url}: {exc}"
        return report
    finally:
        await client.close()
    report.results = decode_payloads(points, payloads, f"no message on {{topic}} within {window_s:g}s")
    return report
