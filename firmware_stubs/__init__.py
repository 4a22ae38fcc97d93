"""Device-side reference firmware (MicroPython) and the CPython shim that runs it in the simulators."""
