"""Time, injectable — the one clock protocol of the gateway and the backend.

``monotonic`` measures durations (never goes back), ``now`` is aware UTC wall time for timestamps, and
``sleep`` waits. :class:`SystemClock` is the real thing; :class:`FakeClock` only moves when told to (or
when slept on), so SLA, escalation and debounce tests never sleep in real time.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds for durations (never goes back)."""
        ...

    def now(self) -> datetime:
        """Aware wall time (UTC) for message and row timestamps."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time that moves only with :meth:`advance`, :meth:`set` or :meth:`sleep` (which also yields to the
    event loop for ``real_yield_s`` so real IO can progress)."""

    def __init__(self, start: datetime | None = None, *, real_yield_s: float = 0.0) -> None:
        self._now = start or datetime.now(UTC)
        self._t = 1000.0
        self.real_yield_s = real_yield_s

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(self.real_yield_s)

    def advance(self, delta: timedelta | float) -> datetime:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        self._now += step
        self._t += step.total_seconds()
        return self._now

    def set(self, when: datetime) -> None:
        self._t += (when - self._now).total_seconds()
        self._now = when
