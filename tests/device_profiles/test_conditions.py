import pytest

from device_profiles.compiled import ConcreteEvent
from device_profiles.conditions import EventTracker, evaluate
from device_profiles.schema import Condition


def C(**kw):
    return Condition.model_validate(kw)


@pytest.mark.parametrize(
    ("cond", "values", "expected"),
    [
        (C(point="a", eq="fire"), {"a": "fire"}, True),
        (C(point="a", ne="fire"), {"a": "fire"}, False),
        (C(point="a", gt=5), {"a": 6}, True),
        (C(point="a", le=5), {"a": 6.0}, False),
        (C(point="a", **{"in": ["x", "y"]}), {"a": "y"}, True),
        (C(point="a", not_in=[1, 2]), {"a": 3}, True),
        (C(point="a", bit_set=3), {"a": 0b1000}, True),
        (C(point="a", bit_clear=3), {"a": 0b1000}, False),
        (C(point="a", gt=5), {"a": "text"}, False),
        (C(point="a", eq=1), {}, None),
        (C(all=[{"point": "a", "eq": 1}, {"point": "b", "eq": 2}]), {"a": 1, "b": 2}, True),
        (C(all=[{"point": "a", "eq": 1}, {"point": "b", "eq": 2}]), {"a": 0}, False),
        (C(any=[{"point": "a", "eq": 1}, {"point": "b", "eq": 2}]), {"b": 2}, True),
        (C(any=[{"point": "a", "eq": 1}, {"point": "b", "eq": 2}]), {"b": 3}, None),
    ],
)
def test_evaluate(cond, values, expected):
    assert evaluate(cond, values) is expected


def test_condition_shape_is_checked():
    with pytest.raises(ValueError, match="exactly one"):
        C(point="a", eq=1, gt=2)
    with pytest.raises(ValueError, match="either one comparison"):
        C(point="a", all=[{"point": "b", "eq": 1}])


def _event(for_s=0.0, clear_for_s=0.0, clear=None):
    return ConcreteEvent(key="0:x.y", type="x.y", label=None, severity="major", life_safety=False,
                         when=C(point="a", eq=True), clear=clear, for_s=for_s, clear_for_s=clear_for_s, on_message=None)


def test_for_duration_debounces():
    t = EventTracker([_event(for_s=5)])
    assert t.update({"a": True}, 0) == []
    assert t.update({"a": False}, 3) == []  # blip shorter than `for` never raises
    assert t.update({"a": True}, 4) == []
    assert t.update({"a": True}, 8) == []
    (tr,) = t.update({"a": True}, 9)
    assert tr.active and tr.at == 9
    assert t.update({"a": True}, 20) == []  # stays raised: no repeat


def test_clear_for_and_unknown_values():
    t = EventTracker([_event(clear_for_s=2)])
    (raised,) = t.update({"a": True}, 0)
    assert raised.active
    assert t.update({}, 1) == []  # unknown neither raises nor clears
    assert t.update({"a": False}, 2) == []
    (cl,) = t.update({"a": False}, 4)
    assert not cl.active
    (again,) = t.update({"a": True}, 5)
    assert again.active


def test_restore_seeds_active_events_without_a_transition():
    t = EventTracker([_event(clear_for_s=2)])
    assert t.restore(["0:x.y", "gone#3"]) == ["gone#3"]  # not an event of this tracker: the caller clears it
    assert [e.key for e in t.active()] == ["0:x.y"]
    assert t.update({}, 0) == []  # no data: stays active
    assert t.update({"a": True}, 1) == []  # still true: not raised a second time
    assert t.update({"a": False}, 2) == []  # clear_for still applies
    (cl,) = t.update({"a": False}, 4)
    assert not cl.active and cl.event.key == "0:x.y"
