"""The demo's broker, set up the way an installer sets up a real one (``xiaoqu cloud broker``, docs/security.md).

At start: a CA and broker certificate, accounts for ingest and serve, one account + client certificate per
gateway of the layout, the ACL, and a Mosquitto with ``allow_anonymous false``: a loopback listener for
the backend and a TLS listener for the gateways. The simulated gateways reach the TLS listener through the
simulator's WAN proxy (so ``wan`` faults still cut them off) with their own credentials; the simulated
MQTT field devices talk to the simulator's own device broker (the gateways' field LAN), never to this one.

Everything lives in ``<work>/broker`` (credentials 0600), so later steps find it with :func:`existing`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML

from xiaoqu.embedded import EmbeddedServiceError

logger = logging.getLogger(__name__)

FOLDER = "broker"


class SecureBrokerError(EmbeddedServiceError):
    """The demo's secured broker could not be set up or started."""


@dataclass(frozen=True)
class SecureBroker:
    folder: Path
    backend_url: str  # loopback listener: ingest and serve
    gateway_url: str  # TLS listener (the simulator's WAN proxy forwards to it)

    def _creds(self, relative: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "credentials" / relative).read_text(encoding="utf-8"))
        return data

    def cloud_credentials(self, config: dict[str, Any]) -> None:
        """Give the backend config (``ingest.mqtt`` and ``mqtt``) the ingest and serve accounts."""
        ingest, serve = self._creds("ingest.yaml"), self._creds("serve.yaml")
        mqtt = config.setdefault("ingest", {}).setdefault("mqtt", {})
        mqtt.update(username=ingest["username"], password=ingest["password"])
        config["mqtt"] = {"host": mqtt.get("host", "127.0.0.1"), "port": mqtt.get("port", 1883),
                          "username": serve["username"], "password": serve["password"]}

    def sim_args(self) -> list[str]:
        """The simulator's uplink (behind its WAN proxy) is this broker's TLS listener; devices get their own."""
        return ["--uplink", self.gateway_url]

    def secure_gateway_config(self, path: Path) -> None:
        """Rewrite a generated gateway config's uplink: TLS via the same proxy, the gateway's own account."""
        yaml = YAML()
        data = yaml.load(path.read_text(encoding="utf-8"))
        gw = str(data["gateway_id"])
        creds_dir = self.folder / "credentials" / "gateways" / gw
        if not creds_dir.exists():
            raise SecureBrokerError(f"no broker account for gateway {gw!r} (layout changed after the start?)")
        uplink = self._creds(f"gateways/{gw}/uplink.yaml")["uplink"]
        current = urlsplit(str(data["uplink"]["url"]))
        data["uplink"].update(
            url=f"mqtts://{current.hostname}:{current.port}",
            username=uplink["username"],
            password=uplink["password"],
            ca_file=str(creds_dir / uplink["ca_file"]),
            cert_file=str(creds_dir / uplink["cert_file"]),
            key_file=str(creds_dir / uplink["key_file"]),
        )
        with path.open("w", encoding="utf-8") as fh:
            yaml.dump(data, fh)


def existing(work: Path) -> SecureBroker | None:
    """The secured broker started for this work folder, if the demo started one."""
    state = work / FOLDER / "demo.json"
    if not state.exists():
        return None
    data = json.loads(state.read_text(encoding="utf-8"))
    return SecureBroker(work / FOLDER, data["backend_url"], data["gateway_url"])


def _gateways(layout: Path, profiles: list[Path] | None = None) -> dict[str, str]:
    from device_profiles import load_catalog
    from simulators.layout import load_layout

    lay = load_layout(layout, load_catalog(profiles))
    return {gw: lay.site.id for gw in lay.gateways}


@contextlib.contextmanager
def secure_mosquitto(work: Path, layout: Path, profiles: list[Path] | None = None) -> Iterator[str]:
    """A Mosquitto with TLS, per-gateway accounts and the ACL; yields the backend's (loopback) URL."""
    from cloud.broker.accounts import BrokerFolder, BrokerSettings, BrokerSetupError
    from simulators.broker import MosquittoProcess, _free_port

    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise SecureBrokerError("no broker configured and no mosquitto binary found (apt-get install mosquitto)")
    folder = BrokerFolder(work / FOLDER)
    tls_port = _free_port()
    try:
        folder.init(BrokerSettings(hostnames=["127.0.0.1", "localhost"], tls_port=tls_port, tls_bind="127.0.0.1",
                                   local_port=None), force=True)
        for gw, site in _gateways(layout, profiles).items():
            folder.add_gateway(gw, site)
    except BrokerSetupError as exc:
        raise SecureBrokerError(f"broker accounts: {exc}") from None
    data = work / "mqtt"
    data.mkdir(exist_ok=True)
    extra = ["max_queued_messages 100000", *folder.conf_lines(local_listener=False)]
    broker = MosquittoProcess(persistence=True, extra=extra, workdir=data)
    try:
        try:
            broker.start()
        except RuntimeError as exc:
            raise SecureBrokerError(f"embedded Mosquitto: {exc}") from None
        state = {"backend_url": broker.url, "gateway_url": f"mqtt://127.0.0.1:{tls_port}"}
        (folder.path / "demo.json").write_text(json.dumps(state), encoding="utf-8")
        logger.info("embedded Mosquitto on 127.0.0.1:%d (backend) and :%d (gateways, TLS); anonymous refused",
                    broker.port, tls_port)
        yield broker.url
    finally:
        (folder.path / "demo.json").unlink(missing_ok=True)  # a later run on another broker must not find it
        broker.cleanup()
