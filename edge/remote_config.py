"""Gateway configuration pushed by the backend (``GatewayConfigPush`` on ``xq/v1/{site}/{gw}/config``, retained).

The pushed *document* is YAML with the sections the backend manages — ``devices`` (with their zone maps),
``linkage``, optionally ``polling`` and ``telemetry`` — and ``profiles``: extra device profiles, each a
mapping with the schema of a profile file. The local file (``/etc/xiaoqu/gateway.yaml``) keeps what the box
itself needs and the backend cannot change: ``gateway_id``, ``site``, ``uplink``, ``outbox``, ``metrics_port``,
``evidence``, ``profiles_dir``. A pushed document replaces those sections of the local file wholesale.

It is validated exactly like a local file, errors labelled ``config v<N>:<line>: <field>: <problem>``. A
document that passes is applied without a restart and stored as the *last good* config under the state
directory (``<outbox dir>/remote-config/last-good.json``), used at the next start; one that fails is
refused and the config in force keeps running.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from contract.base import StrictModel
from device_profiles import Catalog, Issue, ProfileError
from device_profiles.loader import read_yaml, validation_issues
from device_profiles.schema import Profile
from edge.config import (
    ConfigError,
    DeviceConfig,
    GatewayConfig,
    LinkageConfig,
    PollingConfig,
    TelemetryConfig,
    check_against_catalog,
)

logger = logging.getLogger(__name__)

REMOTE_SECTIONS = ("devices", "linkage", "polling", "telemetry")


class RemoteConfigDocument(StrictModel):
    """What the backend may set on a gateway (anything else in the document is an error)."""

    devices: list[DeviceConfig] = Field(default_factory=list)
    linkage: LinkageConfig = Field(default_factory=LinkageConfig)
    polling: PollingConfig | None = Field(default=None, description="default: the local file's")
    telemetry: TelemetryConfig | None = Field(default=None, description="default: the local file's")
    profiles: list[Any] = Field(default_factory=list, description="extra device profiles, each as in a profile file")


def label(version: int) -> str:
    """How errors name a pushed document."""
    return f"config v{version}"


def sha256_text(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def _profiles(raw: list[Any], data: Any, name: str, base: Catalog) -> tuple[list[Profile], list[Issue]]:
    profiles: list[Profile] = []
    issues: list[Issue] = []
    seq = data.get("profiles") if isinstance(data, CommentedMap) else None
    for i, item in enumerate(raw):
        node = seq[i] if isinstance(seq, CommentedSeq) and i < len(seq) else item
        line = seq.lc.item(i)[0] + 1 if isinstance(seq, CommentedSeq) and i < len(seq) else None
        if not isinstance(item, dict):
            issues.append(Issue(name, line, f"profiles[{i}]", "a profile must be a mapping"))
            continue
        try:
            profile = Profile.model_validate(item)
        except ValidationError as exc:
            for issue in validation_issues(exc, node, name):
                field = f"profiles[{i}].{issue.field}" if issue.field else f"profiles[{i}]"
                issues.append(Issue(name, issue.line, field, issue.message))
            continue
        if profile.id in base or any(p.id == profile.id for p in profiles):
            where = base.sources.get(profile.id, "this document")
            issues.append(Issue(name, line, f"profiles[{i}].id",
                                f"profile id {profile.id!r} is already used by {where}"))
            continue
        profiles.append(profile)
    return profiles, issues


def parse_document(
    path: Path, version: int, base: GatewayConfig, base_catalog: Catalog
) -> tuple[GatewayConfig, Catalog]:
    """Validate a pushed document (stored at ``path``) over the local config; raise :class:`ConfigError`."""
    name = label(version)
    try:
        data = read_yaml(path, name)
    except ProfileError as exc:  # YAML syntax
        raise ConfigError(exc.issues) from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ConfigError([Issue(name, 1, "", "a gateway config document must be a YAML mapping")])
    try:
        doc = RemoteConfigDocument.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, data, name)) from None
    extra, issues = _profiles(doc.profiles, data, name, base_catalog)
    if issues:
        raise ConfigError(issues)
    merged: dict[str, Any] = {k: getattr(base, k) for k in type(base).model_fields if k not in REMOTE_SECTIONS}
    merged.update(devices=doc.devices, linkage=doc.linkage, polling=doc.polling or base.polling,
                  telemetry=doc.telemetry or base.telemetry)
    try:
        config = GatewayConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, data, name)) from None
    catalog = base_catalog
    if extra:
        sources = dict(base_catalog.sources)
        sources.update({p.id: name for p in extra})
        catalog = Catalog([*base_catalog, *extra], sources)
    issues = check_against_catalog(config, catalog, data, name)
    if issues:
        raise ConfigError(issues)
    return config, catalog


class LastGood:
    """The last pushed document that was applied, kept across restarts (atomic replace, fsynced)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "last-good.json"

    def incoming(self, document: str) -> Path:
        """Write a received document where the YAML reader (and an operator) can see it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "incoming.yaml"
        path.write_text(document, encoding="utf-8")
        return path

    def save(self, version: int, document: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        payload = {"version": version, "sha256": sha256_text(document), "document": document}
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def load(self) -> tuple[int, str] | None:
        """(version, document), or None when there is none or it is unreadable (logged)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            version, document = int(raw["version"]), str(raw["document"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("last good config %s is unreadable (%s): running the local file", self.path, exc)
            return None
        if raw.get("sha256") != sha256_text(document):
            logger.error("last good config %s does not match its checksum: running the local file", self.path)
            return None
        return version, document


def load_last_good(
    store: LastGood, base: GatewayConfig, base_catalog: Catalog
) -> tuple[GatewayConfig, Catalog, int] | None:
    """The stored last good config over the local file, or None (none stored, or no longer valid: logged)."""
    saved = store.load()
    if saved is None:
        return None
    version, document = saved
    try:
        config, catalog = parse_document(store.incoming(document), version, base, base_catalog)
    except ProfileError as exc:  # e.g. a software update removed a profile it used
        logger.error("last good config v%d is no longer valid; running the local file:\n%s", version, exc)
        return None
    return config, catalog, version
