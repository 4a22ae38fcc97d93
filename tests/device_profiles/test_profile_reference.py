"""The profile guide's list of allowed values matches the schema (the docs cannot drift from the code)."""

from __future__ import annotations

import typing
from pathlib import Path

from contract.messages import Severity
from device_profiles.schema import OPS, ArgSpec, ByteOrder, DataType, ModbusWrite, Protocol, Table

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "profile-modbus.md"


def _row(field: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    return next(line for line in text.splitlines() if line.startswith(f"| {field} |"))


def _values(literal: object) -> list[str]:
    """The allowed values of a Literal, or of a union of Literals (flattened in order)."""
    values: list[str] = []
    for arg in typing.get_args(literal):
        values.extend(_values(arg) if typing.get_args(arg) else [str(arg)])
    return values


def test_every_allowed_value_is_listed() -> None:
    cases = {
        "`protocol`": _values(Protocol),
        "`register.table`": _values(Table),
        "`register.type`": _values(DataType),
        "`byte_order`, `word_order`": _values(ByteOrder),
        "event `severity`": _values(Severity),
        "event condition operators": list(OPS),
        "command argument `type`": _values(ArgSpec.model_fields["type"].annotation),
        "command write `table`": _values(ModbusWrite.model_fields["table"].annotation),
    }
    for field, values in cases.items():
        row = _row(field)
        listed = [v for v in values if f"`{v}`" in row]
        assert listed == values, f"{field}: the guide misses {sorted(set(values) - set(listed))}"


def test_cdab_is_word_order_little() -> None:
    row = next(line for line in GUIDE.read_text(encoding="utf-8").splitlines() if line.startswith("| **CDAB**"))
    assert "| `big` | `little` |" in row
