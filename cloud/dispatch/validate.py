"""Check a command against the device's profile before it is queued, so the API refuses a bad one at once.

The same validation the gateway runs (``device_profiles.commands.validate_args``): an unknown command or an
argument out of range is refused with the field and the allowed range instead of after a round trip to the
gateway. A device whose profile the backend does not know is let through: its gateway still validates.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from cloud.changes import as_json
from contract.messages import Scalar
from device_profiles import Catalog
from device_profiles.commands import CommandError, validate_args
from device_profiles.schema import CommandSpec


class CommandRefused(ValueError):
    """The profile does not accept this command: ``field`` is where (``("args", "duration_s")``), ``ctx`` what
    is allowed (``{"min": 1, "max": 600, "type": "int"}``)."""

    def __init__(self, field: tuple[str, ...], message: str, ctx: Mapping[str, JsonValue] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.ctx: dict[str, JsonValue] = dict(ctx or {})


def check_command(catalog: Catalog, profile_id: str | None, command: str,
                  args: Mapping[str, Scalar]) -> CommandSpec | None:
    """The profile's command spec when ``command`` with ``args`` is valid for the profile; None when the backend
    does not know the profile; :class:`CommandRefused` otherwise."""
    if profile_id is None or profile_id not in catalog:
        return None
    profile = catalog.get(profile_id)
    spec = profile.command(command)
    if spec is None:
        have = ", ".join(c.name for c in profile.commands) or "none"
        raise CommandRefused(("command",), f"profile {profile_id} has no command {command!r} (has: {have})",
                             {"profile": profile_id, "commands": [c.name for c in profile.commands]})
    try:
        validate_args(spec, args)
    except CommandError as exc:
        arg = spec.args.get(exc.arg) if exc.arg else None
        ctx: dict[str, JsonValue] = {"profile": profile_id, "command": command}
        if arg is not None:
            allowed: dict[str, JsonValue] = {"type": arg.type, "min": arg.min, "max": arg.max,
                                             "choices": as_json(arg.choices), "unit": arg.unit}
            ctx |= {k: v for k, v in allowed.items() if v is not None}
        raise CommandRefused(("args", exc.arg) if exc.arg else ("args",), str(exc), ctx) from None
    return spec
