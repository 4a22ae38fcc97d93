"""Mosquitto security: the project CA, TLS, per-gateway accounts and the ACL (``xiaoqu cloud broker``)."""
