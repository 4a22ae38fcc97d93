-- The gateway's probe command (contract PROBE_COMMAND) answers with one result per point on its ack
-- (CommandAck.probe): kept with the ack, NULL for every other command.
ALTER TABLE command_acks ADD COLUMN IF NOT EXISTS probe jsonb;
