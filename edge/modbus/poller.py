"""One poller per Modbus connection or bus: its devices are polled in turn over one client.

- Reads are the coalesced blocks of :func:`device_profiles.read_plan.plan_reads` (fewest requests).
- Each device has its own interval; the poller sleeps until the next device is due.
- A link error (no answer, refused, reset) backs off exponentially up to a cap — per device for a
  device that times out, for the whole bus when the connection itself cannot be made — and never ends
  the poller: it keeps trying until cancelled.
- A Modbus exception response marks that block's points bad-quality; the device answered, so it stays
  online.
- Writes (commands) go through the same lock, between polls, never interleaved with a read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contract.clock import Clock
from contract.messages import Scalar
from device_profiles.commands import RegisterWrite
from device_profiles.mqtt_decode import Invalid
from device_profiles.read_plan import ReadBlock, decode_block
from edge.modbus.links import LinkError, ModbusLink, ReadRefused
from edge.rules.device import DeviceRules
from edge.watchdog import Heartbeat

logger = logging.getLogger(__name__)


class WriteFailed(Exception):
    """A command's write did not go through; the message is the reason reported up."""


@dataclass(eq=False)
class PolledDevice:
    device_id: str
    unit: int
    blocks: list[ReadBlock]
    interval_s: float
    rules: DeviceRules
    next_due: float = 0.0
    failures: int = 0


@dataclass
class PollStats:
    polls_total: int = 0
    polls_started: int = 0
    poll_requests_total: int = 0  # Modbus requests sent by completed polls (requests per poll = this / polls)
    poll_errors_total: int = 0
    refused_total: int = 0
    latencies_s: list[float] = field(default_factory=list)  # recent, bounded
    observers: list[Callable[[float], None]] = field(default_factory=list)

    def observe(self, latency_s: float) -> None:
        self.polls_total += 1
        self.latencies_s.append(latency_s)
        if len(self.latencies_s) > 1024:
            del self.latencies_s[:512]
        for fn in self.observers:
            fn(latency_s)


class BusPoller:
    def __init__(
        self,
        link: ModbusLink,
        devices: Sequence[PolledDevice],
        clock: Clock,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        stats: PollStats | None = None,
        request_timeout_s: float = 1.0,
    ) -> None:
        self.link = link
        self.devices = list(devices)
        self.clock = clock
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stats = stats or PollStats()
        self.lock = asyncio.Lock()
        self.bus_failures = 0
        self.connect_attempts = 0
        self.request_timeout_s = request_timeout_s
        self.steps = 0
        self.heartbeat = Heartbeat(f"poller {link.name}", clock.monotonic)
        """Pushed forward before every wait of the loop: a sleep until the next device is due, or a connect or
        poll bounded by the request timeout (a device that does not answer times out: progress, not a wedge)."""

    @property
    def name(self) -> str:
        return self.link.name

    def backoff(self, failures: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, failures - 1)))

    async def run(self) -> None:
        """Poll until cancelled. Nothing but cancellation ends this loop."""
        if not self.devices:
            return
        now = self.clock.monotonic()
        for i, d in enumerate(self.devices):  # spread the first polls over the first interval
            d.next_due = now + d.interval_s * i / len(self.devices)
        task = asyncio.current_task()
        try:
            while True:
                await self._step()
                self.steps += 1
                # Python 3.11's asyncio.wait_for (used inside pymodbus) can swallow a cancellation that races
                # with the answer; honour a pending cancel() here so the poller always stops when asked.
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
        finally:
            self.heartbeat.idle()
            self.link.close()

    def _bound_s(self, requests: int) -> float:
        """Longest a step of ``requests`` requests may take (a write may hold the lock for a few more)."""
        return self.request_timeout_s * (requests + 2) + 1.0

    async def _step(self) -> None:
        now = self.clock.monotonic()
        for d in self.devices:
            d.rules.check_liveness()
        dev = min(self.devices, key=lambda d: d.next_due)
        if dev.next_due > now:
            self.heartbeat.expect(dev.next_due - now + 1.0)
            await self.clock.sleep(dev.next_due - now)
            return
        self.heartbeat.expect(self._bound_s(len(dev.blocks) + 1))
        if not self.link.connected:
            self.connect_attempts += 1
            try:
                async with self.lock:
                    await self.link.connect()
            except LinkError as exc:
                self.bus_failures += 1
                delay = self.backoff(self.bus_failures)
                if self.bus_failures == 1 or self.bus_failures % 20 == 0:
                    logger.warning("%s (attempt %d, next in %.1f s)", exc, self.bus_failures, delay)
                for d in self.devices:
                    d.next_due = max(d.next_due, now + delay)
                return
            if self.bus_failures:
                logger.info("%s: connected again after %d failed attempts", self.name, self.bus_failures)
            self.bus_failures = 0
        await self.poll(dev)

    async def poll(self, dev: PolledDevice) -> None:
        """Read every block of one device once, hand the values to its rules, schedule the next poll."""
        started = time.perf_counter()
        self.stats.polls_started += 1
        sent = 0
        values: dict[str, Scalar | None] = {}
        bad: dict[str, str] = {}
        invalid: dict[str, Invalid] = {}
        async with self.lock:
            for block in dev.blocks:
                sent += 1
                try:
                    result = await self.link.read(block.table, block.start, block.count, dev.unit)
                except LinkError as exc:
                    self._device_failed(dev, str(exc))
                    return
                if isinstance(result, ReadRefused):
                    self.stats.refused_total += 1
                    for p in block.points:
                        bad[p.name] = result.reason
                    logger.debug("%s unit %d: %s %d+%d refused: %s", self.name, dev.unit, block.table,
                                 block.start, block.count, result.reason)
                    continue
                for reading in decode_block(block, result.words):
                    if reading.error is None:
                        values[reading.point.name] = reading.value
                    elif reading.raw is not None:  # read fine, but not a value of the point's type
                        invalid[reading.point.name] = Invalid(reading.raw, reading.error)
                    else:
                        bad[reading.point.name] = reading.error
        self.stats.poll_requests_total += sent
        self.stats.observe(time.perf_counter() - started)
        now = self.clock.monotonic()
        dev.failures = 0
        dev.rules.answered()
        dev.rules.ingest(values, bad=bad, invalid=invalid)
        dev.next_due = max(dev.next_due + dev.interval_s, now)

    def _device_failed(self, dev: PolledDevice, reason: str) -> None:
        self.stats.poll_errors_total += 1
        dev.failures += 1
        delay = max(dev.interval_s, self.backoff(dev.failures))
        if dev.failures == 1 or dev.failures % 20 == 0:
            logger.warning("unit %d (%s): %s (failure %d, next in %.1f s)", dev.unit, dev.device_id, reason,
                           dev.failures, delay)
        dev.next_due = self.clock.monotonic() + delay
        dev.rules.check_liveness()

    async def write(self, unit: int, writes: Sequence[RegisterWrite]) -> None:
        """Run a command's writes in order, serialised with polling; raise :class:`WriteFailed` with the reason."""
        async with self.lock:
            for w in writes:
                try:
                    refused = await self.link.write(w.table, w.address, w.values, unit)
                except LinkError as exc:
                    raise WriteFailed(f"write {w.table} {w.address}: {exc}") from None
                if refused is not None:
                    raise WriteFailed(f"write {w.table} {w.address}: {refused.reason}")
