"""Loads the gateway-agent test helpers under a unique module name (tests run with --import-mode=importlib)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("edge_agent_helpers", Path(__file__).with_name("agent_helpers.py"))
assert _spec is not None and _spec.loader is not None
_helpers = importlib.util.module_from_spec(_spec)
sys.modules["edge_agent_helpers"] = _helpers
_spec.loader.exec_module(_helpers)
