"""Scenario time: seconds since the simulation started, running ``speed`` times faster than the wall clock."""

from __future__ import annotations

import asyncio
import time


class SimClock:
    """``now()`` is scenario seconds; ``sleep(s)`` waits ``s`` scenario seconds (``s / speed`` wall seconds)."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._t0 = time.monotonic()
        self.wall_start = time.time()

    def restart(self) -> None:
        self._t0 = time.monotonic()
        self.wall_start = time.time()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def wall(self) -> float:
        """Unix wall time now."""
        return time.time()

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(max(0.0, sim_seconds / self.speed))

    async def sleep_until(self, sim_time: float) -> None:
        await self.sleep(sim_time - self.now())
