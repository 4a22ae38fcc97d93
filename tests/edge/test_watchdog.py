"""systemd supervision: READY=1 once up, WATCHDOG=1 while every part makes progress, none once one is wedged.

The real agent (real Mosquitto, a simulated pymodbus elevator) sends its notifications to a unix datagram
socket bound here, as systemd's would be (``NOTIFY_SOCKET``, abstract namespace and path).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_agent_helpers import wait_for

from device_profiles import load_catalog
from edge.agent import GatewayAgent
from edge.config import GatewayConfig
from edge.watchdog import Notifier
from simulators.modbus import ModbusDeviceServer

pytestmark = pytest.mark.integration


class NotifySocket:
    """A bound unix datagram socket collecting every notification (one datagram = one message)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self._sock.recv(4096).decode())
            except TimeoutError:
                continue

    def count(self, line: str, after: int = 0) -> int:
        return sum(1 for m in self.messages[after:] if line in m.splitlines())

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self._sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    s = NotifySocket(f"@xq-test-notify-{uuid.uuid4().hex}")
    yield s
    s.close()


def _config(tmp_path: Path, site: str, broker_url: str, port: int) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "gateway_id": f"gw-wd-{uuid.uuid4().hex[:6]}", "site": site, "metrics_port": None,
        "uplink": {"url": broker_url},
        "outbox": {"path": str(tmp_path / "outbox.sqlite3")},
        "polling": {"backoff_initial_s": 0.2, "backoff_max_s": 1.0},
        "devices": [{"id": "lift1", "profile": "acme-em200", "location": {"site": site, "building": "B1"},
                     "poll_interval_s": 0.2, "offline_after_s": 1.0,
                     "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit": 1}}],
    })


async def test_pings_go_on_while_a_device_is_offline_and_stop_when_a_poll_loop_is_wedged(
    tmp_path: Path, mqtt_broker: Any, site_id: str, notify_socket: NotifySocket
) -> None:
    profile = load_catalog().get("acme-em200")
    async with ModbusDeviceServer(profile, port=0, device_id="lift1") as device:
        config = _config(tmp_path, site_id, mqtt_broker.url, device.endpoint[1])
        agent = GatewayAgent(config, load_catalog(), with_video=False, watchdog_grace_s=0.5,
                             notifier=Notifier(notify_socket.address, watchdog_usec=400_000))
        task = asyncio.create_task(agent.run())
        try:
            await wait_for(lambda: notify_socket.count("READY=1") == 1, what="READY=1")
            assert agent.uplink.connected and agent.rules["lift1"].online
            await wait_for(lambda: notify_socket.count("WATCHDOG=1") >= 3, what="watchdog pings")

            # The device stops answering (requests time out): it goes offline, the poll loop goes on.
            device.device.silent = True
            await wait_for(lambda: agent.rules["lift1"].online is False, what="lift1 offline")
            seen = len(notify_socket.messages)
            await wait_for(lambda: notify_socket.count("WATCHDOG=1", after=seen) >= 5, what="pings while offline")
            assert agent.wedged_parts == []

            # The poll loop itself gets stuck on an await that never returns: the pings stop.
            device.device.silent = False
            await wait_for(lambda: agent.rules["lift1"].online is True, what="lift1 back")
            poller = agent.pollers[0]

            async def stuck(*_args: Any) -> Any:
                await asyncio.Event().wait()

            poller.link.read = stuck  # type: ignore[method-assign]
            await wait_for(lambda: any(m.startswith("STATUS=wedged") for m in notify_socket.messages),
                           what="the wedge noticed")
            assert agent.wedged_parts[0].startswith("modbus:")
            first_wedged = next(i for i, m in enumerate(notify_socket.messages) if m.startswith("STATUS=wedged"))
            await wait_for(lambda: len(notify_socket.messages) >= first_wedged + 5, what="more notifications")
            after = notify_socket.messages[first_wedged:]
            assert all(m.startswith("STATUS=wedged") for m in after), after
            assert notify_socket.count("WATCHDOG=1", after=first_wedged) == 0
        finally:
            agent.stop()
            await asyncio.wait_for(task, 30)
    assert notify_socket.messages[-1] == "STOPPING=1"


def test_the_cli_announces_ready_to_a_path_socket(tmp_path: Path, mqtt_broker: Any, site_id: str) -> None:
    """``xiaoqu edge run`` under a service manager: NOTIFY_SOCKET (a path) and WATCHDOG_USEC from the env."""
    sock_path = tmp_path / "notify.sock"
    notify = NotifySocket(str(sock_path))
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        f"gateway_id: gw-wd-cli-{uuid.uuid4().hex[:6]}\nsite: {site_id}\nmetrics_port: null\n"
        f"uplink: {{url: '{mqtt_broker.url}'}}\n"
        f"outbox: {{path: {tmp_path / 'outbox.sqlite3'}}}\n"
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "300000"}
    proc = subprocess.Popen([sys.executable, "-m", "xiaoqu", "edge", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if notify.count("WATCHDOG=1") >= 2 or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert notify.count("READY=1") == 1, (notify.messages, proc.poll())
        assert notify.count("WATCHDOG=1") >= 2
    finally:
        proc.terminate()
        proc.wait(30)
        notify.close()
