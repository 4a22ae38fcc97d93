"""Pushed config documents: validated like a local file (``config v<N>:line: field``), merged over the local file."""

from __future__ import annotations

from pathlib import Path

import pytest
from edge_agent_helpers import FakeClock, FakeOutbox

from contract.messages import GatewayConfigPush
from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import ConfigError, GatewayConfig
from edge.remote_config import LastGood, parse_document, sha256_text

LOC = "{site: s1, building: B1}"
PROFILE = """
  - id: push-meter
    vendor: test
    model: m1
    device_type: meter
    protocol: modbus_tcp
    points:
      - {name: flow, register: {table: input, address: 0, type: uint16}}
"""


def _base(tmp_path: Path) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "gateway_id": "gw1", "site": "s1", "metrics_port": None,
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "devices": [{"id": "local1", "profile": "acme-em200", "location": {"site": "s1", "building": "B1"},
                     "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": 1502}}],
    })


def _doc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    return path


def _modbus(dev: str, profile: str, port: int) -> str:
    return (f"  - {{id: {dev}, profile: {profile}, location: {LOC}, "
            f"connection: {{kind: modbus_tcp, host: 127.0.0.1, port: {port}}}}}\n")


def test_a_document_replaces_devices_and_linkage_and_may_bring_profiles(tmp_path: Path) -> None:
    base, catalog = _base(tmp_path), load_catalog()
    doc = _doc(tmp_path, "devices:\n" + _modbus("m1", "push-meter", 1503) + "profiles:" + PROFILE)
    config, cat = parse_document(doc, 3, base, catalog)
    assert [d.id for d in config.devices] == ["m1"] and config.outbox == base.outbox
    assert "push-meter" in cat and "push-meter" not in catalog
    assert cat.sources["push-meter"] == "config v3"


@pytest.mark.parametrize(("text", "error"), [
    ("uplink: {url: 'mqtt://evil:1883'}\n", "config v7:1: uplink: "),
    ("devices:\n" + _modbus("a", "acme-em200", 1) + _modbus("b", "no-such", 2),
     "config v7:3: devices[1].profile: unknown profile 'no-such'"),
    ("devices:\n  - {id: a, profile: acme-em200}\n", "config v7:2: devices[0].location: "),
    ("devices: [\n", "config v7:2: YAML syntax"),
    ("profiles:\n  - {id: acme-em200, vendor: x, model: y, device_type: elevator, protocol: modbus_tcp}\n",
     "config v7:2: profiles[0].id: profile id 'acme-em200' is already used by"),
    ("profiles:\n  - id: bad\n    vendor: x\n    protocol: zigbee\n", "config v7:4: profiles[0].protocol"),
])
def test_a_bad_document_is_refused_with_file_line_field(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_document(_doc(tmp_path, text), 7, _base(tmp_path), load_catalog())
    assert error in str(exc.value), str(exc.value)


def test_last_good_round_trip_and_a_tampered_file_is_ignored(tmp_path: Path) -> None:
    store = LastGood(tmp_path / "rc")
    assert store.load() is None
    store.save(4, "devices: []\n")
    assert store.load() == (4, "devices: []\n")
    store.path.write_text(store.path.read_text().replace("[]", "[x]"))
    assert store.load() is None


async def test_the_agent_applies_refuses_and_reports(tmp_path: Path) -> None:
    outbox = FakeOutbox()
    agent = GatewayAgent(_base(tmp_path), load_catalog(), outbox=outbox, clock=FakeClock(), with_uplink=False)
    assert [p.key for p in agent.parts.values()] == ["modbus:modbus_tcp://127.0.0.1:1502"]
    doc = ("devices:\n" + _modbus("local1", "acme-em200", 1502) + _modbus("m1", "push-meter", 1503)
           + "profiles:" + PROFILE)
    kept = agent.parts["modbus:modbus_tcp://127.0.0.1:1502"]
    assert await agent.apply_config(GatewayConfigPush(gw="gw1", seq=1, ts=FakeClock().now(), version=1, document=doc,
                                                      sha256=sha256_text(doc)))
    assert agent.config_version == 1 and set(agent.rules) == {"local1", "m1"}
    assert agent.parts["modbus:modbus_tcp://127.0.0.1:1502"] is kept  # untouched: not restarted
    state = outbox.messages[-2]  # the re-published birth, then a health report
    assert state.kind == "state" and state.config_version == 1 and state.config_error is None
    assert {d.device for d in state.devices} == {"local1", "m1"}

    bad = GatewayConfigPush(gw="gw1", seq=2, ts=FakeClock().now(), version=2, document=doc, sha256="0" * 64)
    assert not await agent.apply_config(bad)
    state = outbox.messages[-1]
    assert state.config_version == 1 and state.config_error == "config v2: sha256 does not match the document"

    # A restart uses the last good config (v1) over the local file.
    agent.store.close()
    again = GatewayAgent(_base(tmp_path), load_catalog(), outbox=FakeOutbox(), clock=FakeClock(), with_uplink=False)
    assert again.config_version == 1 and set(again.rules) == {"local1", "m1"}
    again.store.close()
