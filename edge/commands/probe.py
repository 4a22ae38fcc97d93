"""The gateway's probe command (:data:`contract.PROBE_COMMAND`): read every point of one configured device
once and answer with pass / fail per point, the decoded value and the reason of each failure.

- Modbus: the profile's read blocks go through the device's running poller — its link, under its lock —
  so a probe takes its turn between polls like a command's write and never opens a second connection to
  a device that may accept only one. The poller's schedule is not touched.
- MQTT: the latest message the bridge has on each of the device's topics (retained state included); a
  topic not heard yet is waited for up to ``window_s``.

The reading and decoding are those of ``xiaoqu onboard probe`` (:mod:`edge.onboard.probe`).
"""

from __future__ import annotations

import logging

from device_profiles.read_plan import plan_reads
from edge.commands.executor import CommandExecutor, ModbusTarget, MqttTarget
from edge.modbus.links import LinkError, ReadRefused
from edge.onboard.probe import ProbeReport, Words, decode_payloads, mqtt_topics, point_result, probe_blocks

logger = logging.getLogger(__name__)


class ProbeRefused(Exception):
    """The gateway cannot probe this device (unknown, or a camera); the message is the reason."""


async def probe_device(executor: CommandExecutor, device_id: str, window_s: float = 5.0) -> ProbeReport:
    entry = executor.devices.get(device_id)
    if entry is None:
        raise ProbeRefused(f"this gateway serves no device {device_id!r}")
    target = entry.target
    profile = entry.profile
    if isinstance(target, ModbusTarget):
        poller = target.poller
        report = ProbeReport(profile.id, f"{poller.name} unit {target.unit}")

        async def read(table: str, start: int, count: int) -> tuple[Words | None, str | None]:
            report.requests += 1
            try:
                result = await poller.link.read(table, start, count, target.unit)
            except LinkError as exc:
                text = str(exc)
                if "timeout" in text.lower() or "no response" in text.lower():
                    return None, f"timeout: {text}"
                return None, f"link error: {text}"
            if isinstance(result, ReadRefused):
                return None, result.reason
            return result.words, None

        async with poller.lock:  # between polls and writes, never interleaved with them
            if not poller.link.connected:
                try:
                    await poller.link.connect()
                except LinkError as exc:  # unplugged, wrong address: every point fails with that reason
                    report.connect_error = str(exc)
                    report.results = [point_result(p, p.source, None, report.connect_error) for p in profile.points]
                    return report
            report.results = await probe_blocks(plan_reads(profile.points, profile.profile.modbus), read)
        return report
    if isinstance(target, MqttTarget):
        bridge = target.bridge
        points = mqtt_topics(profile, device_id, prefix=bridge.devices[device_id].prefix)
        report = ProbeReport(profile.id, f"{bridge.url} device {device_id}")
        payloads = await bridge.wait_latest({t for t, _ in points}, window_s)
        report.results = decode_payloads(
            points, payloads, f"no message on {{topic}} (none kept by the gateway, none within {window_s:g} s)")
        return report
    raise ProbeRefused(f"device {device_id!r} ({profile.id}) has no points the gateway reads")
