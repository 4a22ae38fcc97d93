"""One writer per uplink message kind; each adds its rows to the batch's open transaction
(:class:`~cloud.ingest.writers.tx.BatchContext`) and never commits: :mod:`cloud.ingest.store` opens the
one transaction of a batch and commits it before the worker acknowledges the MQTT messages."""
