"""Ingest: MQTT shared-subscription consumers that batch telemetry into COPY and ack after commit."""
