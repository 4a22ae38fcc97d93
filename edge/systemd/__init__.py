"""The systemd unit shipped with the gateway (package data; see edge.service_install)."""
