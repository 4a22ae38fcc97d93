"""Per-gateway identity on a real Mosquitto started with the config ``xiaoqu cloud broker`` writes.

The broker has the backend's plain loopback listener and the gateways' TLS listener (client certificate +
password). "Must not arrive" checks publish a permitted sentinel after the forbidden messages and wait for
it: MQTT keeps one publisher's QoS 1 order, so once the sentinel is in, anything forbidden would be too.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mqtt_secure import WAIT, Client

from cloud.broker import pki
from cloud.broker.accounts import BrokerFolder, BrokerSettings, Credentials
from contract.topics import DOWNLINK_KINDS, UPLINK_KINDS, TopicKind, shared_filter, topic
from simulators.broker import MosquittoProcess, _free_port

pytestmark = pytest.mark.integration

SITE = f"acl{uuid.uuid4().hex[:6]}"


@dataclass
class Setup:
    folder: BrokerFolder
    broker: MosquittoProcess
    tls_port: int
    ingest: Credentials
    serve: Credentials
    gws: dict[str, Credentials] = field(default_factory=dict)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = BrokerFolder(tmp_path_factory.mktemp("broker"))
    tls_port = _free_port()
    creds = folder.init(BrokerSettings(hostnames=["localhost", "127.0.0.1"], tls_port=tls_port,
                                       tls_bind="127.0.0.1", local_port=None))
    broker = MosquittoProcess(persistence=False, extra=folder.conf_lines(local_listener=False))
    broker.start()
    setup = Setup(folder, broker, tls_port, creds["ingest"], creds["serve"])
    for gw in ("gwA", "gwB"):
        setup.gws[gw] = folder.add_gateway(gw, SITE)
    broker._proc.send_signal(1)  # SIGHUP: the accounts added after start
    try:
        yield setup
    finally:
        broker.cleanup()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        c.close()


def gateway(s: Setup, gw: str, made: list[Client], **over: object) -> Client:
    cred = s.gws[gw]
    kw: dict[str, object] = {"ca": cred.ca_file, "cert": cred.cert_file, "key": cred.key_file,
                             "client_id": f"xq-gw-{gw}-{uuid.uuid4().hex[:4]}"}
    kw.update(over)
    c = Client(s.tls_port, gw, cred.password, **kw)  # type: ignore[arg-type]
    made.append(c)
    return c


def service(s: Setup, cred: Credentials, made: list[Client]) -> Client:
    c = Client(s.broker.port, cred.username, cred.password)
    made.append(c)
    assert c.connect() == "Success"
    return c


def test_anonymous_refused_on_both_listeners(secured: Setup, clients: list[Client]) -> None:
    plain = Client(secured.broker.port)
    clients.append(plain)
    assert plain.connect() == "Not authorized"
    ca = secured.folder.ca.cert
    cred = secured.gws["gwA"]
    tls_anon = Client(secured.tls_port, ca=ca, cert=cred.cert_file, key=cred.key_file)
    clients.append(tls_anon)
    assert tls_anon.connect() == "Not authorized"
    wrong_pw = Client(secured.broker.port, "gwA", "not-the-password")
    clients.append(wrong_pw)
    assert wrong_pw.connect() == "Not authorized"


def test_gateway_publishes_only_its_own_up_topics(secured: Setup, clients: list[Client]) -> None:
    ingest = service(secured, secured.ingest, clients)
    assert ingest.subscribe(*(shared_filter(k) for k in UPLINK_KINDS)) == ["Granted QoS 1"] * len(UPLINK_KINDS)
    b = gateway(secured, "gwB", clients)
    assert b.connect() == "Success"
    assert b.subscribe(*(topic(SITE, "gwB", k) for k in DOWNLINK_KINDS)) == ["Granted QoS 1"] * 3
    a = gateway(secured, "gwA", clients)
    assert a.connect() == "Success"
    for kind in UPLINK_KINDS:  # a fake alarm / state in B's name
        assert a.publish(topic(SITE, "gwB", kind)) == "Not authorized"
    for kind in DOWNLINK_KINDS:  # a fake command / receipt / config to B
        assert a.publish(topic(SITE, "gwB", kind)) == "Not authorized"
    assert a.publish(topic("othersite", "gwA", TopicKind.EVENT)) == "Not authorized"  # its id on another site
    assert a.publish(topic(SITE, "gwA", TopicKind.CMD)) == "Not authorized"  # commands come from serve only
    assert a.publish("xq/v1/x") == "Not authorized"
    own = [topic(SITE, "gwA", k) for k in UPLINK_KINDS]
    for t in own:
        assert a.publish(t) == "Success"
    assert ingest.received_until(own[-1]) == own
    sentinel = topic(SITE, "gwB", TopicKind.CMD)
    assert service(secured, secured.serve, clients).publish(sentinel) == "Success"
    assert b.received_until(sentinel) == [sentinel]  # nothing of A's reached B


def test_gateway_reads_only_its_own_down_topics(secured: Setup, clients: list[Client]) -> None:
    a = gateway(secured, "gwA", clients)
    assert a.connect() == "Success"
    # Mosquitto grants wide filters but delivers only what the ACL lets A read.
    a.subscribe("xq/#", "#", topic(SITE, "gwB", TopicKind.CMD), topic(SITE, "gwA", TopicKind.CMD))
    a.subscribe(topic(SITE, "gwA", TopicKind.RECEIPT), topic(SITE, "gwA", TopicKind.CONFIG))
    serve = service(secured, secured.serve, clients)
    ingest = service(secured, secured.ingest, clients)
    b = gateway(secured, "gwB", clients)
    assert b.connect() == "Success"
    assert serve.publish(topic(SITE, "gwB", TopicKind.CMD)) == "Success"
    assert serve.publish(topic(SITE, "gwB", TopicKind.CONFIG), retain=True) == "Success"
    assert ingest.publish(topic(SITE, "gwB", TopicKind.RECEIPT)) == "Success"
    assert b.publish(topic(SITE, "gwB", TopicKind.TELEMETRY)) == "Success"
    own = [topic(SITE, "gwA", k) for k in (TopicKind.RECEIPT, TopicKind.CONFIG, TopicKind.CMD)]
    assert ingest.publish(own[0]) == "Success"
    assert serve.publish(own[1], retain=True) == "Success"
    assert serve.publish(own[2]) == "Success"
    got = a.received_until(own[2])
    assert all("/gwA/" in t for t in got), got
    assert set(own) <= set(got)


def test_services_have_only_their_own_rights(secured: Setup, clients: list[Client]) -> None:
    serve = service(secured, secured.serve, clients)
    ingest = service(secured, secured.ingest, clients)
    assert serve.publish(topic(SITE, "gwA", TopicKind.EVENT)) == "Not authorized"  # no fake alarms from the API
    assert serve.publish(topic(SITE, "gwA", TopicKind.RECEIPT)) == "Not authorized"
    assert ingest.publish(topic(SITE, "gwA", TopicKind.CMD)) == "Not authorized"
    assert ingest.publish(topic(SITE, "gwA", TopicKind.TELEMETRY)) == "Not authorized"
    assert ingest.publish(topic(SITE, "gwA", TopicKind.RECEIPT)) == "Success"


def test_ingest_reads_every_up_kind_via_share_and_state_plainly(secured: Setup, clients: list[Client]) -> None:
    ingest = service(secured, secured.ingest, clients)
    ingest.subscribe(*(shared_filter(k) for k in UPLINK_KINDS if k is not TopicKind.STATE))
    ingest.subscribe(f"xq/v1/+/+/{TopicKind.STATE.value}")
    serve = service(secured, secured.serve, clients)
    serve.subscribe(f"xq/v1/+/+/{TopicKind.STATE.value}")
    b = gateway(secured, "gwB", clients)
    assert b.connect() == "Success"
    sent = [topic(SITE, "gwB", k) for k in UPLINK_KINDS]
    for t in sent:
        assert b.publish(t) == "Success"
    assert sorted(ingest.received_until(sent[-1])) == sorted(sent)
    state = topic(SITE, "gwB", TopicKind.STATE)
    assert serve.received_until(state)[-1] == state


def test_revoked_gateway_is_disconnected_and_refused(secured: Setup, clients: list[Client]) -> None:
    cred = secured.folder.add_gateway("gwC", SITE)
    secured.gws["gwC"] = cred
    secured.broker._proc.send_signal(1)
    c = gateway(secured, "gwC", clients)
    assert c.connect() == "Success"
    done = subprocess.run(
        [sys.executable, "-m", "xiaoqu", "cloud", "broker", "revoke-gateway", "gwC", "--dir",
         str(secured.folder.path), "--pid", str(secured.broker._proc.pid)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert c.connack.get(timeout=WAIT).startswith("disconnected")
    assert not (secured.folder.credentials / "gateways" / "gwC").exists()
    again = gateway(secured, "gwC", clients, ca=secured.folder.ca.cert, cert=secured.gws["gwA"].cert_file,
                    key=secured.gws["gwA"].key_file)
    assert again.connect() == "Not authorized"
    listed = subprocess.run([sys.executable, "-m", "xiaoqu", "cloud", "broker", "list", "--dir",
                             str(secured.folder.path)], capture_output=True, text=True, timeout=60, check=True)
    assert "gwC\tgateway" in listed.stdout and "revoked" in listed.stdout


def test_wrong_ca_refused(secured: Setup, clients: list[Client], tmp_path: Path) -> None:
    other = pki.CertPair(tmp_path / "other-ca.crt", tmp_path / "other-ca.key")
    pki.make_ca(other, "someone else's CA")
    forged = pki.CertPair(tmp_path / "gwA.crt", tmp_path / "gwA.key")
    pki.issue_client(other, forged, "gwA")
    cred = secured.gws["gwA"]
    # A gateway told to trust another CA refuses our broker (no man in the middle either way).
    trusting_other = gateway(secured, "gwA", clients, ca=other.cert)
    assert trusting_other.connect().startswith("tls:")
    # A client certificate from another CA (right password) is refused by the broker.
    forged_client = gateway(secured, "gwA", clients, cert=forged.cert, key=forged.key)
    assert forged_client.connect() != "Success"
    # No client certificate at all (right password) is refused too.
    no_cert = Client(secured.tls_port, "gwA", cred.password, ca=secured.folder.ca.cert)
    clients.append(no_cert)
    assert no_cert.connect() != "Success"
