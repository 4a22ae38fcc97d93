"""Users, roles and permissions, JWT tokens, and the audit log."""
