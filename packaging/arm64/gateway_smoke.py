"""Run a gateway command for a while against a simulated Modbus device; exit 0 only if its telemetry arrived.

    python packaging/arm64/gateway_smoke.py --root ROOT [--mqtt URL] [--seconds S] -- COMMAND…

Used by ``make check-arm64``: this script runs on the host (its venv has the simulators), serves one
simulated elevator (pymodbus, the shipped ``acme-em200`` profile) on 127.0.0.1, writes the gateway config to
``ROOT/tmp/xq-arm64-gateway.yaml`` (ROOT = the arm64 root the command chroots into; 127.0.0.1 is shared),
subscribes to the gateway's telemetry on the broker and runs COMMAND (the gateway inside the root). It stops
the gateway once telemetry of the device arrived, or after ``--seconds``, and fails when none arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles import load_catalog
from simulators.modbus import ModbusDeviceServer

SITE = "arm64-check"


def _config(gateway: str, port: int, mqtt_url: str) -> str:
    loc = f"{{site: {SITE}, building: B1}}"
    return "\n".join([
        f"gateway_id: {gateway}", f"site: {SITE}", "metrics_port: null",
        f"uplink: {{url: '{mqtt_url}'}}", "outbox: {path: /tmp/xq-arm64-state/outbox.sqlite3}",
        "devices:",
        f"  - {{id: lift1, profile: acme-em200, location: {loc}, "
        f"connection: {{kind: modbus_tcp, host: 127.0.0.1, port: {port}, unit: 1}}}}",
        "",
    ])


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("command", nargs="+")
    args = ap.parse_args()
    gateway = f"gw-arm64-{uuid.uuid4().hex[:6]}"
    url = urlsplit(args.mqtt)
    points: set[str] = set()
    got = threading.Event()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        for p in json.loads(msg.payload).get("points", []):
            if p.get("device") == "lift1":
                points.add(p["point"])
                got.set()

    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{gateway}-check")
    sub.on_message = on_message
    sub.connect(url.hostname or "127.0.0.1", url.port or 1883)
    sub.subscribe(f"xq/v1/{SITE}/{gateway}/telemetry", qos=1)
    sub.loop_start()
    profile = load_catalog().get("acme-em200")
    async with ModbusDeviceServer(profile, port=0, unit=1, device_id="lift1") as dev:
        (args.root / "tmp").mkdir(exist_ok=True)
        (args.root / "tmp/xq-arm64-gateway.yaml").write_text(_config(gateway, dev.endpoint[1], args.mqtt))
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(*args.command)
        try:
            while time.monotonic() - t0 < args.seconds and proc.returncode is None:
                if got.is_set():
                    break
                await asyncio.sleep(0.5)
            first = time.monotonic() - t0 if got.is_set() else None
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
    sub.loop_stop()
    sub.disconnect()
    if first is None:
        print(f"FAIL: no telemetry from lift1 on xq/v1/{SITE}/{gateway}/telemetry within {args.seconds:g} s "
              f"(gateway exit code {proc.returncode})", file=sys.stderr)
        return 1
    print(f"telemetry from lift1 arrived {first:.1f} s after the gateway started: points {sorted(points)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
