"""Time, injectable: a monotonic clock for durations and a wall clock for message timestamps."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds for durations (never goes back)."""
        ...

    def now(self) -> datetime:
        """Aware wall time for message timestamps."""
        ...

    async def sleep(self, seconds: float) -> None:
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
