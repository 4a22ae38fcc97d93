"""Evidence (snapshots, clips) from the gateway to the backend over HTTP; events carry an ``EvidenceRef``.

``EvidenceQueue`` keeps the files durable on disk within a budget; ``EvidenceUploader`` sends them with
retries. See docs/edge.md, "Evidence".
"""

from edge.evidence.config import EvidenceConfig
from edge.evidence.queue import CONTENT_TYPES, EvidenceQueue, Pending, sha256_file
from edge.evidence.uploader import EvidenceUploader

__all__ = ["CONTENT_TYPES", "EvidenceConfig", "EvidenceQueue", "EvidenceUploader", "Pending", "sha256_file"]
