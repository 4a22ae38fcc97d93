-- Event identity (contract v2): the key of the condition at the device (``fire.alarm#12``: zone 12 of a
-- panel) and, when the gateway knows better than the device's place, the condition's location.
-- Rows stored before this migration keep key NULL and are read as key = type (what a version 1 event's
-- key is): no rewrite of the events table.
ALTER TABLE events ADD COLUMN IF NOT EXISTS key text;
ALTER TABLE events ADD COLUMN IF NOT EXISTS location jsonb;
