"""MicroPython ``machine`` on CPython, backed by a :class:`Board` the simulator drives.

Each simulated device has its own board; the runner selects it (:func:`select_board`) around every call
into that device's firmware, so ``machine.Pin(4)`` created during ``setup()`` belongs to that device.
Inputs are driven from the simulator (``board.set_pin(4, 1)``, ``board.set_adc(32, 40000)``,
``board.feed_uart(1, b"12345678\\n")``); outputs are read back (``board.pin_value(5)``).
"""

from __future__ import annotations

import threading
import time
from collections import deque


class ResetRequested(BaseException):
    """``machine.reset()`` was called: the runner restarts the firmware from ``setup()``."""


class Board:
    """The hardware of one simulated device."""

    def __init__(self, uid: bytes = b"\x00\x00\x00\x00\x00\x01") -> None:
        self.uid = uid
        self.pins: dict[int, int] = {}
        self.adc: dict[int, int] = {}
        self.uarts: dict[int, deque[bytes]] = {}
        self.resets = 0
        self.lock = threading.Lock()

    def set_pin(self, pin: int, value: int) -> None:
        self.pins[pin] = 1 if value else 0

    def pin_value(self, pin: int) -> int:
        return self.pins.get(pin, 0)

    def set_adc(self, pin: int, raw_u16: int) -> None:
        self.adc[pin] = max(0, min(65535, int(raw_u16)))

    def feed_uart(self, uart_id: int, data: bytes) -> None:
        with self.lock:
            self.uarts.setdefault(uart_id, deque()).append(data)


_state = threading.local()
_default = Board()


def select_board(board: Board) -> None:
    """Route this thread's ``machine`` calls to ``board``."""
    _state.board = board


def current_board() -> Board:
    board: Board = getattr(_state, "board", _default)
    return board


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id: int, mode: int = -1, pull: int = -1, *, value: int | None = None) -> None:
        self.id = id
        self.mode = mode
        self.board = current_board()
        if value is not None:
            self.board.set_pin(id, value)
        elif id not in self.board.pins:
            self.board.set_pin(id, 1 if pull == Pin.PULL_UP else 0)

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            return self.board.pin_value(self.id)
        self.board.set_pin(self.id, v)
        return None

    def __call__(self, v: int | None = None) -> int | None:
        return self.value(v)

    def on(self) -> None:
        self.board.set_pin(self.id, 1)

    def off(self) -> None:
        self.board.set_pin(self.id, 0)


class ADC:
    def __init__(self, pin: Pin | int) -> None:
        self.pin = pin.id if isinstance(pin, Pin) else pin
        self.board = current_board()

    def read_u16(self) -> int:
        return self.board.adc.get(self.pin, 0)


class UART:
    def __init__(self, id: int, baudrate: int = 9600, **_kw: object) -> None:
        self.id = id
        self.board = current_board()
        self._buf = b""

    def _pull(self) -> None:
        with self.board.lock:
            q = self.board.uarts.get(self.id)
            while q:
                self._buf += q.popleft()

    def any(self) -> int:
        self._pull()
        return len(self._buf)

    def read(self, n: int = -1) -> bytes | None:
        self._pull()
        if not self._buf:
            return None
        if n < 0:
            n = len(self._buf)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readline(self) -> bytes | None:
        self._pull()
        if not self._buf:
            return None
        i = self._buf.find(b"\n")
        if i < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[: i + 1], self._buf[i + 1 :]
        return out

    def write(self, data: bytes) -> int:
        return len(data)


class RTC:
    def datetime(self, dt: tuple[int, ...] | None = None) -> tuple[int, int, int, int, int, int, int, int]:
        t = time.localtime()
        return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday, t.tm_hour, t.tm_min, t.tm_sec, 0)


def unique_id() -> bytes:
    return current_board().uid


def reset() -> None:
    current_board().resets += 1
    raise ResetRequested()


def freq() -> int:
    return 240_000_000
