"""Run one firmware instance in this process, as the device would: ``python -m firmware_stubs.shim.run
door_controller --device-id d1 --server 127.0.0.1 --port 1883 [--card 1234 ...]``. Used by tests that
kill the device process (the broker must then publish its last will)."""

from __future__ import annotations

import argparse

from firmware_stubs.shim import FIRMWARES, load


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m firmware_stubs.shim.run")
    ap.add_argument("firmware", choices=FIRMWARES)
    ap.add_argument("--device-id", required=True)
    ap.add_argument("--server", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--keepalive", type=int, default=5)
    ap.add_argument("--heartbeat-s", type=float, default=30.0)
    ap.add_argument("--card", action="append", default=[], help="an authorised card number (door controller)")
    args = ap.parse_args(argv)
    cfg = {"device_id": args.device_id, "server": args.server, "port": args.port, "keepalive": args.keepalive,
           "heartbeat_s": args.heartbeat_s, "cards": args.card}
    load(args.firmware, args.device_id).main(cfg)


if __name__ == "__main__":
    main()
