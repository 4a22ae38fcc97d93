-- Telemetry, TimescaleDB flavour: a hypertable with compression and continuous aggregates.
-- Retention policies are set by the backend from DatabaseConfig (cloud.ingest.maintenance.apply_retention).
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS telemetry (
    ts         timestamptz NOT NULL,
    device_id  text NOT NULL,
    point      text NOT NULL,
    value      double precision,                    -- numbers and booleans (1/0)
    value_text text,                                -- strings
    quality    smallint NOT NULL DEFAULT 0          -- 0 good, 1 uncertain, 2 bad
);
SELECT create_hypertable('telemetry', by_range('ts', INTERVAL '1 day'), if_not_exists => true);
CREATE INDEX IF NOT EXISTS telemetry_device_point_ts_idx ON telemetry (device_id, point, ts DESC);

ALTER TABLE telemetry SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, point',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('telemetry', compress_after => INTERVAL '2 days', if_not_exists => true);

-- Same columns as the native rollup tables; bucket origins agree with date_bin(..., '2000-01-01').
CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket, device_id, point,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(value) AS count, last(value, ts) AS last
FROM telemetry WHERE value IS NOT NULL
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_5m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '5 minutes', ts) AS bucket, device_id, point,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(value) AS count, last(value, ts) AS last
FROM telemetry WHERE value IS NOT NULL
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, device_id, point,
       avg(value) AS avg, min(value) AS min, max(value) AS max, count(value) AS count, last(value, ts) AS last
FROM telemetry WHERE value IS NOT NULL
GROUP BY 1, 2, 3
WITH NO DATA;

SELECT add_continuous_aggregate_policy('telemetry_1m', start_offset => INTERVAL '3 hours',
    end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => true);
SELECT add_continuous_aggregate_policy('telemetry_5m', start_offset => INTERVAL '1 day',
    end_offset => INTERVAL '5 minutes', schedule_interval => INTERVAL '5 minutes', if_not_exists => true);
SELECT add_continuous_aggregate_policy('telemetry_1h', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => true);

-- Same index the native rollup tables have as their primary key.
CREATE INDEX IF NOT EXISTS telemetry_1m_device_idx ON telemetry_1m (device_id, point, bucket);
CREATE INDEX IF NOT EXISTS telemetry_5m_device_idx ON telemetry_5m (device_id, point, bucket);
CREATE INDEX IF NOT EXISTS telemetry_1h_device_idx ON telemetry_1h (device_id, point, bucket);
