-- Device registry: sites, grids, gateways, devices (owned by cloud/devices).
CREATE TABLE IF NOT EXISTS sites (
    id         text PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS grids (
    id        text PRIMARY KEY,
    site_id   text NOT NULL REFERENCES sites (id),
    name      text NOT NULL DEFAULT '',
    buildings text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS gateways (
    id           text PRIMARY KEY,
    site_id      text NOT NULL REFERENCES sites (id),
    state        text NOT NULL DEFAULT 'unknown',   -- online | offline | unknown (from birth / last will)
    state_reason text,
    state_seq    bigint,                            -- seq of the state message applied (stale ones are ignored)
    last_seen    timestamptz,                       -- last message of any kind received from it
    software     text,
    health       jsonb,                             -- latest HealthReport.health
    health_at    timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS devices (
    id         text PRIMARY KEY,
    gateway_id text REFERENCES gateways (id) ON DELETE SET NULL,
    profile_id text NOT NULL,
    site_id    text NOT NULL REFERENCES sites (id),
    building   text,
    floor      integer,
    unit       text,
    area       text,
    name       text,
    state      text NOT NULL DEFAULT 'unknown',     -- online | offline | unknown (from traffic)
    last_seen  timestamptz,                         -- newest observation time received from it
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS devices_gateway_idx ON devices (gateway_id);
CREATE INDEX IF NOT EXISTS devices_site_building_idx ON devices (site_id, building, floor);
CREATE INDEX IF NOT EXISTS gateways_site_idx ON gateways (site_id);
