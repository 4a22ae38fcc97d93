"""Local linkage (本地联动): fire → release doors and recall elevators; e-bike in a car → hold its doors."""

from edge.linkage.engine import LinkageDevice, LinkageEngine

__all__ = ["LinkageDevice", "LinkageEngine"]
