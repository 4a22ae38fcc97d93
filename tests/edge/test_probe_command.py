"""The gateway's probe command on an MQTT device (from the bridge's latest messages) and its refusals; the
Modbus path runs against real pymodbus servers in tests/cloud/web/test_installer_probe.py."""

from __future__ import annotations

from pathlib import Path

from edge_agent_helpers import FakeClock, FakeOutbox

from contract.messages import PROBE_COMMAND, Command
from edge.bridge import MqttBridge
from edge.commands import CommandExecutor, CommandService, MqttTarget, SeenStore
from edge.rules import Emitter

from .test_bridge_typed import PROFILE, _bridge, _up


def _service(tmp_path: Path) -> tuple[CommandService, FakeOutbox, FakeClock, MqttBridge]:
    bridge, outbox, _batcher, clock = _bridge()
    executor = CommandExecutor()
    executor.add("gas1", PROFILE, MqttTarget(bridge))
    executor.add("cam1", PROFILE, None)
    service = CommandService(executor, Emitter(outbox, "gw1"), SeenStore(tmp_path / "seen.sqlite3"), clock,
                             probe_window_s=0.05)
    return service, outbox, clock, bridge


def probe(device: str, clock: FakeClock) -> Command:
    return Command(gw="gw1", seq=1, ts=clock.now(), device=device, command=PROBE_COMMAND)


async def test_probe_decodes_the_latest_message_per_point(tmp_path: Path) -> None:
    service, outbox, clock, bridge = _service(tmp_path)
    await service.handle(probe("gas1", clock))  # nothing heard yet: every point fails with the topic
    (ack,) = outbox.acks()
    assert ack.status == "failed" and ack.probe is not None and len(ack.probe) == len(PROFILE.points)
    assert all(not p.ok and "no message on tl/gas1/up" in (p.reason or "") for p in ack.probe)

    bridge.handle("tl/gas1/up", _up(clock, "3.5"))
    await service.handle(probe("gas1", clock))
    ack = outbox.acks()[-1]
    assert ack.status == "succeeded" and ack.reason is None and ack.probe is not None
    got = {p.name: p for p in ack.probe}
    assert [p.name for p in ack.probe] == [p.name for p in PROFILE.points]
    assert got["gas.concentration"].value == 3.5 and got["gas.concentration"].ok
    assert got["valve.state"].value == "open" and got["rssi_dbm"].value == -67
    assert all(p.source.startswith("tl/gas1/up $.") for p in ack.probe)


async def test_probe_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    service, outbox, clock, _ = _service(tmp_path)
    await service.handle(probe("nope", clock))
    await service.handle(probe("cam1", clock))
    unknown, camera = outbox.acks()
    assert unknown.status == "rejected" and "serves no device 'nope'" in (unknown.reason or "")
    assert camera.status == "rejected" and "no points the gateway reads" in (camera.reason or "")
    assert unknown.probe is None and camera.probe is None
