"""Message ids: UUIDv7, unique and sortable by creation time."""

from uuid import UUID

import uuid6


def new_id() -> UUID:
    """A fresh UUIDv7 (time-ordered) message id."""
    return uuid6.uuid7()
