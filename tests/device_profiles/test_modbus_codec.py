import math
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from device_profiles import modbus_codec
from device_profiles.schema import REGISTER_COUNT, RegisterSpec

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
orders = st.sampled_from(["big", "little"])


@given(st.sampled_from(sorted(INT_RANGES)), st.data(), orders, orders)
def test_integer_round_trip(dtype, data, bo, wo):
    lo, hi = INT_RANGES[dtype]
    value = data.draw(st.integers(lo, hi))
    regs = modbus_codec.registers_from_raw(value, dtype, bo, wo)
    assert len(regs) == REGISTER_COUNT[dtype]
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert modbus_codec.raw_from_registers(regs, dtype, bo, wo) == value


@given(st.floats(allow_nan=False, width=32), orders, orders)
def test_float32_round_trip(value, bo, wo):
    regs = modbus_codec.registers_from_raw(value, "float32", bo, wo)
    assert modbus_codec.raw_from_registers(regs, "float32", bo, wo) == value


@given(st.floats(allow_nan=False), orders, orders)
def test_float64_round_trip(value, bo, wo):
    regs = modbus_codec.registers_from_raw(value, "float64", bo, wo)
    assert modbus_codec.raw_from_registers(regs, "float64", bo, wo) == value


def test_known_layouts():
    """The four byte/word orders of 0x11223344 as vendors document them (ABCD, CDAB, BADC, DCBA)."""
    v = 0x11223344
    assert modbus_codec.registers_from_raw(v, "uint32", "big", "big") == [0x1122, 0x3344]
    assert modbus_codec.registers_from_raw(v, "uint32", "big", "little") == [0x3344, 0x1122]
    assert modbus_codec.registers_from_raw(v, "uint32", "little", "big") == [0x2211, 0x4433]
    assert modbus_codec.registers_from_raw(v, "uint32", "little", "little") == [0x4433, 0x2211]
    f = modbus_codec.registers_from_raw(1.5, "float32")
    assert struct.unpack(">f", struct.pack(">HH", *f))[0] == 1.5


@given(st.integers(-30000, 30000), st.sampled_from([0.1, 0.01, 0.5, 2.0]), st.sampled_from([0.0, -40.0, 10.0]))
def test_scaled_round_trip(raw, scale, offset):
    spec = RegisterSpec(table="holding", address=0, type="int16", scale=scale, offset=offset)
    value = modbus_codec.decode(spec, [raw & 0xFFFF])
    assert isinstance(value, float)
    assert math.isclose(value, raw * scale + offset, rel_tol=1e-9, abs_tol=1e-9)
    assert modbus_codec.encode(spec, value) == [raw & 0xFFFF]


@given(st.integers(0, 0xFFFF), st.integers(0, 15))
def test_bit_extraction(word, bit):
    spec = RegisterSpec(table="input", address=0, bit=bit)
    assert modbus_codec.decode(spec, [word]) is bool((word >> bit) & 1)


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 31), st.integers(1, 8))
def test_bit_field(value, start, length):
    assume(start + length <= 32)
    spec = RegisterSpec(table="input", address=0, type="uint32", bits={"start": start, "length": length})
    regs = modbus_codec.registers_from_raw(value, "uint32")
    assert modbus_codec.decode(spec, regs) == (value >> start) & ((1 << length) - 1)


def test_enum_decode_and_encode():
    spec = RegisterSpec(table="holding", address=0)
    states = {0: "stopped", 1: "up", 2: "down"}
    assert modbus_codec.decode(spec, [2], enum=states) == "down"
    assert modbus_codec.decode(spec, [9], enum=states) == "unknown(9)"
    assert modbus_codec.encode(spec, "up", enum=states) == [1]
    with pytest.raises(modbus_codec.CodecError, match="not one of"):
        modbus_codec.encode(spec, "sideways", enum=states)


def test_coils_and_errors():
    coil = RegisterSpec(table="coil", address=3, type="bool")
    assert modbus_codec.decode(coil, [True]) is True
    assert modbus_codec.encode(coil, False) == [0]
    with pytest.raises(modbus_codec.CodecError, match="out of range"):
        modbus_codec.registers_from_raw(70000, "uint16")
    with pytest.raises(modbus_codec.CodecError, match="needs 2 register"):
        modbus_codec.raw_from_registers([1], "float32")
    with pytest.raises(modbus_codec.CodecError, match="bit-field"):
        modbus_codec.encode(RegisterSpec(table="holding", address=0, bit=2), True)
    with pytest.raises(ValueError, match="holds one bit"):
        RegisterSpec(table="coil", address=0, type="uint16")
