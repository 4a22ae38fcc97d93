"""Device profiles: one YAML file per device type, read alike by the edge, the simulators and the backend.

A new device type is a new YAML file, not new code.
"""

from device_profiles.compiled import CompiledProfile, ConcreteEvent, ConcretePoint
from device_profiles.loader import SHIPPED_DIR, Catalog, Issue, ProfileError, UnknownProfile, load_catalog, load_profile
from device_profiles.schema import Profile

__all__ = [
    "SHIPPED_DIR",
    "Catalog",
    "CompiledProfile",
    "ConcreteEvent",
    "ConcretePoint",
    "Issue",
    "Profile",
    "ProfileError",
    "UnknownProfile",
    "load_catalog",
    "load_profile",
]
