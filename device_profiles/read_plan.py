"""Coalesce a device's Modbus points into the fewest read requests.

Points in the same table are sorted by address and merged into one block while the block stays within
the protocol limit and any gap between them is at most ``max_gap`` registers (reading a few unused
registers is cheaper than another round trip). Used by the gateway's pollers and the installer probe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contract.messages import Scalar
from device_profiles import modbus_codec
from device_profiles.compiled import ConcretePoint
from device_profiles.schema import ModbusSettings
from device_profiles.values import ConversionError

TABLE_ORDER = ("coil", "discrete_input", "holding", "input")


@dataclass(frozen=True, slots=True)
class ReadBlock:
    table: str
    start: int
    count: int
    points: tuple[ConcretePoint, ...]

    @property
    def end(self) -> int:
        return self.start + self.count


def plan_reads(points: Iterable[ConcretePoint], settings: ModbusSettings | None = None) -> list[ReadBlock]:
    """The read requests that cover every point, fewest first by table then address."""
    settings = settings or ModbusSettings()
    by_table: dict[str, list[ConcretePoint]] = {}
    for p in points:
        if p.register is not None:
            by_table.setdefault(p.register.table, []).append(p)
    blocks: list[ReadBlock] = []
    for table in TABLE_ORDER:
        pts = sorted(by_table.get(table, []), key=lambda p: p.span)
        limit = settings.max_bits_per_read if table in ("coil", "discrete_input") else settings.max_registers_per_read
        cur: list[ConcretePoint] = []
        start = end = 0
        for p in pts:
            addr, count = p.span
            if cur and addr - end <= settings.max_gap and max(end, addr + count) - start <= limit:
                cur.append(p)
                end = max(end, addr + count)
                continue
            if cur:
                blocks.append(ReadBlock(table, start, end - start, tuple(cur)))
            cur, start, end = [p], addr, addr + count
        if cur:
            blocks.append(ReadBlock(table, start, end - start, tuple(cur)))
    return blocks


def contiguous_runs(points: Iterable[ConcretePoint]) -> int:
    """How many runs of strictly contiguous (or overlapping) addresses the points form, per table.

    The lower bound of requests when no gap may be bridged; the poller's goal is to need no more.
    """
    runs = 0
    by_table: dict[str, list[tuple[int, int]]] = {}
    for p in points:
        if p.register is not None:
            by_table.setdefault(p.register.table, []).append(p.span)
    for spans in by_table.values():
        end = None
        for addr, count in sorted(spans):
            if end is None or addr > end:
                runs += 1
            end = max(end or 0, addr + count)
    return runs


@dataclass(frozen=True, slots=True)
class PointReading:
    point: ConcretePoint
    value: Scalar | None
    error: str | None = None
    raw: Scalar | None = None
    """The decoded raw value when it did not convert to the point's type (``error`` says why)."""


def decode_block(block: ReadBlock, words: Sequence[int] | Sequence[bool]) -> list[PointReading]:
    """Decode every point of a block from the words (registers or bits) the device returned."""
    out: list[PointReading] = []
    if len(words) < block.count:
        reason = f"device returned {len(words)} of {block.count} {block.table} values"
        return [PointReading(p, None, reason) for p in block.points]
    for p in block.points:
        assert p.register is not None
        offset = p.register.address - block.start
        chunk = words[offset : offset + p.register.count]
        try:
            raw = modbus_codec.decode(p.register, chunk, p.byte_order, p.word_order)
        except modbus_codec.CodecError as exc:
            out.append(PointReading(p, None, f"decode error: {exc}"))
            continue
        try:
            value = p.convert(raw)
        except ConversionError as exc:
            out.append(PointReading(p, None, str(exc), raw=raw))
            continue
        out.append(PointReading(p, value))
    return out
