"""Standard JSONPath (RFC 9535) in MQTT points: filters select a list item by a field; a path that does not
compile is refused at load, at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_profiles.loader import ProfileError, load_profile
from device_profiles.mqtt_mapping import Missing, PathError, compile_path, extract, extract_scalar

VENDOR = {"data": [{"k": "valve", "v": "23"}, {"k": "gas", "v": "12.5"}, {"k": "bat", "v": "88"}], "seq": 7}


def test_filter_selects_the_item_by_its_key_not_its_position() -> None:
    assert extract_scalar(VENDOR, "$.data[?@.k=='gas'].v") == "12.5"
    assert extract_scalar(VENDOR, "$.data[?@.k=='valve'].v") == "23"
    reordered = {"data": list(reversed(VENDOR["data"]))}
    assert extract_scalar(reordered, "$.data[?@.k=='gas'].v") == "12.5"


def test_the_subset_that_worked_before_still_works() -> None:
    payload = {"radio": {"rssi": -71}, "items": [3, 4], "a b": True}
    assert extract(payload, "$.radio.rssi") == -71
    assert extract(payload, "$.items[1]") == 4
    assert extract(payload, "$['a b']") is True


def test_nothing_selected_is_missing() -> None:
    with pytest.raises(Missing):
        extract(VENDOR, "$.data[?@.k=='co2'].v")
    with pytest.raises(Missing):
        extract_scalar(VENDOR, "$.data")  # a list is not a value


def test_compiled_once() -> None:
    assert compile_path("$.data[?@.k=='gas'].v") is compile_path("$.data[?@.k=='gas'].v")


@pytest.mark.parametrize("bad", ["data.gas", "$.data[?@.k==gas].v", "$.data[", "$..[?]"])
def test_bad_paths_do_not_compile(bad: str) -> None:
    with pytest.raises(PathError):
        compile_path(bad)


def test_profile_validate_refuses_a_path_that_does_not_compile_at_its_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "id: bad-path\nvendor: X\nmodel: Y\ndevice_type: gas_sensor\nprotocol: mqtt\npoints:\n"
        "  - {name: ok, mqtt: {topic: '{prefix}/up', path: \"$.data[?@.k=='ok'].v\"}}\n"
        "  - {name: gas, mqtt: {topic: '{prefix}/up', path: \"$.data[?@.k==gas].v\"}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ProfileError) as err:
        load_profile(f)
    (issue,) = err.value.issues
    assert issue.line == 8 and issue.field == "points[1].mqtt.path"
    assert "does not compile" in issue.message


@pytest.mark.parametrize("path", [
    "$.a.b[0]", "$.a.b[-1]['c d']", "$['x y']", '$["x y"]', "$.list[-3]", "$.list[3]", "$.nope", "$.a.b[2].c", "$",
    "$.a.b[?@ == 2]", "$..c", "$.kv[?@.k=='gas'].v", "$.kv[?@.k == 'bat'].v", "$.kv[?@.k=='x'].v",
    "$.kv[?@.k=='two'].v", "$.kv[?@.id==3].v", "$.kv[?@.id==-1].v", "$.kv[?@.k=='1'].v", "$.obj[?@.k=='gas'].v",
    "$.kv[?@.k=='gas']", "$.kv[?@.k=='gas'].v[0]",
])
def test_direct_lookups_agree_with_the_library(path: str) -> None:
    data = {"a": {"b": [1, 2, {"c d": 3}]}, "x y": True, "list": [5, 6, 7],
            "kv": [{"k": "bat", "v": "88"}, {"k": "gas", "v": "3.5"}, {"k": "two"}, {"k": "two", "v": 2},
                   {"id": 3, "v": "three"}, {"id": 3.0, "v": "3.0"}, {"id": True, "v": "t"}, {"k": 1, "v": "int"},
                   {"k": "1", "v": "text"}, {"id": -1, "v": "neg"}, "not an object"],
            "obj": {"x": {"k": "gas", "v": "in an object"}}}
    node = compile_path(path).find_one(data)
    try:
        mine = extract(data, path)
    except Missing:
        assert node is None
    else:
        assert node is not None and mine == node.value
