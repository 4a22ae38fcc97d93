"""MicroPython ``utime`` on CPython: wrapping ``ticks_*`` (30-bit period like the ports), sleeps, time."""

from __future__ import annotations

import time as _time

TICKS_PERIOD = 1 << 30
_TICKS_MAX = TICKS_PERIOD - 1
_TICKS_HALF = TICKS_PERIOD // 2
_T0 = _time.monotonic()


def ticks_ms() -> int:
    return int((_time.monotonic() - _T0) * 1000) & _TICKS_MAX


def ticks_us() -> int:
    return int((_time.monotonic() - _T0) * 1_000_000) & _TICKS_MAX


def ticks_add(ticks: int, delta: int) -> int:
    return (ticks + delta) & _TICKS_MAX


def ticks_diff(ticks1: int, ticks2: int) -> int:
    """Signed difference ``ticks1 - ticks2`` that survives wrap-around."""
    return ((ticks1 - ticks2 + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def sleep(seconds: float) -> None:
    _time.sleep(seconds)


def sleep_ms(ms: int) -> None:
    _time.sleep(ms / 1000)


def sleep_us(us: int) -> None:
    _time.sleep(us / 1_000_000)


def time() -> int:
    return int(_time.time())


def time_ns() -> int:
    return _time.time_ns()


def localtime(secs: float | None = None) -> tuple[int, int, int, int, int, int, int, int]:
    t = _time.localtime(secs)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_wday, t.tm_yday)
