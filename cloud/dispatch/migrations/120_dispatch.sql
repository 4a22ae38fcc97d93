-- Linkage commands, work orders, roster, notifications (cloud/dispatch).
CREATE SEQUENCE IF NOT EXISTS command_seq;

CREATE TABLE IF NOT EXISTS commands (
    id            uuid PRIMARY KEY,       -- = contract Command.id
    site_id       text NOT NULL,
    gateway_id    text NOT NULL,
    device_id     text NOT NULL,
    command       text NOT NULL,
    args          jsonb NOT NULL DEFAULT '{}'::jsonb,
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'sent', 'succeeded', 'failed', 'timed_out', 'rejected', 'expired')),
    attempts      int NOT NULL DEFAULT 0,
    max_attempts  int NOT NULL DEFAULT 1,
    retry_safe    boolean NOT NULL DEFAULT false,
    ack_timeout_s double precision NOT NULL DEFAULT 10,
    created_at    timestamptz NOT NULL,
    sent_at       timestamptz,
    finished_at   timestamptz,
    expires_at    timestamptz,
    reason        text,
    origin        text NOT NULL,
    incident_id   bigint,
    ack_id        uuid
);
CREATE INDEX IF NOT EXISTS commands_open ON commands (state) WHERE state IN ('queued', 'sent');
CREATE INDEX IF NOT EXISTS commands_incident ON commands (incident_id);

CREATE TABLE IF NOT EXISTS roster (
    id        bigserial PRIMARY KEY,
    username  text NOT NULL,
    grid_id   text NOT NULL,
    starts_at timestamptz NOT NULL,
    ends_at   timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS work_orders (
    id               bigserial PRIMARY KEY,
    site_id          text NOT NULL,
    building         text,
    floor            int,
    unit             text,
    grid_id          text,
    type             text NOT NULL,
    title            text NOT NULL,
    state            text NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'assigned', 'accepted', 'arrived', 'resolved', 'closed')),
    alarm_id         bigint,
    incident_id      bigint,
    assignee         text,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL,
    dispatch_due     timestamptz NOT NULL,
    arrival_due      timestamptz NOT NULL,
    accepted_at      timestamptz,
    arrived_at       timestamptz,
    arrival_photo    text,
    resolved_at      timestamptz,
    resolution_note  text,
    evidence         jsonb NOT NULL DEFAULT '[]'::jsonb,
    closed_at        timestamptz,
    closed_by        text,
    reopen_count     int NOT NULL DEFAULT 0,
    dispatch_breached boolean NOT NULL DEFAULT false,
    arrival_breached  boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS work_orders_open ON work_orders (state) WHERE state <> 'closed';
-- One open welfare check per unit.
CREATE UNIQUE INDEX IF NOT EXISTS work_orders_one_welfare ON work_orders (site_id, building, unit)
    WHERE type = 'welfare_check' AND state <> 'closed';
-- One automatic order per alarm.
CREATE UNIQUE INDEX IF NOT EXISTS work_orders_one_per_alarm ON work_orders (alarm_id) WHERE alarm_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS work_order_timeline (
    id       bigserial PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES work_orders (id),
    ts       timestamptz NOT NULL,
    kind     text NOT NULL,
    actor    text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS work_order_timeline_order ON work_order_timeline (order_id, id);

CREATE TABLE IF NOT EXISTS notifications (
    id        bigserial PRIMARY KEY,
    ts        timestamptz NOT NULL,
    channel   text NOT NULL,
    role      text,
    subject   text NOT NULL,
    body      jsonb NOT NULL,
    state     text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    error     text
);
