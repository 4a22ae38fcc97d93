"""Gateway health: the periodic HealthReport and the local Prometheus /metrics endpoint."""

from edge.health.metrics import GatewayMetrics, HealthSources, build_health, p50

__all__ = ["GatewayMetrics", "HealthSources", "build_health", "p50"]
