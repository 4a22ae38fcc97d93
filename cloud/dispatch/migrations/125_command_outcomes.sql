-- Command outcomes (cloud/dispatch/commands.py): the device may refuse ('refused'), and an answer that arrives
-- after the backend gave up ('timed_out') is recorded as '<outcome>_late' with both times: timed_out_at (when
-- the backend stopped waiting) and answered_at (when the gateway reached its verdict).
ALTER TABLE commands DROP CONSTRAINT IF EXISTS commands_state_check;
ALTER TABLE commands ADD CONSTRAINT commands_state_check CHECK (state IN (
    'queued', 'sent', 'succeeded', 'failed', 'timed_out', 'rejected', 'expired', 'refused',
    'succeeded_late', 'failed_late', 'rejected_late', 'expired_late', 'refused_late'));
ALTER TABLE commands ADD COLUMN IF NOT EXISTS timed_out_at timestamptz;
ALTER TABLE commands ADD COLUMN IF NOT EXISTS answered_at timestamptz;
