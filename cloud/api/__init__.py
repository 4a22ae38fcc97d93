"""The HTTP API (FastAPI, OpenAPI at /api/docs) and the WebSocket stream of alarm and order changes."""
