"""The shared linkage policy: a signal is (device, event key); the same confirmation rule on both sides."""

from __future__ import annotations

import pytest

from device_profiles import load_catalog
from device_profiles.linkage import (
    Signal,
    command_problem,
    confirming_signals,
    device_type_problem,
    event_types,
    signal_of,
)

Z12, Z13 = Signal("panel", "fire.alarm#12"), Signal("panel", "fire.alarm#13")
SD1, SD2 = Signal("sd1", "smoke.alarm"), Signal("sd2", "smoke.alarm")


def test_a_signal_is_device_and_key() -> None:
    assert signal_of("panel", "fire.alarm#12") == Z12
    # two zones of one panel are two signals; one zone raised twice is one
    assert len({Z12, Z13, signal_of("panel", "fire.alarm#12")}) == 2
    assert str(Z12) == "panel/fire.alarm#12"


@pytest.mark.parametrize(("raised", "require", "expected"), [
    ({Z12: 0.0}, 2, []),                                # one signal is not enough (GB 50116 §4.1.6)
    ({Z12: 0.0, Z13: 30.0}, 2, [Z12, Z13]),             # two zones of one panel confirm each other
    ({SD1: 0.0, Z13: 120.0}, 2, [SD1, Z13]),            # the window is inclusive
    ({SD1: 0.0, SD2: 121.0}, 2, []),                    # too far apart
    ({SD1: 0.0, Z12: 200.0, SD2: 250.0}, 2, [SD2, Z12]),  # the old one does not join the later pair
    ({SD1: 0.0, Z12: 60.0, SD2: 110.0}, 3, [SD1, SD2, Z12]),
    ({Z12: 5.0}, 1, [Z12]),
])
def test_confirming_signals(raised: dict[Signal, float], require: int, expected: list[Signal]) -> None:
    assert confirming_signals(raised, require, 120.0) == sorted(expected)


def test_vocabulary_is_the_profiles() -> None:
    catalog = load_catalog()
    types = event_types(catalog)
    assert {"fire.alarm", "smoke.alarm", "elevator.entrapment", "door.forced_open"} <= types
    assert {"fire_lane.blocked", "elevator.ebike_detected", "device.offline", "linkage.action"} <= types
    assert "gateway.offline" not in types and "gateway.offline" in event_types(catalog, ["gateway.offline"])
    lift = catalog.get("acme-em200")
    assert command_problem(lift, "fire_recall", {"floor": 1}) is None
    assert command_problem(lift, "voice_warning") is None  # the e-bike rule's voice warning plays in the car
    assert "has no command 'fly'" in (command_problem(lift, "fly") or "")
    assert "above the maximum" in (command_problem(lift, "fire_recall", {"floor": 400}) or "")
    assert device_type_problem(catalog, "door_access", "release_all") is None
    assert "no door_access profile has a command 'fire_recall'" in (
        device_type_problem(catalog, "door_access", "fire_recall") or "")
