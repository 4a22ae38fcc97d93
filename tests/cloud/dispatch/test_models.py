"""The dispatch policy on typed records: command states (late answers included), the sweep's decision, work
order actions, and the API's declared response bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from cloud.dispatch import workorders as wo
from cloud.dispatch.commands import answer_state, sweep_decision
from cloud.dispatch.models import (
    FINAL_STATES,
    OPEN_STATES,
    OUTCOMES,
    Command,
    CommandAnswer,
    CommandState,
    WorkOrder,
)

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def command(state: CommandState = CommandState.SENT, **kw: object) -> Command:
    base: dict[str, object] = dict(
        id=uuid4(), site_id="s1", gateway_id="gw1", device_id="valve1", command="close_valve", args={},
        state=state, attempts=1, max_attempts=1, retry_safe=False, ack_timeout_s=45.0, created_at=T0, sent_at=T0,
        finished_at=None, expires_at=T0 + timedelta(minutes=5), reason=None, origin="pm1", incident_id=None,
        ack_id=None, timed_out_at=None, answered_at=None,
    )
    return Command.model_validate(base | kw)


def answer(status: str) -> CommandAnswer:
    return CommandAnswer.model_validate(
        dict(id=uuid4(), command_id=uuid4(), gateway_id="gw1", status=status, reason=None, ts=T0)
    )


def test_every_state_is_open_or_final_and_every_outcome_has_a_late_state():
    assert set(CommandState) == OPEN_STATES | FINAL_STATES
    assert not OPEN_STATES & FINAL_STATES
    for outcome in OUTCOMES:
        assert CommandState.outcome(outcome) in FINAL_STATES
        if outcome != "timed_out":
            assert CommandState.late(outcome).is_late
    assert CommandState("succeeded_late") is CommandState.SUCCEEDED_LATE
    assert "succeeded_late" in FINAL_STATES  # plain strings (rows, the console) compare equal


@pytest.mark.parametrize(
    ("current", "status", "expected"),
    [
        (CommandState.SENT, "succeeded", CommandState.SUCCEEDED),
        (CommandState.QUEUED, "refused", CommandState.REFUSED),
        (CommandState.SENT, "timed_out", CommandState.TIMED_OUT),  # the gateway's own timeout
        (CommandState.TIMED_OUT, "succeeded", CommandState.SUCCEEDED_LATE),
        (CommandState.TIMED_OUT, "failed", CommandState.FAILED_LATE),
        (CommandState.TIMED_OUT, "timed_out", None),
        (CommandState.SUCCEEDED, "failed", None),
        (CommandState.SUCCEEDED_LATE, "succeeded", None),
    ],
)
def test_answer_state(current, status, expected):
    assert answer_state(current, answer(status)) is expected


def test_sweep_decision():
    sent = command(ack_timeout_s=45.0)
    assert sweep_decision(sent, T0 + timedelta(seconds=44)) is None
    assert sweep_decision(sent, T0 + timedelta(seconds=45)) is CommandState.TIMED_OUT
    retry = command(retry_safe=True, attempts=1, max_attempts=3)
    assert sweep_decision(retry, T0 + timedelta(seconds=45)) is CommandState.SENT  # re-send, same id
    assert sweep_decision(command(retry_safe=True, attempts=3, max_attempts=3), T0 + timedelta(minutes=1)) is (
        CommandState.TIMED_OUT
    )
    assert sweep_decision(command(CommandState.QUEUED, sent_at=None), T0 + timedelta(minutes=1)) is None
    assert sweep_decision(command(CommandState.QUEUED, sent_at=None), T0 + timedelta(minutes=5)) is (
        CommandState.EXPIRED
    )


def order(**kw: object) -> WorkOrder:
    base: dict[str, object] = dict(
        id=7, site_id="s1", building="B1", floor=3, unit=None, grid_id="g1", type="repair", title="t",
        state="assigned", alarm_id=None, incident_id=None, assignee="wang", created_by="engine", created_at=T0,
        dispatch_due=T0 + timedelta(minutes=5), arrival_due=T0 + timedelta(minutes=30), accepted_at=None,
        arrived_at=None, arrival_photo=None, resolved_at=None, resolution_note=None, evidence=[], closed_at=None,
        closed_by=None, reopen_count=0, dispatch_breached=False, arrival_breached=False,
    )
    return WorkOrder.model_validate(base | kw)


def test_apply_action_on_a_work_order():
    accepted, detail = wo.apply_action(order(), "accept", "wang", T0)
    assert (accepted.state, accepted.accepted_at, detail) == ("accepted", T0, {})
    with pytest.raises(wo.WorkOrderError, match="assigned to 'wang'"):
        wo.apply_action(order(), "accept", "li", T0)
    resolved, detail = wo.apply_action(
        order(state="arrived"), "resolve", "wang", T0, note="fixed", evidence=["a.jpg"]
    )
    assert (resolved.state, resolved.resolution_note, resolved.evidence) == ("resolved", "fixed", ["a.jpg"])
    assert detail == {"note": "fixed", "evidence": ["a.jpg"]}
    reopened, detail = wo.apply_action(
        order(state="closed", closed_by="pm1", closed_at=T0, dispatch_breached=True), "reopen", "pm1", T0,
        note="no photo",
    )
    assert (reopened.state, reopened.reopen_count, reopened.closed_by, reopened.dispatch_breached) == (
        "assigned", 1, None, False
    )
    assert detail == {"reason": "no photo"}


def test_breached_timers():
    o = order()
    assert wo.breached_timers(o, T0) == []
    assert wo.breached_timers(o, T0 + timedelta(minutes=5)) == ["dispatch"]
    assert wo.breached_timers(o, T0 + timedelta(minutes=30)) == ["dispatch", "arrival"]
    assert wo.breached_timers(order(state="accepted", dispatch_breached=True), T0 + timedelta(hours=1)) == [
        "arrival"
    ]


def test_orders_and_commands_routes_declare_their_response_bodies():
    from cloud.api.routers import commands, orders

    for router in (orders.router, commands.router):
        for route in router.routes:
            assert getattr(route, "response_model", None) is not None, route


@pytest.mark.integration
def test_records_have_every_column_of_their_table(db):
    import psycopg

    from cloud.dispatch.models import RosterEntry, WorkOrderEvent

    def columns(table: str) -> set[str]:
        with psycopg.connect(db) as conn:
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
            ).fetchall()
        return {name for (name,) in rows}

    assert set(Command.model_fields) == columns("commands")
    assert set(WorkOrder.model_fields) == columns("work_orders")
    assert set(RosterEntry.model_fields) == columns("roster")
    assert set(WorkOrderEvent.model_fields) == columns("work_order_timeline") - {"id", "order_id"}
    assert set(CommandAnswer.model_fields) <= columns("command_acks")
