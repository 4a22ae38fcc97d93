-- Telemetry, plain PostgreSQL flavour: range partitions by day (created ahead and dropped for
-- retention by the backend), rollup tables maintained by the backend from an invalidation log.
CREATE TABLE IF NOT EXISTS telemetry (
    ts         timestamptz NOT NULL,
    device_id  text NOT NULL,
    point      text NOT NULL,
    value      double precision,                    -- numbers and booleans (1/0)
    value_text text,                                -- strings
    quality    smallint NOT NULL DEFAULT 0          -- 0 good, 1 uncertain, 2 bad
) PARTITION BY RANGE (ts);
CREATE INDEX IF NOT EXISTS telemetry_device_point_ts_idx ON telemetry (device_id, point, ts DESC);

-- One partition per UTC day; safe to call concurrently and repeatedly.
CREATE OR REPLACE FUNCTION xq_ensure_telemetry_partition(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'telemetry_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('xq_telemetry_partitions'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
                           part, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
        END IF;
    END IF;
    RETURN part;
END
$$;

-- Minute ranges that received points since the last rollup refresh (written in the ingest transaction).
CREATE TABLE IF NOT EXISTS telemetry_dirty (
    lo timestamptz NOT NULL,
    hi timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS telemetry_1m (
    bucket    timestamptz NOT NULL,
    device_id text NOT NULL,
    point     text NOT NULL,
    avg       double precision,
    min       double precision,
    max       double precision,
    count     bigint NOT NULL,
    last      double precision,
    PRIMARY KEY (device_id, point, bucket)
);
CREATE TABLE IF NOT EXISTS telemetry_5m (LIKE telemetry_1m INCLUDING ALL);
CREATE TABLE IF NOT EXISTS telemetry_1h (LIKE telemetry_1m INCLUDING ALL);
CREATE INDEX IF NOT EXISTS telemetry_1m_bucket_idx ON telemetry_1m (bucket);
CREATE INDEX IF NOT EXISTS telemetry_5m_bucket_idx ON telemetry_5m (bucket);
CREATE INDEX IF NOT EXISTS telemetry_1h_bucket_idx ON telemetry_1h (bucket);
