"""Benchmark of the gateway's MQTT point decoding: standard JSONPath (RFC 9535) + typed conversion.

    .venv/bin/python bench/mqtt_decode.py [--quick]

- vendor_msgs_per_s: one Tianlan GV-40 report (a 6-item key/value list in random order, string values)
  decoded the way the bridge does it — ``json.loads`` + ``decode_points`` (six filter queries
  ``$.data[?@.k=='gas'].v`` and their type/enum/scale conversion) — per message;
  baseline: ``json.loads`` + a hand-written dict of the list + the same six conversions written in Python
  (what per-vendor code would cost), measured in the same run → ``vendor_to_baseline_ratio``.
- simple_msgs_per_s: the shipped door controller's state (four ``$.name`` paths, no types) with the same
  decoding; baseline ``json.loads`` + four dict lookups → ``simple_to_baseline_ratio``.

Medians of 5 rounds (``--quick``: fewer messages). The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from device_profiles import CompiledProfile, load_catalog
from device_profiles.mqtt_decode import decode_points


def _rate(fn: Callable[[bytes], object], payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for p in payloads:
        fn(p)
    return len(payloads) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 2_000 if args.quick else 20_000
    rounds = 5
    catalog = load_catalog()
    vendor = CompiledProfile(catalog.get("tianlan-gv40"))
    door = CompiledProfile(catalog.get("acme-dc100"))
    vendor_points = [p for p in vendor.points if p.mqtt is not None and p.mqtt.topic == "{prefix}/up"]
    door_points = [p for p in door.points if p.mqtt is not None and p.mqtt.topic == "{prefix}/state"]
    rng = random.Random(1)
    vendor_payloads = []
    for i in range(n):
        items = [{"k": "gas", "v": f"{rng.uniform(0, 40):.1f}"}, {"k": "alm", "v": str(rng.randint(0, 2))},
                 {"k": "valve", "v": rng.choice(["on", "off"])}, {"k": "fault", "v": "0"},
                 {"k": "bat", "v": str(rng.randint(10, 100))}, {"k": "csq", "v": str(rng.randint(5, 31))}]
        rng.shuffle(items)
        vendor_payloads.append(json.dumps({"ts": 1764680000000 + i, "seq": i, "data": items}).encode())
    door_payloads = [json.dumps({"door_open": bool(i % 2), "locked": True, "mode": "normal", "tamper": False}).encode()
                     for i in range(n)]

    levels = {"0": "normal", "1": "low", "2": "high"}
    valves = {"on": "open", "off": "closed", "mv": "moving", "err": "fault"}

    def vendor_profile(raw: bytes) -> object:
        return decode_points(vendor_points, json.loads(raw))

    def vendor_baseline(raw: bytes) -> object:
        kv = {item["k"]: item["v"] for item in json.loads(raw)["data"]}
        return {"gas.concentration": float(kv["gas"]), "gas.level": levels[kv["alm"]],
                "valve.state": valves[kv["valve"]], "fault": kv["fault"] == "1", "battery_pct": int(kv["bat"]),
                "rssi_dbm": int(kv["csq"]) * 2 - 113}

    def door_profile(raw: bytes) -> object:
        return decode_points(door_points, json.loads(raw))

    def door_baseline(raw: bytes) -> object:
        d = json.loads(raw)
        return {"door.open": d["door_open"], "lock.locked": d["locked"], "lock.mode": d["mode"], "tamper": d["tamper"]}

    assert decode_points(vendor_points, json.loads(vendor_payloads[0])).values == vendor_baseline(vendor_payloads[0])
    figures: dict[str, list[float]] = {k: [] for k in ("vp", "vb", "dp", "db")}
    for _ in range(rounds):
        figures["vp"].append(_rate(vendor_profile, vendor_payloads))
        figures["vb"].append(_rate(vendor_baseline, vendor_payloads))
        figures["dp"].append(_rate(door_profile, door_payloads))
        figures["db"].append(_rate(door_baseline, door_payloads))
    med = {k: statistics.median(v) for k, v in figures.items()}
    result = {
        "vendor_msgs_per_s": round(med["vp"]),
        "vendor_baseline_msgs_per_s": round(med["vb"]),
        "vendor_to_baseline_ratio": round(med["vp"] / med["vb"], 3),
        "vendor_us_per_msg": round(1e6 / med["vp"], 1),
        "simple_msgs_per_s": round(med["dp"]),
        "simple_baseline_msgs_per_s": round(med["db"]),
        "simple_to_baseline_ratio": round(med["dp"] / med["db"], 3),
        "messages_per_round": n,
        "rounds": rounds,
    }
    print(f"vendor report (6 filter paths + types): {result['vendor_msgs_per_s']:,} msg/s "
          f"({result['vendor_us_per_msg']} µs/msg); hand-written baseline {result['vendor_baseline_msgs_per_s']:,} "
          f"msg/s; ratio {result['vendor_to_baseline_ratio']}")
    print(f"door state (4 plain paths): {result['simple_msgs_per_s']:,} msg/s; baseline "
          f"{result['simple_baseline_msgs_per_s']:,} msg/s; ratio {result['simple_to_baseline_ratio']}")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
