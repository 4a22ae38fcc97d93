"""Evidence (snapshots, clips) from the gateway to the backend over HTTP; events carry an ``EvidenceRef``.

``EvidenceQueue`` keeps the files durable on disk within a budget; ``EvidenceUploader`` sends them with
retries. See docs/edge.md, "Evidence".

``EvidenceUploader`` (and with it httpx, ~6 MB resident) is imported on first use: the gateway config
imports this package for ``EvidenceConfig`` even when no evidence section is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.evidence.config import EvidenceConfig
from edge.evidence.queue import CONTENT_TYPES, EvidenceQueue, Pending, sha256_file

if TYPE_CHECKING:
    from edge.evidence.uploader import EvidenceUploader

__all__ = ["CONTENT_TYPES", "EvidenceConfig", "EvidenceQueue", "EvidenceUploader", "Pending", "sha256_file"]


def __getattr__(name: str) -> Any:
    if name == "EvidenceUploader":
        from edge.evidence.uploader import EvidenceUploader

        return EvidenceUploader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
