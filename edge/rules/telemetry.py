"""Telemetry batching: samples are gathered into TelemetryBatch messages of up to ``max_points`` and
flushed at least every ``flush_s`` seconds, so the outbox sees a few messages per second, not one per point."""

from __future__ import annotations

import logging

from contract.clock import Clock
from contract.messages import PointSample
from edge.rules.emitter import Emitter

logger = logging.getLogger(__name__)


class TelemetryBatcher:
    def __init__(self, emitter: Emitter, clock: Clock, *, max_points: int = 500, flush_s: float = 1.0) -> None:
        self.emitter = emitter
        self.clock = clock
        self.max_points = max_points
        self.flush_s = flush_s
        self._pending: list[PointSample] = []
        self.points_total = 0
        self.batches_total = 0

    def add(self, sample: PointSample) -> None:
        self._pending.append(sample)
        if len(self._pending) >= self.max_points:
            self.flush()

    def extend(self, samples: list[PointSample]) -> None:
        for s in samples:
            self.add(s)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self.emitter.telemetry(batch, ts=max(s.ts for s in batch))
        self.points_total += len(batch)
        self.batches_total += 1

    async def run(self) -> None:
        """Flush every ``flush_s`` until cancelled (then flush what is left)."""
        try:
            while True:
                await self.clock.sleep(self.flush_s)
                self.flush()
        finally:
            self.flush()
