"""Write an edge gateway config for one gateway of a simulated compound (from the layout + the ports file).

Uses the edge's own config model (``edge.config.GatewayConfig``), so the file is valid by construction.
The uplink points at the simulation's WAN proxy when there is one (so ``wan`` steps cut the gateway's
uplink), else at the device broker. Linkage: two independent fire signals in a building release its
doors and recall its lifts to the base floor (GB 50116 §4.1.6, §4.7).

Fire panels get a zone map: the layouts wire zone n of a building's panel to floor n (device param
``zones``: how many zones are wired, default every zone the profile has), so a zone's alarm carries the
zone's floor, not the floor of the fire control room where the panel hangs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from device_profiles.compiled import CompiledProfile
from device_profiles.loader import Catalog
from simulators.layout import Layout

FIRE_TRIGGERS = ["fire.alarm", "smoke.alarm"]


def build_gateway_config(layout: Layout, catalog: Catalog, gateway_id: str, ports: dict[str, Any], *,
                         profiles_dir: list[Path] | None = None) -> dict[str, Any]:
    """The gateway config as plain data, validated by ``edge.config.GatewayConfig``; ``profiles_dir``: the
    folders of the installer's own profiles the layout's devices use (the gateway adds them to the shipped ones)."""
    from edge.config import GatewayConfig, check_against_catalog

    if gateway_id not in layout.gateways:
        raise KeyError(f"no gateway {gateway_id!r} in {layout.source}; known: {', '.join(layout.gateways)}")
    devices: list[dict[str, Any]] = []
    modbus_ports: dict[str, Any] = ports.get("modbus", {})
    cameras: dict[str, str] = ports.get("cameras", {})
    served = layout.served_by(gateway_id)
    served_ids = {d.id for d in served}
    for d in served:
        location: dict[str, Any] = {"site": layout.site.id, "building": d.building or "site", "floor": d.floor}
        if d.unit:
            location["unit"] = d.unit
        if d.location:
            location["area"] = d.location
        conn: dict[str, Any]
        if d.protocol == "modbus_tcp":
            ep = modbus_ports.get(d.id)
            if ep is None:
                raise KeyError(f"the ports file has no Modbus endpoint for {d.id}")
            conn = {"kind": "modbus_tcp", "host": ep["host"], "port": ep["port"], "unit": ep["unit"]}
        elif d.protocol == "mqtt":
            conn = {"kind": "mqtt", "broker": ports.get("mqtt")}
        elif d.protocol == "camera":
            if d.id not in cameras:
                continue  # camera not running in this simulation
            conn = {"kind": "camera", "source_url": cameras[d.id]}
        else:
            continue
        entry: dict[str, Any] = {"id": d.id, "profile": d.profile, "location": location, "connection": conn}
        zones = zone_map(catalog, d.profile, d.params.get("zones"))
        if zones:
            entry["zones"] = zones
        watches = d.params.get("watches")
        if isinstance(watches, str) and layout.id_prefix + watches in served_ids:
            entry["watches"] = layout.id_prefix + watches
        elif isinstance(watches, str) and watches in served_ids:
            entry["watches"] = watches
        devices.append(entry)
    data: dict[str, Any] = {
        "gateway_id": gateway_id,
        "site": layout.site.id,
        "name": layout.gateways[gateway_id].name or f"simulated gateway {gateway_id}",
        "uplink": {"url": ports.get("uplink_proxy") or ports.get("mqtt") or "mqtt://127.0.0.1:1883"},
        "outbox": {"path": f"outbox/{gateway_id}.sqlite"},
        "devices": devices,
        "metrics_port": None,
        **({"profiles_dir": [str(p) for p in profiles_dir]} if profiles_dir else {}),
        "linkage": {
            "base_floor": 1,
            "rules": [
                {"name": "fire-release-doors", "triggers": FIRE_TRIGGERS, "target_type": "door_access",
                 "command": "release_all", "restore_command": "restore", "require_signals": 2},
                {"name": "fire-recall-lifts", "triggers": FIRE_TRIGGERS, "target_type": "elevator",
                 "command": "fire_recall", "base_floor_arg": "floor", "restore_command": "restore_service",
                 "require_signals": 2},
                # an e-bike in a car (camera watching that elevator): hold its doors and warn, as edge/examples
                {"name": "ebike-hold-doors", "triggers": ["elevator.ebike_detected"], "scope": "watched_device",
                 "target_type": "elevator", "command": "hold_doors", "args": {"duration_s": 60},
                 "restore_command": "release_doors"},
                {"name": "ebike-voice-warning", "triggers": ["elevator.ebike_detected"], "scope": "watched_device",
                 "target_type": "elevator", "command": "voice_warning", "args": {"message": 1}},
            ],
        },
    }
    config = GatewayConfig.model_validate(data)
    issues = check_against_catalog(config, catalog)
    if issues:
        raise ValueError("\n".join(str(i) for i in issues))
    result: dict[str, Any] = json.loads(config.model_dump_json(exclude_defaults=True))
    for dev in result["devices"]:
        if "zones" in dev:  # JSON made the zone numbers strings; the YAML file says 12:, not '12':
            dev["zones"] = {int(n): z for n, z in dev["zones"].items()}
    return result


def zone_map(catalog: Catalog, profile_id: str, wired: object) -> dict[int, dict[str, Any]]:
    """Zone n → floor n for a fire panel's first ``wired`` zones (all the profile has when not given)."""
    profile = catalog.get(profile_id)
    if profile.device_type != "fire_panel":
        return {}
    instances = sorted(CompiledProfile(profile).instances)
    count = wired if isinstance(wired, int) and not isinstance(wired, bool) else len(instances)
    return {n: {"floor": n} for n in instances[:count]}


def write_gateway_config(data: dict[str, Any], out: Path) -> None:
    yaml = YAML()
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(data, buf)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# generated by `xiaoqu sim gateway-config` for {data['gateway_id']}\n" + buf.getvalue(),
                   encoding="utf-8")
