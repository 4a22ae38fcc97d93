"""Roles and the permission matrix: which role may do what (the one place that says so)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PROPERTY_MANAGER = "property_manager"
    GRID_WORKER = "grid_worker"
    INSTALLER = "installer"


A, PM, GW, IN = Role.ADMIN, Role.PROPERTY_MANAGER, Role.GRID_WORKER, Role.INSTALLER

# permission → roles holding it. Grid workers are further scoped to their grid (see ``is_grid_scoped``).
PERMISSIONS: dict[str, frozenset[Role]] = {
    "users.manage": frozenset({A}),
    "sites.read": frozenset({A, PM, GW, IN}),
    "sites.write": frozenset({A}),
    "devices.read": frozenset({A, PM, IN}),
    "devices.register": frozenset({A, IN}),
    "devices.probe": frozenset({A, IN}),  # the gateway reads every point of a device once (read-only)
    "telemetry.read": frozenset({A, PM, IN}),
    "alarms.read": frozenset({A, PM, GW}),
    "alarms.ack": frozenset({A, PM}),
    "alarms.clear": frozenset({A, PM}),
    "alarms.comment": frozenset({A, PM, GW}),
    "alarms.assign": frozenset({A, PM}),
    "suppression.manage": frozenset({A, PM}),
    "incidents.read": frozenset({A, PM}),
    "incidents.close": frozenset({A, PM}),
    "commands.issue": frozenset({A, PM}),
    "commands.read": frozenset({A, PM, IN}),
    "orders.read": frozenset({A, PM, GW}),
    "orders.create": frozenset({A, PM}),
    "orders.assign": frozenset({A, PM}),
    "orders.work": frozenset({A, GW}),  # accept / arrive / resolve (grid workers act on their own orders)
    "orders.verify": frozenset({A, PM}),  # close or re-open
    "roster.manage": frozenset({A, PM}),
    "audit.read": frozenset({A, PM}),
    "evidence.upload": frozenset({A, PM, GW, IN}),
    "evidence.read": frozenset({A, PM, GW}),
    "stream.subscribe": frozenset({A, PM, GW}),
    "gateways.config.read": frozenset({A, IN}),
    "gateways.config.write": frozenset({A, IN}),
}


def allowed(role: Role | str, permission: str) -> bool:
    """True when ``role`` holds ``permission``; unknown permissions are refused to everyone."""
    try:
        r = Role(role)
    except ValueError:
        return False
    return r in PERMISSIONS.get(permission, frozenset())


def is_grid_scoped(role: Role | str) -> bool:
    """Grid workers see only their grid's alarms and orders."""
    return Role(role) is Role.GRID_WORKER
