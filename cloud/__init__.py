"""The backend: ingest, storage, alarms, dispatch, devices, API and web (see docs/DEVELOPING.md)."""
