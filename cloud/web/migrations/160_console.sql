-- The console (cloud/web): each compound's time zone and layout, and oversized live changes between API processes.
ALTER TABLE sites ADD COLUMN IF NOT EXISTS timezone text NOT NULL DEFAULT 'Asia/Shanghai';
-- {"buildings": [{"id": "B3", "name": "3号楼", "floors": 18, "units_per_floor": 4}, ...]}: buildings, their names
-- and floor counts for the compound map (devices alone do not say how tall an unequipped building is).
ALTER TABLE sites ADD COLUMN IF NOT EXISTS layout jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Changes too large for a NOTIFY payload (8000 bytes): stored here, the notification names the row
-- (cloud/alarms/bus.py). Short-lived; the relay deletes rows older than ten minutes.
CREATE UNLOGGED TABLE IF NOT EXISTS xq_change_payloads (
    id      bigserial PRIMARY KEY,
    ts      timestamptz NOT NULL DEFAULT now(),
    payload jsonb NOT NULL
);
