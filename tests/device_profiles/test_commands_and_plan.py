import pytest

from device_profiles import CompiledProfile, load_catalog
from device_profiles.commands import CommandError, render_modbus, render_mqtt, validate_args
from device_profiles.read_plan import contiguous_runs, decode_block, plan_reads
from device_profiles.schema import ModbusSettings


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_validate_args(catalog):
    cmd = catalog.get("acme-em200").command("hold_doors")
    assert validate_args(cmd, {}) == {"duration_s": 60}
    assert validate_args(cmd, {"duration_s": 30.0}) == {"duration_s": 30}
    with pytest.raises(CommandError, match="above the maximum 600"):
        validate_args(cmd, {"duration_s": 601})
    with pytest.raises(CommandError, match="not a whole number"):
        validate_args(cmd, {"duration_s": 1.5})
    with pytest.raises(CommandError, match="takes no argument 'floor'"):
        validate_args(cmd, {"floor": 1})
    with pytest.raises(CommandError, match="not a number"):
        validate_args(cmd, {"duration_s": True})


def test_render_modbus_fire_recall(catalog):
    profile = catalog.get("acme-em200")
    cmd = profile.command("fire_recall")
    writes = render_modbus(cmd, validate_args(cmd, {"floor": -1}), profile.modbus)
    assert [(w.table, w.address, w.values) for w in writes] == [("holding", 102, [0xFFFF]), ("holding", 100, [1])]
    reset = catalog.get("gst-fp200").command("reset")
    assert [(w.table, w.address, w.values) for w in render_modbus(reset, {})] == [("coil", 0, [1])]


def test_render_mqtt_unlock(catalog):
    cmd = catalog.get("acme-dc100").command("unlock")
    pub = render_mqtt(cmd, validate_args(cmd, {"duration_s": 8}), prefix="xqdev/d1", device_id="d1", command_id="abc")
    assert pub.topic == "xqdev/d1/cmd"
    assert pub.payload == {"id": "abc", "cmd": "unlock", "duration_s": 8}


def test_fire_panel_plan_is_one_request_per_contiguous_run(catalog):
    profile = catalog.get("gst-fp200")
    points = CompiledProfile(profile).points
    blocks = plan_reads(points, profile.modbus)
    assert len(blocks) == contiguous_runs(points) == 2
    assert (blocks[1].table, blocks[1].start, blocks[1].count) == ("input", 100, 32)


def test_gaps_bridged_only_when_small():
    from device_profiles.compiled import ConcretePoint
    from device_profiles.schema import RegisterSpec

    def pt(name, addr):
        return ConcretePoint(name, None, RegisterSpec(table="holding", address=addr), None, None, None, "r", None)

    pts = [pt("a", 0), pt("b", 5), pt("c", 100)]
    blocks = plan_reads(pts, ModbusSettings(max_gap=8))
    assert [(b.start, b.count) for b in blocks] == [(0, 6), (100, 1)]
    blocks = plan_reads(pts, ModbusSettings(max_gap=0))
    assert len(blocks) == 3
    many = [pt(f"p{i}", i) for i in range(300)]
    assert [b.count for b in plan_reads(many)] == [125, 125, 50]


def test_decode_block(catalog):
    profile = catalog.get("acme-em200")
    blocks = plan_reads(CompiledProfile(profile).points, profile.modbus)
    (block,) = blocks
    words = [0] * block.count
    words[0] = 12  # floor
    words[1] = 1  # up
    words[5] = 1 << 7  # trapped between floors
    words[6], words[7] = 0x3FC0, 0x0000  # 1.5 m/s as float32
    got = {r.point.name: r.value for r in decode_block(block, words)}
    assert got["car.floor"] == 12
    assert got["car.direction"] == "up"
    assert got["fault.trapped_between_floors"] is True
    assert got["fault.trapped_at_floor"] is False
    assert got["car.speed"] == 1.5
    short = decode_block(block, words[:3])
    assert all(r.error and "returned 3 of" in r.error for r in short)
