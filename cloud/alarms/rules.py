"""Decision rules, in YAML, validated by pydantic with errors naming ``file:line: field``.

The default rule set is ``cloud/alarms/rules.yaml``. Durations are written ``90s``, ``5m``, ``2h`` or a
number of seconds. The rules speak the device profiles' vocabulary, checked when they are loaded: linkage
plans name profiles and commands (with arguments) that exist; correlation signals, dispatch and work-order
alarms, ignored events name event types some profile, camera rule or the gateway raises
(``device_profiles.linkage``, the same checks the gateway's own linkage rules pass).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from cloud.auth.roles import Role
from contract.base import StrictModel
from contract.messages import AlarmSeverity
from device_profiles import Catalog, Issue, ProfileError, load_catalog
from device_profiles.linkage import command_problem, event_types, profile_problem
from device_profiles.loader import format_path, line_of, read_yaml, validation_issues

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """``"90s"`` / ``"5m"`` / ``"2h"`` / ``30`` → :class:`timedelta`; anything else is left to pydantic."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"duration {value!r} must look like 30s, 5m, 2h or 1d")
        return timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class RulesError(ProfileError):
    """A rules file that cannot be used; ``str()`` lists the problems one per line (``file:line: field: …``)."""


ENGINE_ALARMS = ("gateway.offline", "device.silent")
"""Alarm types the decision engine raises itself (supervision)."""


class CorrelationRule(StrictModel):
    """N independent signals in one scope, raised within a window of each other → an incident.

    A signal is (device, event key) — ``device_profiles.linkage.Signal``, as on the gateway: two zones of one
    panel are two signals, two detectors are two, one zone raised twice is one (GB 50116 §4.1.6)."""

    name: str
    signals: list[str] = Field(min_length=1, description="alarm types whose alarms count as signals")
    scope: Literal["building", "floor"] = "building"
    window: Duration = timedelta(minutes=2)
    min_signals: int = Field(default=2, ge=1, description="independent signals (device, key) needed")
    incident: str = Field(description="incident kind created, e.g. 'fire'")
    linkage: str | None = Field(default=None, description="linkage plan run when the incident opens")
    work_order: str | None = Field(default=None, description="work order type created with the incident")


class DispatchRule(StrictModel):
    """An alarm type that goes straight to an incident and/or a work order (e.g. entrapment)."""

    name: str
    alarm: str
    incident: str | None = None
    work_order: str | None = None
    linkage: str | None = None


class LinkageStep(StrictModel):
    profiles: list[str] = Field(min_length=1, description="device profile ids the command is sent to")
    command: str
    args: dict[str, bool | int | float | str] = Field(default_factory=dict)


class LinkagePlan(StrictModel):
    steps: list[LinkageStep] = Field(min_length=1)
    ack_timeout: Duration = timedelta(seconds=10)
    retries: int = Field(default=2, ge=0, le=10)
    expires_after: Duration = timedelta(minutes=5)


class FlappingRule(StrictModel):
    window: Duration = timedelta(minutes=5)
    max_changes: int = Field(default=4, ge=2)
    hold: Duration = timedelta(minutes=2)


class SuppressionRules(StrictModel):
    gateway_offline: bool = True
    flapping: FlappingRule = FlappingRule()


class EscalationStep(StrictModel):
    after: Duration
    role: Role


class HeartbeatRules(StrictModel):
    device_window: Duration = timedelta(minutes=10)
    gateway_window: Duration = timedelta(minutes=3)
    profiles: dict[str, Duration] = Field(default_factory=dict, description="per-profile device window")


class SlaRule(StrictModel):
    dispatch: Duration = Field(description="accepted by a worker within this time of creation")
    arrive: Duration = Field(description="checked in on site within this time of creation")
    escalate_to: Role = Role.PROPERTY_MANAGER


class AutoWorkOrder(StrictModel):
    alarm: str
    type: str


class WorkOrderRules(StrictModel):
    sla: dict[str, SlaRule] = Field(default_factory=dict)
    from_alarms: list[AutoWorkOrder] = Field(default_factory=list)

    def sla_for(self, order_type: str) -> SlaRule:
        rule = self.sla.get(order_type) or self.sla.get("default")
        return rule or SlaRule(dispatch=timedelta(minutes=30), arrive=timedelta(hours=4))


class WelfareRule(StrictModel):
    door_profiles: list[str] = Field(default_factory=list)
    quiet_for: Duration = timedelta(hours=24)


class Rules(StrictModel):
    ignore_events: list[str] = Field(default_factory=lambda: ["linkage.action"])
    correlation: list[CorrelationRule] = Field(default_factory=list)
    dispatch: list[DispatchRule] = Field(default_factory=list)
    linkage: dict[str, LinkagePlan] = Field(default_factory=dict)
    suppression: SuppressionRules = SuppressionRules()
    escalation: dict[AlarmSeverity, list[EscalationStep]] = Field(default_factory=dict)
    heartbeat: HeartbeatRules = HeartbeatRules()
    work_orders: WorkOrderRules = WorkOrderRules()
    welfare: WelfareRule = WelfareRule()

    @model_validator(mode="after")
    def _linkage_plans_exist(self) -> Rules:
        for i, corr in enumerate(self.correlation):
            if corr.linkage and corr.linkage not in self.linkage:
                raise ValueError(f"correlation[{i}].linkage: no linkage plan named {corr.linkage!r}")
        for i, disp in enumerate(self.dispatch):
            if disp.linkage and disp.linkage not in self.linkage:
                raise ValueError(f"dispatch[{i}].linkage: no linkage plan named {disp.linkage!r}")
        return self

    def escalation_for(self, severity: str) -> list[EscalationStep]:
        return self.escalation.get(severity, [])  # type: ignore[call-overload,no-any-return]


def _issue(doc: Any, source: str, loc: tuple[int | str, ...], message: str) -> Issue:
    return Issue(source, line_of(doc, *loc), format_path(loc), message)


def vocabulary_issues(rules: Rules, catalog: Catalog, doc: Any = None, source: str = "<rules>") -> list[Issue]:
    """Profiles, commands (and their arguments) and event types the rules name that the profiles don't know."""
    out: list[Issue] = []
    for name, plan in rules.linkage.items():
        for i, step in enumerate(plan.steps):
            for k, profile_id in enumerate(step.profiles):
                problem = profile_problem(catalog, profile_id)
                if problem is None:
                    problem = command_problem(catalog.get(profile_id), step.command, step.args)
                    loc: tuple[int | str, ...] = ("linkage", name, "steps", i, "command")
                else:
                    loc = ("linkage", name, "steps", i, "profiles", k)
                if problem is not None:
                    out.append(_issue(doc, source, loc, problem))
    known = event_types(catalog, ENGINE_ALARMS)
    typed: list[tuple[tuple[int | str, ...], str]] = [
        (("ignore_events", k), t) for k, t in enumerate(rules.ignore_events)
    ]
    for i, corr in enumerate(rules.correlation):
        typed += [(("correlation", i, "signals", k), t) for k, t in enumerate(corr.signals)]
    typed += [(("dispatch", i, "alarm"), d.alarm) for i, d in enumerate(rules.dispatch)]
    typed += [
        (("work_orders", "from_alarms", i, "alarm"), a.alarm) for i, a in enumerate(rules.work_orders.from_alarms)
    ]
    for loc, etype in typed:
        if etype not in known:
            out.append(_issue(doc, source, loc, f"no profile, camera rule, gateway or engine raises {etype!r}"))
    for profile_id in rules.heartbeat.profiles:
        problem = profile_problem(catalog, profile_id)
        if problem is not None:
            out.append(_issue(doc, source, ("heartbeat", "profiles", profile_id), problem))
    for k, profile_id in enumerate(rules.welfare.door_profiles):
        problem = profile_problem(catalog, profile_id)
        if problem is not None:
            out.append(_issue(doc, source, ("welfare", "door_profiles", k), problem))
    return out


def parse_rules(doc: Any, source: str = "<rules>", catalog: Catalog | None = None) -> Rules:
    """Validate a parsed (round-trip) rules document and check it against the device profiles (default: the
    shipped ones); every problem in one :class:`RulesError`."""
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, dict):
        raise RulesError([Issue(source, 1, "", "a rules file must be a YAML mapping")])
    try:
        rules = Rules.model_validate(doc)
    except ValidationError as exc:
        raise RulesError(validation_issues(exc, doc, source)) from None
    issues = vocabulary_issues(rules, catalog if catalog is not None else load_catalog(), doc, source)
    if issues:
        raise RulesError(issues)
    return rules


def load_rules_text(text: str, source: str = "<rules>", catalog: Catalog | None = None) -> Rules:
    """Parse and validate rules, and check them against the device profiles (default: the shipped ones)."""
    try:
        doc = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise RulesError([Issue(source, None, "", f"not valid YAML: {exc}")]) from None
    return parse_rules(doc, source, catalog)


def rules_path(path: Path | str | None) -> Path:
    """The rules file to load: ``path``, or the shipped default."""
    return Path(path) if path else DEFAULT_RULES


def read_rules(path: Path | str | None = None) -> tuple[Any, str]:
    """The round-trip YAML document of a rules file (kept for line numbers) and its display name."""
    p = rules_path(path)
    try:
        return read_yaml(p, str(p)), str(p)
    except ProfileError as exc:
        raise RulesError(exc.issues) from None


def load_rules(path: Path | str | None = None, catalog: Catalog | None = None) -> Rules:
    """Load and validate a rules file (the shipped default when ``path`` is None) against the profiles."""
    doc, source = read_rules(path)
    return parse_rules(doc, source, catalog)
