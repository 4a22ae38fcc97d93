"""Modbus value codec: registers ⇄ values for every type, byte and word order, scale, offset, bits, enums."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from device_profiles.schema import REGISTER_COUNT, ByteOrder, DataType, RegisterSpec

_STRUCT: dict[str, str] = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
    "float32": "f", "float64": "d", "bool": "H",
}
_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1), "bool": (0, 1),
}


class CodecError(ValueError):
    """A value that cannot be decoded from, or encoded into, the registers it is given."""


def _to_bytes(registers: Sequence[int], byte_order: ByteOrder, word_order: ByteOrder) -> bytes:
    regs = list(registers) if word_order == "big" else list(reversed(registers))
    out = bytearray()
    for r in regs:
        if not 0 <= r <= 0xFFFF:
            raise CodecError(f"register value {r} is not 16-bit")
        hi, lo = r >> 8, r & 0xFF
        out += bytes((hi, lo)) if byte_order == "big" else bytes((lo, hi))
    return bytes(out)


def _from_bytes(data: bytes, byte_order: ByteOrder, word_order: ByteOrder) -> list[int]:
    regs = []
    for i in range(0, len(data), 2):
        a, b = data[i], data[i + 1]
        regs.append((a << 8) | b if byte_order == "big" else (b << 8) | a)
    return regs if word_order == "big" else list(reversed(regs))


def raw_from_registers(registers: Sequence[int], dtype: DataType, byte_order: ByteOrder = "big",
                       word_order: ByteOrder = "big") -> int | float:
    """The raw number the registers hold (before bits, scale, offset and enum)."""
    n = REGISTER_COUNT[dtype]
    if len(registers) != n:
        raise CodecError(f"{dtype} needs {n} register(s), got {len(registers)}")
    value: int | float = struct.unpack(">" + _STRUCT[dtype], _to_bytes(registers, byte_order, word_order))[0]
    return value


def registers_from_raw(raw: int | float, dtype: DataType, byte_order: ByteOrder = "big",
                       word_order: ByteOrder = "big") -> list[int]:
    """The registers that hold ``raw`` (the inverse of :func:`raw_from_registers`)."""
    if dtype.startswith("float"):
        try:
            data = struct.pack(">" + _STRUCT[dtype], float(raw))
        except (OverflowError, struct.error):
            raise CodecError(f"{raw!r} does not fit a {dtype}") from None
    else:
        if isinstance(raw, float) and not raw.is_integer():
            raise CodecError(f"{raw} is not a whole number for {dtype}")
        lo, hi = _RANGE[dtype]
        iv = int(raw)
        if not lo <= iv <= hi:
            raise CodecError(f"{iv} is out of range for {dtype} ({lo}..{hi})")
        data = struct.pack(">" + _STRUCT[dtype], iv)
    return _from_bytes(data, byte_order, word_order)


def decode(spec: RegisterSpec, words: Sequence[int] | Sequence[bool], byte_order: ByteOrder = "big",
           word_order: ByteOrder = "big", enum: dict[int, str] | None = None) -> bool | int | float | str:
    """Decode one point from its registers (or one bit, for coils and discrete inputs).

    ``byte_order``/``word_order`` are the profile defaults; the spec's own take precedence.
    """
    if spec.table in ("coil", "discrete_input"):
        if len(words) != 1:
            raise CodecError(f"a {spec.table} point needs 1 bit, got {len(words)}")
        return bool(words[0])
    bo = spec.byte_order or byte_order
    wo = spec.word_order or word_order
    raw = raw_from_registers([int(w) for w in words], spec.type, bo, wo)
    if spec.type == "bool":
        return bool(raw)
    if spec.bit is not None or spec.bits is not None:
        unsigned = int(raw) & ((1 << (16 * REGISTER_COUNT[spec.type])) - 1)
        if spec.bit is not None:
            return bool((unsigned >> spec.bit) & 1)
        assert spec.bits is not None
        raw = (unsigned >> spec.bits.start) & ((1 << spec.bits.length) - 1)
    if enum is not None:
        if isinstance(raw, float) and not math.isfinite(raw):
            raise CodecError(f"{raw} is not an enum value")
        key = int(raw)
        return enum.get(key, f"unknown({key})")
    if spec.scale == 1.0 and spec.offset == 0.0:
        return raw
    return raw * spec.scale + spec.offset


def encode(spec: RegisterSpec | None, value: bool | int | float | str, *, dtype: DataType = "uint16",
           table: str = "holding", scale: float = 1.0, offset: float = 0.0, byte_order: ByteOrder = "big",
           word_order: ByteOrder = "big", enum: dict[int, str] | None = None) -> list[int]:
    """Encode an engineering value for a write: scale/offset undone, enum names mapped back.

    With a ``spec`` (a point), its table, type, scale, offset and orders are used; otherwise the keywords.
    Coils encode to ``[0]`` or ``[1]``.
    """
    if spec is not None:
        dtype, table, scale, offset = spec.type, spec.table, spec.scale, spec.offset
        byte_order = spec.byte_order or byte_order
        word_order = spec.word_order or word_order
        if spec.bit is not None or spec.bits is not None:
            raise CodecError("a bit-field point cannot be written on its own (read-modify-write is not supported)")
    if table in ("coil", "discrete_input") or dtype == "bool":
        if isinstance(value, str):
            raise CodecError(f"{value!r} is not a bool")
        return [1 if value else 0]
    if isinstance(value, str):
        if enum is None:
            raise CodecError(f"{value!r} is not a number")
        reverse = {v: k for k, v in enum.items()}
        if value not in reverse:
            raise CodecError(f"{value!r} is not one of {', '.join(reverse)}")
        raw: float = reverse[value]
    else:
        if scale == 0 or not math.isfinite(scale):
            raise CodecError(f"scale {scale} cannot be undone for a write")
        try:
            raw = (float(value) - offset) / scale if (scale != 1.0 or offset != 0.0) else value
        except OverflowError:
            raise CodecError(f"{value!r} is too large") from None
    if not dtype.startswith("float") and isinstance(raw, float):
        if not math.isfinite(raw):
            raise CodecError(f"{value!r} is not finite")
        raw = round(raw)
    return registers_from_raw(raw, dtype, byte_order, word_order)
