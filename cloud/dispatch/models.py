"""The dispatch domain as typed records: commands and their states, work orders and their history, the roster,
notifications, and the request bodies of the dispatch API.

Records mirror their tables (``cloud/dispatch/migrations``) column for column; :mod:`cloud.dispatch.repository`
reads and writes them, :mod:`cloud.dispatch.commands` and :mod:`cloud.dispatch.workorders` decide on them, and
the API returns them as they are.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, get_args
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from cloud.auth.roles import Role
from cloud.records import Record
from contract.base import StrictModel
from contract.messages import CommandStatus

# ---------------------------------------------------------------------------------------------------- commands


class CommandState(StrEnum):
    """Where a command is: ``queued`` → ``sent`` → one outcome. An outcome that arrives after the backend gave
    up (``timed_out``) is kept as ``<outcome>_late``."""

    QUEUED = "queued"
    SENT = "sent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REFUSED = "refused"
    SUCCEEDED_LATE = "succeeded_late"
    FAILED_LATE = "failed_late"
    REJECTED_LATE = "rejected_late"
    EXPIRED_LATE = "expired_late"
    REFUSED_LATE = "refused_late"

    @classmethod
    def outcome(cls, status: CommandStatus) -> CommandState:
        """The state a gateway's answer ``status`` puts an open command in."""
        return cls(status)

    @classmethod
    def late(cls, status: CommandStatus) -> CommandState:
        """The state an answer ``status`` puts a command in that the backend already marked ``timed_out``."""
        return cls(f"{status}_late")

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATES

    @property
    def is_late(self) -> bool:
        return self.value.endswith("_late")


OPEN_STATES = frozenset({CommandState.QUEUED, CommandState.SENT})
"""States in which a command still waits for its outcome."""
OUTCOMES: tuple[CommandStatus, ...] = get_args(CommandStatus)
"""What a gateway answers (:data:`contract.messages.CommandStatus`); also the on-time final states."""
FINAL_STATES = frozenset(s for s in CommandState if s not in OPEN_STATES)
"""Every state a command does not leave on its own (``timed_out`` still takes a late answer)."""


class Command(Record):
    """One row of ``commands``."""

    id: UUID
    site_id: str
    gateway_id: str
    device_id: str
    command: str
    args: dict[str, JsonValue]
    state: CommandState
    attempts: int
    max_attempts: int
    retry_safe: bool
    ack_timeout_s: float
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    reason: str | None
    origin: str
    incident_id: int | None
    ack_id: UUID | None
    timed_out_at: datetime | None = Field(description="when the backend stopped waiting for the answer")
    answered_at: datetime | None = Field(description="when the gateway reached its verdict")


class NewCommand(BaseModel):
    """A command to record as ``queued``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UUID
    site_id: str
    gateway_id: str
    device_id: str
    command: str
    args: dict[str, JsonValue]
    max_attempts: int
    retry_safe: bool
    ack_timeout_s: float
    created_at: datetime
    expires_at: datetime | None
    origin: str
    incident_id: int | None


class CommandAnswer(Record):
    """A gateway's answer to a command (the ``command_acks`` columns the backend decides on)."""

    id: UUID
    command_id: UUID
    gateway_id: str
    status: CommandStatus
    reason: str | None
    ts: datetime


class CommandIn(StrictModel):
    """``POST /api/commands``."""

    device_id: str
    command: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    args: dict[str, bool | int | float | str] = Field(default_factory=dict)
    ack_timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="how long to wait for the gateway's answer; default: the device "
        "profile's command timeout plus a transit margin. An answer after it is still recorded (<outcome>_late)"
    )
    retry_safe: bool | None = Field(
        default=None, description="may be re-sent on no answer; default: the profile command's safe_to_retry")
    max_attempts: int = Field(default=1, ge=1, le=10)


# ---------------------------------------------------------------------------------------------------- work orders

WorkOrderState = Literal["open", "assigned", "accepted", "arrived", "resolved", "closed"]
OrderAction = Literal["assign", "accept", "arrive", "resolve", "close", "reopen"]
SlaTimer = Literal["dispatch", "arrival"]


class WorkOrder(Record):
    """One row of ``work_orders``."""

    id: int
    site_id: str
    building: str | None
    floor: int | None
    unit: str | None
    grid_id: str | None
    type: str
    title: str
    state: WorkOrderState
    alarm_id: int | None
    incident_id: int | None
    assignee: str | None
    created_by: str
    created_at: datetime
    dispatch_due: datetime
    arrival_due: datetime
    accepted_at: datetime | None
    arrived_at: datetime | None
    arrival_photo: str | None
    resolved_at: datetime | None
    resolution_note: str | None
    evidence: list[str]
    closed_at: datetime | None
    closed_by: str | None
    reopen_count: int
    dispatch_breached: bool
    arrival_breached: bool


class NewWorkOrder(BaseModel):
    """A work order to insert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: str
    building: str | None
    floor: int | None
    unit: str | None
    grid_id: str | None
    type: str
    title: str
    state: WorkOrderState
    alarm_id: int | None
    incident_id: int | None
    assignee: str | None
    created_by: str
    created_at: datetime
    dispatch_due: datetime
    arrival_due: datetime


class WorkOrderEvent(Record):
    """One line of a work order's history (``work_order_timeline``)."""

    ts: datetime
    kind: str = Field(description="created, assigned, sla_breach or the action taken")
    actor: str
    detail: dict[str, JsonValue]


class WorkOrderDetail(WorkOrder):
    """A work order with its history, oldest first."""

    timeline: list[WorkOrderEvent]


class RosterEntry(Record):
    """One row of ``roster``: a worker on duty for a grid."""

    id: int
    username: str
    grid_id: str
    starts_at: datetime
    ends_at: datetime


class OrderIn(StrictModel):
    """``POST /api/orders``."""

    site_id: str
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    building: str | None = None
    floor: int | None = None
    unit: str | None = None
    alarm_id: int | None = None
    assignee: str | None = None


class AssignIn(StrictModel):
    assignee: str


class ArriveIn(StrictModel):
    photo: str | None = Field(default=None, description="evidence ref of a check-in photo (POST /api/evidence/{ref})")


class ResolveIn(StrictModel):
    note: str = Field(min_length=1)
    evidence: list[str] = Field(default_factory=list, description="evidence refs")


class ReopenIn(StrictModel):
    reason: str = Field(min_length=1)


class RosterIn(StrictModel):
    username: str
    grid_id: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime


# ---------------------------------------------------------------------------------------------------- notifications


class Notification(BaseModel):
    """A message for people: to a role (escalations) and/or named recipients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str
    body: dict[str, JsonValue]
    role: Role | None = None
    recipients: list[str] = Field(default_factory=list)
