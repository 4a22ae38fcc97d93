"""The backend config reference (``docs/backend-config.md``), generated from :class:`cloud.config.BackendConfig`
and the models it uses (with the gateway reference's renderer, ``edge.config_reference.render``), so it never
drifts from what ``xiaoqu cloud config check`` accepts: ``python -m cloud.config_reference`` rewrites it and a
test fails while it is stale."""

from __future__ import annotations

import sys
from pathlib import Path

from cloud.config import BackendConfig
from edge.config_reference import render as render_models

DOC = Path(__file__).resolve().parents[1] / "docs" / "backend-config.md"

HEADER = """# Backend config reference

One file (YAML or JSON) configures every backend command: `xiaoqu cloud migrate`, `cloud ingest`, `cloud serve`,
`user add`, `gateway config push|show|history` and `report drill` all take it as `--config/-c FILE` and use the
sections they need (`serve` needs `api`). It is loaded once, at the command, into one typed
`cloud.config.BackendConfig`, and passed down. Every section refuses unknown keys; errors name the file, the
line and the field:

```
cloud.yaml:4: database.retension: unknown key (not part of the schema)
cloud.yaml:20: decision.notifications[0].roles[1]: unknown role 'pm'; roles: admin, property_manager, …
rules.yaml:8: escalation.critical[0].role: no notification channel delivers to 'property_manager': …
rules.yaml:4: dispatch[0].alarm: no profile, camera rule, gateway or engine raises 'elevator.entrapmnet'
```

`xiaoqu cloud config check [FILE]` validates a file, its rules and the profiles it names, and prints `OK`
and a summary, or every problem (exit 1). `serve` runs the same checks before it starts anything.

**Checks beyond each key's type.** The rules file (`decision.rules`, `docs/decision.md`) is validated with
file:line errors and checked against the device profiles — the shipped ones plus `decision.profiles`:
linkage plans name profiles and commands (with valid arguments) that exist; correlation signals, dispatch and
work-order alarms and ignored events name event types some profile, camera rule, the gateway or the engine
raises. Against this config: the roles of `decision.notifications` exist (`cloud/auth/roles.py`), and every
role the rules escalate to (`escalation`, `work_orders.sla.*.escalate_to`) reaches at least one channel.

**The broker.** `mqtt` is the broker the backend publishes on (commands, gateway configs). `ingest.mqtt` is
the ingest workers'. Name it once and both use it; give both to run each part with its own account (the
demo does). `--mqtt host:port` on the command line sets the address of both and keeps their accounts.

**Paths** written in the file (`decision.rules`, `decision.profiles`, `api.evidence_dir`) are relative to the
file; defaults are relative to the working folder. Command-line options (`--dsn`, `--flavour`, `--mqtt`,
`--host`, `--port`, `--rules`) override the file.

## Example

```yaml
database:
  dsn: postgresql://xiaoqu@db.internal:5432/xiaoqu
  retention_days: 30
mqtt:                       # serve's command publisher; ingest too, unless ingest.mqtt is given
  host: broker.internal
  port: 1883
  username: xq-serve
  password: change-me
ingest:
  client_id: xq-ingest      # worker i is xq-ingest-<i>; keep it stable (persistent broker session)
api:
  host: 0.0.0.0
  port: 8000
  jwt_secret: change-me-to-32-or-more-random-characters   # e.g. `openssl rand -hex 32`
  evidence_dir: /var/lib/xiaoqu/evidence
  gateway_upload_token: change-me-16-or-more-characters
decision:
  rules: rules.yaml         # next to this file; default: the shipped cloud/alarms/rules.yaml
  profiles: [profiles]      # your profile folders, added to the shipped ones
  notifications:
    - {type: log}
    - {type: webhook, url: "https://hooks.example/xiaoqu", secret: change-me-too, roles: [admin, property_manager]}
```

The sections below list every key, its type, its default and what it means (generated from the models).
"""

NOTES: dict[tuple[str, str], str] = {
    # What a key means, where the model itself gives no description.
    ("BackendConfig", "database"): "PostgreSQL (every command)",
    ("BackendConfig", "decision"): "the decision engine of `xiaoqu cloud serve`",
    ("DatabaseConfig", "pool_min"): "connections `serve` keeps open",
    ("DatabaseConfig", "pool_max"): "connections `serve` may open",
    ("MqttConfig", "host"): "broker address",
    ("MqttConfig", "port"): "broker port",
    ("MqttConfig", "username"): "broker account",
    ("MqttConfig", "password"): "its password",
    ("MqttConfig", "keepalive_s"): "MQTT keep-alive (ingest workers)",
    ("IngestConfig", "mqtt"): "the workers' broker; default: the top-level `mqtt`",
    ("IngestConfig", "batch_max_messages"): "messages per batch (one transaction)",
    ("IngestConfig", "partitions_ahead_days"): "telemetry partitions created ahead (native flavour)",
    ("IngestConfig", "retry_backoff_max_s"): "cap of the reconnect / write retry backoff",
    ("ApiConfig", "host"): "listen address",
    ("ApiConfig", "port"): "listen port",
    ("ApiConfig", "token_ttl_minutes"): "lifetime of an access token",
    ("ApiConfig", "evidence_max_bytes"): "largest evidence upload",
    ("ApiConfig", "login_throttle"): "lock-out after wrong passwords",
    ("WebhookConfig", "type"): "`webhook`: POST JSON signed with HMAC-SHA256 (docs/decision.md)",
    ("WebhookConfig", "url"): "where to POST",
    ("WebhookConfig", "secret"): "HMAC key (X-Xiaoqu-Signature)",
    ("WebhookConfig", "timeout_s"): "HTTP timeout",
    ("LogConfig", "type"): "`log`: the backend's log",
    ("LogConfig", "roles"): "only these roles' notifications; empty = all",
}


def render() -> str:
    return render_models(BackendConfig, HEADER, NOTES)


def main() -> None:
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")


if __name__ == "__main__":
    main()
