"""Typed points: strings convert to the declared type, scale/offset and enum maps (string or integer keys),
and a value that does not convert is an error with the reason — alike for MQTT and Modbus."""

from __future__ import annotations

import pytest

from device_profiles import CompiledProfile, load_catalog
from device_profiles.mqtt_decode import decode_points
from device_profiles.read_plan import decode_block, plan_reads
from device_profiles.schema import Profile
from device_profiles.values import ConversionError, convert


@pytest.mark.parametrize(
    ("raw", "type_", "kw", "want"),
    [
        ("12.5", "float", {}, 12.5),
        (" 7 ", "int", {}, 7),
        ("23", "int", {"scale": 2, "offset": -113}, -67),
        (23, "float", {"scale": 0.1}, pytest.approx(2.3)),
        ("1", "bool", {}, True),
        ("OFF", "bool", {}, False),
        (0, "bool", {}, False),
        (12.0, "string", {}, "12"),
        ("2", "enum", {"enum": {0: "normal", 2: "high"}}, "high"),
        (2, "enum", {"enum": {"2": "high"}}, "high"),
        ("on", "enum", {"enum": {"on": "open", "off": "closed"}}, "open"),
        ("1", None, {}, "1"),  # no type: as the device sent it
        (4, None, {"enum": {4: "fault"}}, "fault"),
    ],
)
def test_convert(raw, type_, kw, want) -> None:
    assert convert(raw, type_, **kw) == want


@pytest.mark.parametrize(
    ("raw", "type_", "kw", "reason"),
    [
        ("n/a", "float", {}, "is not a number"),
        ("nan", "float", {}, "finite"),
        ("2.5", "int", {}, "whole number"),
        ("maybe", "bool", {}, "is not a bool"),
        (True, "float", {}, "is a bool"),
        ("7", "enum", {"enum": {0: "normal"}}, "not one of the enum's values (0)"),
    ],
)
def test_values_that_do_not_convert_say_why(raw, type_, kw, reason) -> None:
    with pytest.raises(ConversionError, match=r".*") as err:
        convert(raw, type_, **kw)
    assert reason in str(err.value)


def test_vendor_key_value_list_decodes_typed_whatever_the_order() -> None:
    profile = CompiledProfile(load_catalog().get("tianlan-gv40"))
    data = {"ts": 1, "data": [{"k": "csq", "v": "23"}, {"k": "valve", "v": "off"}, {"k": "alm", "v": "2"},
                              {"k": "gas", "v": "31.5"}, {"k": "bat", "v": "88"}, {"k": "fault", "v": "0"}]}
    got = decode_points(profile.points, data)
    assert got.values == {"gas.concentration": 31.5, "gas.level": "high", "valve.state": "closed", "fault": False,
                          "battery_pct": 88, "rssi_dbm": -67}
    assert not got.invalid and not got.missing
    data["data"][3]["v"] = "E1"  # the sensor's error text where a number belongs
    got = decode_points(profile.points, data)
    assert "gas.concentration" not in got.values
    assert got.invalid["gas.concentration"].raw == "E1"
    assert "not a number" in got.invalid["gas.concentration"].reason


def _modbus_profile(point: dict[str, object]) -> CompiledProfile:
    return CompiledProfile(Profile.model_validate({
        "id": "t-modbus", "vendor": "t", "model": "t", "device_type": "t", "protocol": "modbus_tcp",
        "points": [point],
    }))


def test_modbus_points_take_the_same_types_and_enums() -> None:
    profile = _modbus_profile({"name": "mode", "register": {"table": "holding", "address": 0},
                               "enum": {0: "auto", 1: "manual"}})
    (block,) = plan_reads(profile.points)
    (ok,) = decode_block(block, [1])
    assert ok.value == "manual" and ok.error is None
    (bad,) = decode_block(block, [9])
    assert bad.value is None and bad.raw == 9 and "not one of the enum's values" in (bad.error or "")
    flag = _modbus_profile({"name": "flag", "type": "bool", "register": {"table": "holding", "address": 0}})
    (block,) = plan_reads(flag.points)
    assert decode_block(block, [1])[0].value is True
    assert "is not a bool" in (decode_block(block, [5])[0].error or "")


def test_schema_refuses_inconsistent_types() -> None:
    with pytest.raises(ValueError, match="type enum needs an enum map"):
        _modbus_profile({"name": "m", "type": "enum", "register": {"table": "holding", "address": 0}})
    with pytest.raises(ValueError, match="integer values"):
        _modbus_profile({"name": "m", "enum": {"a": "b"}, "register": {"table": "holding", "address": 0}})
    with pytest.raises(ValueError, match="makes the point's type enum"):
        _modbus_profile({"name": "m", "type": "int", "enum": {0: "b"}, "register": {"table": "holding", "address": 0}})


def test_n_in_labels_is_expanded() -> None:
    profile = CompiledProfile(Profile.model_validate({
        "id": "t-rep", "vendor": "t", "model": "t", "device_type": "t", "protocol": "modbus_tcp",
        "points": [{"name": "zone{n}.fire", "label": "{n}号防区火警", "repeat": {"count": 2},
                    "register": {"table": "discrete_input", "address": 0, "type": "bool"}}],
        "events": [{"type": "fire.alarm", "label": "zone {n} fire", "severity": "critical", "repeat": {"count": 2},
                    "when": {"point": "zone{n}.fire", "eq": True}}],
    }))
    assert [p.label for p in profile.points] == ["1号防区火警", "2号防区火警"]
    assert [e.label for e in profile.events] == ["zone 1 fire", "zone 2 fire"]
