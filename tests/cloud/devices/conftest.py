"""The device-registry tests run ingest for real: they share the ingest tests' fixtures (loaded under a unique
module name, since tests run with --import-mode=importlib)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("ingest_fixtures", Path(__file__).parents[1] / "ingest" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules["ingest_fixtures"] = _fixtures
_spec.loader.exec_module(_fixtures)

h = _fixtures.h
migrated = _fixtures.migrated
publisher = _fixtures.publisher
start_worker = _fixtures.start_worker
