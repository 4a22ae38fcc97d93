-- Alarms, their timeline and comments, incidents, suppression windows (cloud/alarms).
CREATE TABLE IF NOT EXISTS alarms (
    id                 bigserial PRIMARY KEY,
    site_id            text,
    gateway_id         text,
    device_id          text NOT NULL,       -- the device, or the gateway id for gateway-level alarms
    building           text,
    floor              int,
    type               text NOT NULL,
    severity           text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    life_safety        boolean NOT NULL DEFAULT false,
    active             boolean NOT NULL DEFAULT true,
    acknowledged       boolean NOT NULL DEFAULT false,
    acked_by           text,
    acked_at           timestamptz,
    cleared_by         text,
    cleared_at         timestamptz,
    first_ts           timestamptz NOT NULL,
    last_ts            timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    occurrence_count   int NOT NULL DEFAULT 1,
    folded_count       int NOT NULL DEFAULT 0,  -- child alarms folded in (suppression)
    assignee           text,
    evidence           jsonb NOT NULL DEFAULT '[]'::jsonb,
    detail             jsonb NOT NULL DEFAULT '{}'::jsonb,
    incident_id        bigint,
    escalation_level   int NOT NULL DEFAULT 0,
    next_escalation_at timestamptz,
    flapping           boolean NOT NULL DEFAULT false,
    clear_pending_at   timestamptz           -- flapping damping: clear deferred until then
);
-- One active alarm per device + type, guarded by the database (two racing raises → one row).
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_active ON alarms (device_id, type) WHERE active;
CREATE INDEX IF NOT EXISTS alarms_building ON alarms (site_id, building) WHERE active;
CREATE INDEX IF NOT EXISTS alarms_escalation ON alarms (next_escalation_at) WHERE active AND NOT acknowledged;
CREATE INDEX IF NOT EXISTS alarms_device_type_created ON alarms (device_id, type, created_at DESC);

-- Which event raised / cleared / bumped which alarm: makes event handling idempotent.
CREATE TABLE IF NOT EXISTS alarm_event_links (
    event_id uuid PRIMARY KEY,
    alarm_id bigint REFERENCES alarms (id),
    outcome  text NOT NULL,               -- raised, occurrence, cleared, suppressed, folded, ignored
    reason   text,
    ts       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS alarm_timeline (
    id       bigserial PRIMARY KEY,
    alarm_id bigint NOT NULL REFERENCES alarms (id),
    ts       timestamptz NOT NULL,
    kind     text NOT NULL,               -- raised, occurrence, acknowledged, cleared, escalated, ...
    actor    text NOT NULL,
    detail   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS alarm_timeline_alarm ON alarm_timeline (alarm_id, id);

CREATE TABLE IF NOT EXISTS alarm_comments (
    id       bigserial PRIMARY KEY,
    alarm_id bigint NOT NULL REFERENCES alarms (id),
    ts       timestamptz NOT NULL,
    author   text NOT NULL,
    text     text NOT NULL
);

CREATE TABLE IF NOT EXISTS incidents (
    id         bigserial PRIMARY KEY,
    site_id    text NOT NULL,
    building   text NOT NULL,
    floor      int,
    kind       text NOT NULL,
    rule       text NOT NULL,
    state      text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    alarm_ids  bigint[] NOT NULL DEFAULT '{}',
    opened_at  timestamptz NOT NULL,
    closed_at  timestamptz,
    closed_by  text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- One open incident per building and kind: racing correlations open it once.
CREATE UNIQUE INDEX IF NOT EXISTS incidents_one_open ON incidents (site_id, building, kind) WHERE state = 'open';

-- Maintenance / 屏蔽 windows: events from matching devices do not raise alarms.
CREATE TABLE IF NOT EXISTS suppression_windows (
    id         bigserial PRIMARY KEY,
    site_id    text NOT NULL,
    building   text,
    floor      int,
    device_id  text,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Units flagged for elderly care (welfare-check orders on long door inactivity).
CREATE TABLE IF NOT EXISTS welfare_units (
    site_id  text NOT NULL,
    building text NOT NULL,
    unit     text NOT NULL,
    note     text,
    PRIMARY KEY (site_id, building, unit)
);
