-- What ingest stores besides telemetry: the idempotency guard, events, command acks, dead letters.
CREATE TABLE IF NOT EXISTS ingested_messages (
    id          uuid PRIMARY KEY,                   -- TelemetryBatch.id
    gateway_id  text NOT NULL,
    seq         bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ingested_messages_received_idx ON ingested_messages (received_at);

CREATE TABLE IF NOT EXISTS events (
    id          uuid PRIMARY KEY,                   -- Event.id (message id)
    gateway_id  text NOT NULL,
    seq         bigint NOT NULL,
    device_id   text NOT NULL,
    type        text NOT NULL,
    severity    text NOT NULL,
    active      boolean NOT NULL,
    life_safety boolean NOT NULL DEFAULT false,
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL DEFAULT '{}',
    evidence    jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS events_device_ts_idx ON events (device_id, ts DESC);
CREATE INDEX IF NOT EXISTS events_ts_idx ON events (ts DESC);

CREATE TABLE IF NOT EXISTS command_acks (
    id          uuid PRIMARY KEY,                   -- CommandAck.id (message id)
    command_id  uuid NOT NULL,
    gateway_id  text NOT NULL,
    device_id   text NOT NULL,
    status      text NOT NULL,
    reason      text,
    detail      jsonb NOT NULL DEFAULT '{}',
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS command_acks_command_idx ON command_acks (command_id);

CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    payload      bytea NOT NULL,                    -- the first bytes only (bounded, 4 KiB by default)
    payload_size integer NOT NULL,                  -- the full size
    code         text NOT NULL,                     -- malformed | unsupported_version | bad_topic | unknown_device | rejected
    reason       text NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received_idx ON dead_letters (received_at);
