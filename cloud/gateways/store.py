"""The ``gateway_configs`` table: every version of each gateway's config document, and what the gateway applied."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from cloud.auth.store import audit

MAX_DOCUMENT_BYTES = 1_000_000  # GatewayConfigPush.document's limit


class DocumentError(ValueError):
    """The document is not a YAML mapping (the gateway checks everything else and reports on its state)."""


class UnknownGateway(LookupError):
    pass


@dataclass(frozen=True)
class ConfigVersion:
    gateway_id: str
    site_id: str
    version: int
    document: str
    sha256: str
    created_at: datetime
    created_by: str
    comment: str | None


@dataclass(frozen=True)
class Applied:
    """What the gateway last reported on its birth."""

    state: str
    config_version: int | None
    config_error: str | None


def sha256_text(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def check_document(document: str) -> None:
    """Raise :class:`DocumentError` unless ``document`` is a YAML mapping within the size limit."""
    if len(document.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        data = YAML(typ="safe").load(document)
    except YAMLError as exc:
        raise DocumentError(f"YAML syntax: {exc}") from None
    if not isinstance(data, dict):
        raise DocumentError("a gateway config document must be a YAML mapping (devices:, linkage:, …)")


_COLUMNS = "c.gateway_id, g.site_id, c.version, c.document, c.sha256, c.created_at, c.created_by, c.comment"


async def put_config(
    conn: AsyncConnection[Any], gateway_id: str, document: str, actor: str, comment: str | None = None
) -> ConfigVersion:
    """Store ``document`` as the gateway's next version (in the caller's transaction) and audit it."""
    check_document(document)
    cur = await conn.execute("SELECT site_id FROM gateways WHERE id = %s FOR UPDATE", (gateway_id,))
    if await cur.fetchone() is None:
        raise UnknownGateway(f"gateway {gateway_id!r} is unknown (it registers with its first birth message)")
    async with conn.cursor(row_factory=class_row(ConfigVersion)) as dc:
        await dc.execute(
            f"""
            WITH ins AS (
                INSERT INTO gateway_configs (gateway_id, version, document, sha256, created_by, comment)
                SELECT %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s FROM gateway_configs WHERE gateway_id = %s
                RETURNING *
            )
            SELECT {_COLUMNS} FROM ins AS c JOIN gateways AS g ON g.id = c.gateway_id
            """,
            (gateway_id, document, sha256_text(document), actor, comment, gateway_id),
        )
        stored = await dc.fetchone()
    assert stored is not None
    await audit(conn, actor, "gateway.config.push", "gateway", gateway_id,
                {"version": stored.version, "sha256": stored.sha256, "comment": comment})
    return stored


async def get_config(conn: AsyncConnection[Any], gateway_id: str, version: int | None = None) -> ConfigVersion | None:
    """One version (default: the latest)."""
    async with conn.cursor(row_factory=class_row(ConfigVersion)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM gateway_configs AS c JOIN gateways AS g ON g.id = c.gateway_id "
            "WHERE c.gateway_id = %s AND (%s::int IS NULL OR c.version = %s) ORDER BY c.version DESC LIMIT 1",
            (gateway_id, version, version),
        )
        return await cur.fetchone()


async def history(conn: AsyncConnection[Any], gateway_id: str, limit: int = 100) -> list[ConfigVersion]:
    """Newest first."""
    async with conn.cursor(row_factory=class_row(ConfigVersion)) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM gateway_configs AS c JOIN gateways AS g ON g.id = c.gateway_id "
            "WHERE c.gateway_id = %s ORDER BY c.version DESC LIMIT %s",
            (gateway_id, min(max(limit, 1), 1000)),
        )
        return await cur.fetchall()


async def applied(conn: AsyncConnection[Any], gateway_id: str) -> Applied | None:
    cur = await conn.execute("SELECT state, config_version, config_error FROM gateways WHERE id = %s", (gateway_id,))
    row = await cur.fetchone()
    return None if row is None else Applied(str(row[0]), row[1], row[2])
