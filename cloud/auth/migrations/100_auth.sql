-- Users, roles and the audit log (cloud/auth).
CREATE TABLE IF NOT EXISTS users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'property_manager', 'grid_worker', 'installer')),
    grid_id       text,
    full_name     text,
    phone         text,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial PRIMARY KEY,
    ts          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,           -- username, or 'engine' / 'gateway:<id>'
    action      text NOT NULL,           -- e.g. alarm.ack, command.issue, work_order.close
    target_type text NOT NULL,
    target_id   text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts DESC);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target_type, target_id);
