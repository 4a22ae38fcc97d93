"""Device registry: registration from gateway births, last-seen / online state from traffic."""
