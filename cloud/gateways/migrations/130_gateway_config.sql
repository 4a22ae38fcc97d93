-- Gateway configuration kept by the backend (owned by cloud/gateways): every pushed version, never updated.
CREATE TABLE IF NOT EXISTS gateway_configs (
    gateway_id text NOT NULL REFERENCES gateways (id) ON DELETE CASCADE,
    version    int NOT NULL CHECK (version >= 1),
    document   text NOT NULL,                  -- YAML: devices, linkage, polling, telemetry, profiles
    sha256     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    comment    text,
    PRIMARY KEY (gateway_id, version)
);

-- What the gateway reports on its birth: the pushed version in force, or why the last one was refused.
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS config_version int;
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS config_error text;
