"""Profiles carry examples and the loader runs them: a wrong path, type or enum fails `profile validate`
through the profile's own examples, at the example's line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_profiles import SHIPPED_DIR
from device_profiles.loader import ProfileError, load_profile
from xiaoqu.cli import app

VENDOR = SHIPPED_DIR / "gas_detector" / "tianlan-gv40.yaml"


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = VENDOR.read_text(encoding="utf-8")
    assert old in text
    out = tmp_path / "variant.yaml"
    out.write_text(text.replace(old, new), encoding="utf-8")
    return out


def test_the_shipped_vendor_profile_passes_its_examples() -> None:
    assert load_profile(VENDOR).examples


def test_a_positional_path_fails_through_the_examples(tmp_path: Path) -> None:
    # what the home-made subset forced on installers: the list position, which is not fixed
    bad = _variant(tmp_path, "$.data[?@.k=='gas'].v", "$.data[1].v")
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    text = str(err.value)
    assert "examples[1].expect.values.gas.concentration" in text and "expected 31.0, decoded 2.0" in text
    assert "expected but not raised: gas.alarm" in text
    line = next(i.line for i in err.value.issues if i.field == "examples[1].expect.values.gas.concentration")
    assert bad.read_text(encoding="utf-8").splitlines()[line - 1].strip().startswith("values:")


def test_a_wrong_enum_or_type_fails(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not one of the enum's values"):
        load_profile(_variant(tmp_path, '"on": open', '"open": open'))
    with pytest.raises(ProfileError, match="expected -67, decoded 23"):
        load_profile(_variant(tmp_path, "scale: 2, offset: -113", "scale: 1"))


def test_profile_validate_reports_the_example_and_exits_non_zero(tmp_path: Path) -> None:
    bad = _variant(tmp_path, "$.data[?@.k=='gas'].v", "$.data[0].v")
    result = CliRunner().invoke(app, ["profile", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.output and "example 'normal report" in result.output


def test_modbus_examples_decode_register_blocks(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(
        "id: t-mb\nvendor: t\nmodel: t\ndevice_type: t\nprotocol: modbus_tcp\npoints:\n"
        "  - {name: temp, unit: C, register: {table: input, address: 10, type: int16, scale: 0.1}}\n"
        "  - {name: mode, register: {table: holding, address: 0}, enum: {0: auto, 1: manual}}\n"
        "events:\n  - {type: temp.high, severity: major, when: {point: temp, gt: 50}}\n"
        "examples:\n"
        "  - {name: hot, registers: {input: {10: [612]}, holding: {0: [1]}},\n"
        "     expect: {values: {temp: 61.2, mode: manual}, events: [temp.high]}}\n"
        "  - {name: bad mode, registers: {holding: {0: [7]}}, expect: {bad: [mode], values: {mode: auto}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError) as err:
        load_profile(f)
    (issue,) = err.value.issues
    assert issue.line == 14 and issue.field == "examples[1].expect.values.mode"
    assert "does not convert" in issue.message
