"""Generate the JSON Schema of every contract message into ``contract/schemas/``.

Run ``python -m contract.schema_gen`` after changing a model; a test fails while the files are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contract.messages import ALL_MESSAGES, CONTRACT_VERSION

SCHEMA_DIR = Path(__file__).parent / "schemas"


def render() -> dict[str, str]:
    """File name → schema text for every message model."""
    out: dict[str, str] = {}
    for model in ALL_MESSAGES:
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://xiaoqu.invalid/contract/v{CONTRACT_VERSION}/{model.__name__}.json"
        out[f"{model.__name__}.json"] = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return out


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in render().items():
        (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(ALL_MESSAGES)} schemas to {SCHEMA_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
