"""The backend's typed configuration (YAML or JSON), loaded once at the entry point and passed down.

One file, one section per part: ``database``, ``mqtt``, ``ingest``, ``api``, ``decision``. Every section
refuses unknown keys; errors name the file, the line and the field, the way gateway config and profile
errors do::

    cloud.yaml:7: api.jwt_secret: String should have at least 32 characters
    cloud.yaml:12: decision.notifications[0].roles[1]: Input should be 'admin', 'property_manager', … or 'installer'
    rules.yaml:44: escalation.critical[1].role: no notification channel delivers to 'admin' …

The decision rules (``decision.rules``, a separate YAML file) are checked against the device profiles
(the shipped ones plus ``decision.profiles``) and against this config (:func:`load_decision`). Relative
paths in the file are relative to the file. The reference of every key is ``docs/backend-config.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError, model_validator
from ruamel.yaml.comments import CommentedMap

from cloud.alarms.rules import Rules, parse_rules, read_rules
from cloud.api.config import ApiConfig
from cloud.auth.roles import Role
from cloud.db import DatabaseConfig
from cloud.dispatch.mqtt import MqttConfig as PublisherConfig  # broker settings (→ contract.mqtt.MqttSettings)
from cloud.dispatch.notify import ChannelConfig, LogConfig
from cloud.ingest.config import IngestConfig, MqttConfig  # MqttConfig: the broker (→ contract.mqtt.MqttSettings)
from contract.base import StrictModel
from device_profiles import Catalog, Issue, ProfileError, load_catalog
from device_profiles.loader import format_path, line_of, read_yaml, validation_issues

COMMAND_LINE = "command line"


class ConfigError(ProfileError):
    """One or more problems in a backend config (or the rules it names); ``str()`` lists them one per line."""


def _valid_broker(data: Any) -> bool:
    """Whether broker settings validate (an invalid one is reported where it is written, not twice)."""
    try:
        MqttConfig.model_validate(data)
    except ValidationError:
        return False
    return True


def _default_channels() -> list[ChannelConfig]:
    return [LogConfig()]


class DecisionConfig(StrictModel):
    """The decision engine: its rules, the profiles it checks commands against, notifications, its publisher."""

    rules: Path | None = Field(default=None, description="rules YAML; the shipped cloud/alarms/rules.yaml if unset")
    profiles: list[Path] | None = Field(
        default=None, description="your device profile folders, added to the shipped ones (rules and commands)"
    )
    notifications: list[ChannelConfig] = Field(
        default_factory=_default_channels, description="notification channels; default: one 'log' channel"
    )
    timer_interval_s: float = Field(default=1.0, gt=0, description="how often escalations and SLA timers run")
    client_id: str = Field(
        default="xiaoqu-decision", min_length=1,
        description="MQTT client id of the command publisher (one per serve process)",
    )
    publish_timeout_s: float = Field(default=5.0, gt=0, description="a command publish not acked by then fails")


class BackendConfig(StrictModel):
    """The whole backend config; each command uses the sections it needs (``serve`` needs ``api``)."""

    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    mqtt: MqttConfig = Field(
        default_factory=MqttConfig,
        description="the broker (serve's command publisher, `gateway config push`; ingest unless ingest.mqtt)",
    )
    ingest: IngestConfig | None = Field(
        default=None, description="ingest workers; present = `migrate` creates their broker sessions"
    )
    api: ApiConfig | None = Field(default=None, description="REST/WebSocket API; required by `xiaoqu cloud serve`")
    decision: DecisionConfig = Field(default_factory=DecisionConfig)

    @model_validator(mode="before")
    @classmethod
    def _one_broker(cls, data: Any) -> Any:
        """A broker named once serves everybody: ``mqtt`` alone also feeds ingest; ``ingest.mqtt`` alone also
        feeds the publisher. Both given: each part uses its own (e.g. one broker account per part)."""
        if not isinstance(data, dict):
            return data
        ingest = data.get("ingest")
        broker = data.get("mqtt")
        if not isinstance(ingest, dict):
            return data
        out = dict(data)
        if broker is None and "mqtt" in ingest and _valid_broker(ingest["mqtt"]):
            out["mqtt"] = ingest["mqtt"]
        elif broker is not None and "mqtt" not in ingest and _valid_broker(broker):
            out["ingest"] = {**ingest, "mqtt": broker}
        return out

    def ingest_settings(self) -> IngestConfig:
        """The ingest workers' settings: the ``ingest`` section, or its defaults on the configured broker."""
        return self.ingest if self.ingest is not None else IngestConfig(mqtt=self.mqtt)

    def publisher_settings(self, client_id: str | None = None) -> PublisherConfig:
        """The command publisher's settings: the broker with the decision engine's client id and timeout."""
        return PublisherConfig(
            host=self.mqtt.host, port=self.mqtt.port, username=self.mqtt.username, password=self.mqtt.password,
            client_id=client_id or self.decision.client_id, publish_timeout_s=self.decision.publish_timeout_s,
        )

    def require_api(self, file: str = "<config>") -> ApiConfig:
        """The ``api`` section, or a :class:`ConfigError` saying the command needs it."""
        if self.api is None:
            raise ConfigError([Issue(file, None, "api", "required here: at least api.jwt_secret (32+ characters)")])
        return self.api

    def with_options(
        self,
        *,
        dsn: str | None = None,
        flavour: str | None = None,
        mqtt: str | None = None,
        host: str | None = None,
        port: int | None = None,
        rules: Path | None = None,
    ) -> BackendConfig:
        """This config with command-line options over the file's values (``mqtt`` is ``host:port``; it sets
        the broker of every part, keeping their accounts)."""
        update: dict[str, object] = {}
        db: dict[str, object] = {k: v for k, v in {"dsn": dsn, "flavour": flavour}.items() if v is not None}
        if db:
            update["database"] = _replace(self.database, _options(db), db)
        if mqtt is not None:
            h, _, p = mqtt.rpartition(":")
            if not p.isdigit():
                raise ConfigError([Issue(COMMAND_LINE, None, "--mqtt", f"{mqtt!r} is not host:port")])
            address = {"host": h or "127.0.0.1", "port": int(p)}
            update["mqtt"] = _replace(self.mqtt, "--mqtt", address)
            if self.ingest is not None:
                ingest_broker = _replace(self.ingest.mqtt, "--mqtt", address)
                update["ingest"] = self.ingest.model_copy(update={"mqtt": ingest_broker})
        api: dict[str, object] = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
        if api:
            update["api"] = _replace(self.require_api(COMMAND_LINE), _options(api), api)
        if rules is not None:
            update["decision"] = self.decision.model_copy(update={"rules": rules})
        return self.model_copy(update=update)


M = TypeVar("M", bound=StrictModel)


def _replace(model: M, option: str, changes: dict[str, object]) -> M:
    try:
        return type(model).model_validate({**model.model_dump(), **changes})
    except ValidationError as exc:
        raise ConfigError([Issue(COMMAND_LINE, None, option, err["msg"]) for err in exc.errors()]) from None


def _options(changes: dict[str, object]) -> str:
    return "/".join(f"--{k}" for k in changes)


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else base / p


def _relative_to_file(config: BackendConfig, base: Path, doc: Any) -> BackendConfig:
    """Paths written in the file are relative to the file (defaults stay relative to the working folder)."""
    update: dict[str, object] = {}
    decision: dict[str, object] = {}
    if config.decision.rules is not None:
        decision["rules"] = _resolve(base, config.decision.rules)
    if config.decision.profiles is not None:
        decision["profiles"] = [_resolve(base, p) for p in config.decision.profiles]
    if decision:
        update["decision"] = config.decision.model_copy(update=decision)
    api = doc.get("api") if isinstance(doc, dict) else None
    if config.api is not None and isinstance(api, dict) and "evidence_dir" in api:
        update["api"] = config.api.model_copy(update={"evidence_dir": _resolve(base, config.api.evidence_dir)})
    return config.model_copy(update=update) if update else config


def read_config(path: Path) -> tuple[BackendConfig, Any]:
    """Parse and validate a config file; also the round-trip document (for line numbers of later checks)."""
    name = str(path)
    try:
        doc = read_yaml(path, name)  # YAML 1.2 reads JSON too
    except ProfileError as exc:
        raise ConfigError(exc.issues) from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise ConfigError([Issue(name, 1, "", "a backend config must be a mapping of sections")])
    try:
        config = BackendConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, doc, name)) from None
    return _relative_to_file(config, path.resolve().parent, doc), doc


def load_config(path: Path | None) -> BackendConfig:
    """The backend config in ``path`` (every default without a file); :class:`ConfigError` lists problems."""
    return BackendConfig() if path is None else read_config(path)[0]


def _delivers(channel: ChannelConfig, role: Role) -> bool:
    return not channel.roles or role in channel.roles


def config_issues(config: BackendConfig, rules: Rules, *, file: str = "<config>", doc: Any = None,
                  rules_file: str = "<rules>", rules_doc: Any = None) -> list[Issue]:
    """The rules against the config: notification channels filter on roles that exist, and every role the
    rules escalate to (alarm escalation, work-order SLAs) reaches at least one channel."""
    issues: list[Issue] = []
    channels = config.decision.notifications
    named: list[tuple[tuple[int | str, ...], Role]] = []
    for severity, steps in rules.escalation.items():
        named += [(("escalation", severity, j, "role"), step.role) for j, step in enumerate(steps)]
    named += [(("work_orders", "sla", kind, "escalate_to"), sla.escalate_to)
              for kind, sla in rules.work_orders.sla.items()]
    for loc, role in named:
        if not any(_delivers(c, role) for c in channels):
            issues.append(Issue(rules_file, line_of(rules_doc, *loc), format_path(loc),
                                f"no notification channel delivers to {role.value!r}: every channel in {file} "
                                "(decision.notifications) filters on other roles"))
    return issues


def load_decision(
    config: BackendConfig, path: Path | None = None, catalog: Catalog | None = None
) -> tuple[Rules, Catalog]:
    """The rules and the profile catalog the config names, checked against each other and against the config
    (``path``: the config file, for line numbers); one :class:`ConfigError` lists every problem."""
    if catalog is None:
        try:
            catalog = load_catalog(config.decision.profiles)
        except ProfileError as exc:
            raise ConfigError(exc.issues) from None
    try:
        rules_doc, rules_file = read_rules(config.decision.rules)
        rules = parse_rules(rules_doc, rules_file, catalog)
    except ProfileError as exc:  # RulesError: file:line: field
        raise ConfigError(exc.issues) from None
    file, doc = (str(path), read_yaml(path, str(path))) if path is not None else ("<config>", None)
    issues = config_issues(config, rules, file=file, doc=doc, rules_file=rules_file, rules_doc=rules_doc)
    if issues:
        raise ConfigError(issues)
    return rules, catalog


def summary(config: BackendConfig, rules: Rules, catalog: Catalog, sections: Iterable[str]) -> str:
    """One line saying what a valid config holds (``xiaoqu cloud config check``)."""
    parts = ", ".join(sections) or "none (all defaults)"
    return (f"sections: {parts}; rules {config.decision.rules or 'shipped'} ({len(rules.correlation)} correlation, "
            f"{len(rules.dispatch)} dispatch, {len(rules.linkage)} linkage plans); {len(catalog)} profiles; "
            f"{len(config.decision.notifications)} notification channels")
