-- Presence from the device's own liveness (cloud/devices/registry.py).
-- offline_since: set by the gateway's device.offline event (last will, heartbeat window), cleared by its clear;
-- while set, only an observation newer than it brings the device back online, so stale values a gateway
-- republishes never make an offline device look online.
ALTER TABLE devices ADD COLUMN IF NOT EXISTS offline_since timestamptz;

-- The boot epoch of the state message applied: a gateway re-imaged with a fresh outbox (same id, seq from 1
-- again) starts a new, higher epoch; state messages are ordered by (state_epoch, state_seq).
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS state_epoch bigint NOT NULL DEFAULT 0;
