"""The demo's broker is the secured one: anonymous refused, the backend and each gateway with their own account."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mqtt_secure import Client
from ruamel.yaml import YAML

from contract.topics import TopicKind, topic
from edge.uplink.mqtt import UplinkConfig
from xiaoqu.demo_security import existing, secure_mosquitto

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_demo_broker_refuses_anonymous_and_hands_out_working_accounts(tmp_path: Path) -> None:
    assert existing(tmp_path) is None
    made: list[Client] = []
    with secure_mosquitto(tmp_path, REPO / "simulators" / "layouts" / "mini.yaml") as backend_url:
        try:
            port = urlsplit(backend_url).port
            assert port is not None
            anonymous = Client(port)
            made.append(anonymous)
            assert anonymous.connect() == "Not authorized"
            secure = existing(tmp_path)
            assert secure is not None and secure.backend_url == backend_url
            # The backend config gets the ingest account (ingest.mqtt) and the serve account (mqtt).
            cloud: dict = {"ingest": {"mqtt": {"host": "127.0.0.1", "port": port}}}
            secure.cloud_credentials(cloud)
            for section in (cloud["ingest"]["mqtt"], cloud["mqtt"]):
                c = Client(port, section["username"], section["password"])
                made.append(c)
                assert c.connect() == "Success"
            assert cloud["ingest"]["mqtt"]["username"] != cloud["mqtt"]["username"]
            # A generated gateway config (its uplink points at the WAN proxy) gets TLS and its own account.
            tls_port = urlsplit(secure.gateway_url).port
            gw_cfg = tmp_path / "gateway-b1-gw.yaml"
            gw_cfg.write_text(json.dumps({"gateway_id": "b1-gw", "site": "mini",
                                          "uplink": {"url": f"mqtt://127.0.0.1:{tls_port}"}}), encoding="utf-8")
            secure.secure_gateway_config(gw_cfg)
            uplink = UplinkConfig.model_validate(YAML(typ="safe").load(gw_cfg.read_text(encoding="utf-8"))["uplink"])
            assert uplink.url == f"mqtts://127.0.0.1:{tls_port}" and uplink.username == "b1-gw"
            gw = Client(tls_port, uplink.username, uplink.password, ca=uplink.ca_file, cert=uplink.cert_file,
                        key=uplink.key_file)
            made.append(gw)
            assert gw.connect() == "Success"
            assert gw.publish(topic("mini", "b1-gw", TopicKind.STATE)) == "Success"
            assert gw.publish(topic("mini", "other-gw", TopicKind.EVENT)) == "Not authorized"
        finally:
            for c in made:
                c.close()
    assert existing(tmp_path) is None  # gone with the broker: a later run on an external broker won't use it


async def test_a_bridge_on_the_gateways_broker_connects_as_the_uplink_does(tmp_path: Path) -> None:
    """An MQTT device on the gateway's own broker: the bridge takes the uplink's account and TLS files."""
    import asyncio

    from device_profiles import load_catalog
    from edge.agent import GatewayAgent
    from edge.config import load_config

    with secure_mosquitto(tmp_path, REPO / "simulators" / "layouts" / "mini.yaml"):
        secure = existing(tmp_path)
        assert secure is not None
        tls_port = urlsplit(secure.gateway_url).port
        gw_cfg = tmp_path / "gateway-b1-gw.yaml"
        gw_cfg.write_text(json.dumps({
            "gateway_id": "b1-gw", "site": "mini", "uplink": {"url": f"mqtt://127.0.0.1:{tls_port}"},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3")}, "metrics_port": None,
            "devices": [{"id": "gas1", "profile": "tianlan-gv40", "name": "kitchen gas detector",
                         "location": {"site": "mini", "building": "B1", "floor": 3}, "connection": {"kind": "mqtt"}}],
        }), encoding="utf-8")
        secure.secure_gateway_config(gw_cfg)
        config, _ = load_config(gw_cfg)
        assert config.uplink.url.startswith("mqtts://") and config.uplink.ca_file is not None
        agent = GatewayAgent(config, load_catalog(), with_video=False)
        task = asyncio.create_task(agent.run())
        try:
            deadline = asyncio.get_running_loop().time() + 20
            while not (agent.uplink is not None and agent.uplink.connected and agent.bridges
                       and all(b.connected for b in agent.bridges)):
                assert asyncio.get_running_loop().time() < deadline, "the bridge did not connect over TLS"
                await asyncio.sleep(0.1)
        finally:
            agent.stop()
            await asyncio.wait_for(task, 20)


def test_gateway_config_tls_files_are_relative_to_the_config(tmp_path: Path) -> None:
    """uplink.yaml from `add-gateway` names ca.crt / client.crt / client.key next to the config file."""
    from edge.config import load_config

    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(json.dumps({"gateway_id": "b3-gw", "site": "demo", "devices": [], "outbox": {"path": "o.sqlite"},
                               "uplink": {"url": "mqtts://broker:8883", "username": "b3-gw", "password": "p",
                                          "ca_file": "ca.crt", "cert_file": "client.crt",
                                          "key_file": "/abs/client.key"}}), encoding="utf-8")
    config, _ = load_config(cfg)
    assert config.uplink.ca_file == tmp_path / "ca.crt"
    assert config.uplink.cert_file == tmp_path / "client.crt"
    assert config.uplink.key_file == Path("/abs/client.key")
