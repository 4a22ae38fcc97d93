-- One active alarm per (device, key) instead of (device, type): two zones of one fire panel are two
-- alarms, and a clear closes only its own key. The alarm's place may be the zone's (unit, area added).
-- Works on a fresh database and on one that holds alarms already (their key becomes their type, which is
-- what they were unique on).
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS key text;
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS unit text;
ALTER TABLE alarms ADD COLUMN IF NOT EXISTS area text;
UPDATE alarms SET key = type WHERE key IS NULL;
ALTER TABLE alarms ALTER COLUMN key SET NOT NULL;

DROP INDEX IF EXISTS alarms_one_active;
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_active_key ON alarms (device_id, key) WHERE active;
DROP INDEX IF EXISTS alarms_device_type_created;
CREATE INDEX IF NOT EXISTS alarms_device_key_created ON alarms (device_id, key, created_at DESC);
