"""The ``xiaoqu`` command: the composition root that wires the parts together."""

__version__ = "0.1.0"
