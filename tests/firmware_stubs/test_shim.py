"""The CPython shim behaves like the MicroPython modules the firmware relies on."""

from __future__ import annotations

from firmware_stubs import shim

shim.install()

import machine  # noqa: E402
import ubinascii  # noqa: E402
import uhashlib  # noqa: E402
import ujson  # noqa: E402
import utime  # noqa: E402


def test_ticks_diff_survives_wraparound() -> None:
    period = utime.TICKS_PERIOD
    assert utime.ticks_diff(5, period - 5) == 10
    assert utime.ticks_diff(period - 5, 5) == -10
    assert utime.ticks_add(period - 1, 2) == 1
    a = utime.ticks_ms()
    utime.sleep_ms(5)
    assert utime.ticks_diff(utime.ticks_ms(), a) >= 5


def test_boards_are_separate_per_device() -> None:
    b1, b2 = machine.Board(b"\x01" * 6), machine.Board(b"\x02" * 6)
    machine.select_board(b1)
    p1 = machine.Pin(4, machine.Pin.IN)
    u1 = machine.UART(1)
    assert machine.unique_id() == b"\x01" * 6
    machine.select_board(b2)
    p2 = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
    b1.set_pin(4, 1)
    b1.feed_uart(1, b"1234\n5678\n")
    assert p1.value() == 1 and p2.value() == 1  # p2 pulled up on its own board
    b2.set_pin(4, 0)
    assert p1.value() == 1 and p2.value() == 0
    assert u1.any() and u1.readline() == b"1234\n" and u1.readline() == b"5678\n" and u1.readline() is None
    adc = machine.ADC(machine.Pin(32))
    b2.set_adc(32, 70000)
    assert adc.read_u16() == 65535


def test_hash_and_json_helpers_match_micropython_shapes() -> None:
    h = uhashlib.sha256(b"salt:")
    h.update(b"1234")
    assert len(h.digest()) == 32
    assert ubinascii.hexlify(b"\x01\xff") == b"01ff"
    assert ujson.dumps({"a": 1, "b": [True]}) == '{"a":1,"b":[true]}'
    assert ujson.loads(b'{"x": null}') == {"x": None}
