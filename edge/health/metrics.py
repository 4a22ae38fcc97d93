"""Health figures, reported up (contract.HealthReport via the outbox) and served on 127.0.0.1 /metrics.

Gauges are refreshed from their sources right before each scrape (a custom collector), so nothing has
to remember to update them; counters are incremented where things happen.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contract.messages import GatewayHealth
from edge.rules.emitter import OutboxLike

logger = logging.getLogger(__name__)


def p50(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _nothing_awaiting() -> Mapping[str, int]:
    return {}


@dataclass
class HealthSources:
    """Where the figures come from (callables, read at report/scrape time)."""

    outbox: OutboxLike
    uplink_connected: Callable[[], bool]
    devices_online: Callable[[], tuple[int, int]]  # (online, offline)
    poll_latencies_s: Callable[[], list[float]]
    modbus_requests: Callable[[], int]
    awaiting_receipt: Callable[[], Mapping[str, int]] = _nothing_awaiting
    """Outbox rows per lane the broker acknowledged that wait for the backend's receipt."""
    config_version: Callable[[], int | None] = lambda: None  # the backend-pushed config in force


def build_health(src: HealthSources) -> GatewayHealth:
    online, offline = src.devices_online()
    latency = p50(src.poll_latencies_s())
    return GatewayHealth(
        outbox_depth=dict(src.outbox.depth()),
        outbox_bytes=src.outbox.bytes_used(),
        uplink_connected=src.uplink_connected(),
        devices_online=online,
        devices_offline=offline,
        poll_latency_ms_p50=None if latency is None else round(latency * 1000, 3),
        dropped_telemetry_total=src.outbox.dropped_telemetry_total(),
        awaiting_receipt=sum(src.awaiting_receipt().values()),
        config_version=src.config_version(),
    )


class _Gauges(Collector):
    def __init__(self, src: HealthSources) -> None:
        self.src = src

    def collect(self) -> Iterable[Any]:
        depth = GaugeMetricFamily("xq_outbox_depth", "Messages waiting in the outbox", labels=["lane"])
        for lane, n in self.src.outbox.depth().items():
            depth.add_metric([lane], n)
        yield depth
        awaiting = GaugeMetricFamily(
            "xq_outbox_awaiting_receipt", "Outbox rows acknowledged by the broker, waiting for the backend's receipt",
            labels=["lane"],
        )
        for name, count in self.src.awaiting_receipt().items():
            awaiting.add_metric([name], count)
        yield awaiting
        yield GaugeMetricFamily("xq_outbox_bytes", "Bytes used by the outbox", value=self.src.outbox.bytes_used())
        yield GaugeMetricFamily("xq_uplink_connected", "1 when the uplink is connected",
                                value=1 if self.src.uplink_connected() else 0)
        online, offline = self.src.devices_online()
        devices = GaugeMetricFamily("xq_devices", "Devices by state", labels=["state"])
        devices.add_metric(["online"], online)
        devices.add_metric(["offline"], offline)
        yield devices
        yield GaugeMetricFamily("xq_dropped_telemetry_total", "Telemetry dropped by the outbox budget",
                                value=self.src.outbox.dropped_telemetry_total())
        yield GaugeMetricFamily("xq_modbus_requests", "Modbus requests sent since start",
                                value=self.src.modbus_requests())


class GatewayMetrics:
    def __init__(self, src: HealthSources) -> None:
        self.src = src
        self.registry = CollectorRegistry()
        self.registry.register(_Gauges(src))
        self.poll_latency = Histogram(
            "xq_poll_latency_seconds", "Time to read all blocks of one device",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry,
        )
        self.events = Counter("xq_events", "Events raised, by severity", ["severity"], registry=self.registry)
        self.commands = Counter("xq_commands", "Command outcomes", ["status"], registry=self.registry)
        self._server: Any = None

    def serve(self, port: int) -> int:
        """Serve /metrics on 127.0.0.1:port (0 = any free port); returns the port."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        actual: int = server.server_address[1]
        logger.info("metrics on http://127.0.0.1:%d/metrics", actual)
        return actual

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
