"""Add a device instance to a gateway config file, keeping the file's comments, order and layout.

The edited document is validated as a whole (schema and profiles) before the file is replaced, and the
file is replaced atomically: a refused edit leaves the file exactly as it was.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import RoundTripRepresenter

from device_profiles import Catalog, ProfileError
from device_profiles.loader import read_yaml
from edge.config import PROTOCOL_FOR_KIND, load_config


class ConfigEditError(ValueError):
    """The edit was refused; the message says why (and where, for validation errors)."""


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    device_id: str
    profile: str
    building: str
    connection: dict[str, str | int]
    site: str | None = None
    floor: int | None = None
    unit: str | None = None
    area: str | None = None
    name: str | None = None


def _flow(mapping: dict[str, str | int | None]) -> CommentedMap:
    m = CommentedMap((k, v) for k, v in mapping.items() if v is not None)
    m.fa.set_flow_style()
    return m


def _null(representer: RoundTripRepresenter, _data: None) -> ScalarNode:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def add_device(path: Path, entry: DeviceEntry, catalog: Catalog | None = None) -> None:
    """Append ``entry`` to ``devices:`` of the config at ``path``; raise :class:`ConfigEditError` if refused.

    Without a ``catalog`` the profiles are the ones the gateway itself would load: the config's
    ``profiles_dir`` (relative to the file), else the shipped ones.
    """
    if catalog is None:
        try:
            _, catalog = load_config(path)
        except ProfileError as exc:
            raise ConfigEditError(f"the config is not valid as it is:\n{exc}") from None
    if entry.profile not in catalog:
        raise ConfigEditError(f"unknown profile {entry.profile!r}; known profiles: {', '.join(catalog.ids())}")
    profile = catalog.get(entry.profile)
    kind = str(entry.connection["kind"])
    if profile.protocol != PROTOCOL_FOR_KIND[kind]:
        raise ConfigEditError(
            f"profile {entry.profile!r} speaks {profile.protocol}, but the connection given is {kind}"
        )
    try:
        read_yaml(path)  # syntax errors, located
    except ProfileError as exc:
        raise ConfigEditError(str(exc)) from None
    yaml = YAML(typ="rt")
    yaml.representer.add_representer(type(None), _null)  # `metrics_port: null` stays null, not an empty value
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    data = yaml.load(path.read_text(encoding="utf-8"))
    if not isinstance(data, CommentedMap):
        raise ConfigEditError(f"{path}: a gateway config must be a YAML mapping")
    devices = data.get("devices")
    if devices is None:
        devices = CommentedSeq()
        data["devices"] = devices
    if not isinstance(devices, CommentedSeq):
        raise ConfigEditError(f"{path}: 'devices' must be a list")
    for i, existing in enumerate(devices):
        if isinstance(existing, dict) and existing.get("id") == entry.device_id:
            line = devices.lc.item(i)[0] + 1
            raise ConfigEditError(f"{path}:{line}: device {entry.device_id!r} is already configured (devices[{i}])")
    site = entry.site or data.get("site")
    item = CommentedMap()
    item["id"] = entry.device_id
    item["profile"] = entry.profile
    if entry.name:
        item["name"] = entry.name
    item["location"] = _flow({"site": site, "building": entry.building, "floor": entry.floor, "unit": entry.unit,
                              "area": entry.area})
    item["connection"] = _flow(dict(entry.connection))
    devices.append(item)

    buf = io.StringIO()
    yaml.dump(data, buf)
    fd, tmp = tempfile.mkstemp(prefix=".onboard-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(buf.getvalue())
        try:
            load_config(Path(tmp), catalog)
        except ProfileError as exc:  # ConfigError is a ProfileError
            lines = str(exc).replace(tmp, str(path))
            raise ConfigEditError(f"the config would not be valid with this device:\n{lines}") from None
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
