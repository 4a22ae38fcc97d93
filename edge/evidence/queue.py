"""The durable evidence queue: files under ``<spool>/files/<ref>``, their state in ``<spool>/queue.sqlite3``.

A file is *pending* until the backend accepted it, *uploaded* after, *failed* when the backend refused it
for good (409: other content under the ref; 413/415/422). The files stay on disk in every state; only
the budget (:meth:`EvidenceQueue.enforce_budget`) deletes them, in this order:

1. uploaded files, oldest first (the backend has them);
2. pending/failed files that are not protected, oldest first (evidence lost: logged as a warning);
3. only while over the hard cap: pending protected files (snapshots of a still-active critical or
   life-safety event), oldest first (logged as an error).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from contract.messages import EvidenceRef

logger = logging.getLogger(__name__)

ContentType = Literal["image/jpeg", "image/png", "video/mp4"]
CONTENT_TYPES: dict[str, ContentType] = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    ref TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    device TEXT NOT NULL,
    event TEXT NOT NULL,
    protected INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'uploaded', 'failed')),
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    uploaded_at REAL
);
CREATE INDEX IF NOT EXISTS evidence_due ON evidence (state, next_attempt);
"""


@dataclass(frozen=True, slots=True)
class Pending:
    """One file waiting for upload."""

    ref: str
    path: Path
    sha256: str
    size: int
    content_type: ContentType
    attempts: int
    protected: bool


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            h.update(chunk)
    return h.hexdigest()


class EvidenceQueue:
    """Durable: a file added here survives a restart until the backend has it (or the budget removes it)."""

    def __init__(
        self, directory: Path, *, budget_bytes: int, cap_bytes: int, now: Callable[[], float] = time.time
    ) -> None:
        if cap_bytes < budget_bytes:
            raise ValueError("cap_bytes must be at least budget_bytes")
        self.directory = directory
        self.files = directory / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.budget_bytes = budget_bytes
        self.cap_bytes = cap_bytes
        self._now = now
        self._lock = threading.Lock()
        self._db = sqlite3.connect(directory / "queue.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.dropped_total = 0
        self._recover()

    # --- lifecycle -----------------------------------------------------------------------------------------
    def _recover(self) -> None:
        """After a crash: drop half-copied files and files without a row; forget rows whose file is gone."""
        with self._lock:
            known = {r for (r,) in self._db.execute("SELECT ref FROM evidence")}
            for p in self.files.iterdir():
                if p.name not in known:
                    logger.info("evidence: removing orphan file %s", p)
                    p.unlink(missing_ok=True)
            for ref in sorted(known):
                if not (self.files / ref).exists():
                    logger.error("evidence %s: file missing from %s; forgetting it", ref, self.files)
                    self._db.execute("DELETE FROM evidence WHERE ref = ?", (ref,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- producer side -------------------------------------------------------------------------------------
    def add(
        self, source: Path, *, ref: str, device: str, event: str, protected: bool,
        content_type: ContentType | None = None,
    ) -> EvidenceRef:
        """Take a copy of ``source`` (a hard link when possible) and queue it; returns the event's reference.

        Raises ``OSError`` when the source cannot be read, ``ValueError`` for an unknown file type or a
        ref already queued.
        """
        ctype = content_type or CONTENT_TYPES.get(source.suffix.lower())
        if ctype is None:
            raise ValueError(f"no evidence content type for {source.name!r}")
        ref_model = EvidenceRef(ref=ref, content_type=ctype, sha256="0" * 64, size=0)  # validates the ref
        dest = self.files / ref
        tmp = self.files / f".{ref}.part"
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        digest, size = sha256_file(tmp), tmp.stat().st_size
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO evidence (ref, sha256, size, content_type, device, event, protected, state, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (ref, digest, size, ctype, device, event, int(protected), self._now()),
                )
            except sqlite3.IntegrityError:
                tmp.unlink(missing_ok=True)
                raise ValueError(f"evidence ref {ref!r} is already queued") from None
            tmp.replace(dest)
        self.enforce_budget()
        return ref_model.model_copy(update={"sha256": digest, "size": size})

    def release(self, device: str, event: str) -> int:
        """The event cleared: its pending snapshots lose their protection from the budget."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE evidence SET protected = 0 WHERE device = ? AND event = ? AND protected = 1", (device, event)
            )
            return cur.rowcount

    # --- uploader side -------------------------------------------------------------------------------------
    def due(self, limit: int = 32) -> list[Pending]:
        """Pending files whose retry time has come: protected first, then oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT ref, sha256, size, content_type, attempts, protected FROM evidence"
                " WHERE state = 'pending' AND next_attempt <= ? ORDER BY protected DESC, created, rowid LIMIT ?",
                (self._now(), limit),
            ).fetchall()
        return [Pending(r, self.files / r, s, n, cast(ContentType, c), a, bool(p)) for r, s, n, c, a, p in rows]

    def next_due_in(self) -> float | None:
        """Seconds until the next pending file is due (0 when one is due now); None when nothing is pending."""
        with self._lock:
            (t,) = self._db.execute("SELECT MIN(next_attempt) FROM evidence WHERE state = 'pending'").fetchone()
        return None if t is None else max(0.0, float(t) - self._now())

    def mark_uploaded(self, ref: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE evidence SET state = 'uploaded', uploaded_at = ?, last_error = NULL WHERE ref = ?",
                (self._now(), ref),
            )

    def mark_retry(self, ref: str, error: str, delay_s: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE evidence SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE ref = ?",
                (self._now() + delay_s, error[:500], ref),
            )

    def mark_failed(self, ref: str, error: str) -> None:
        """The backend refused the file for good; it is kept (until the budget needs the room) but not retried."""
        with self._lock:
            self._db.execute(
                "UPDATE evidence SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE ref = ?",
                (error[:500], ref),
            )

    def forget(self, ref: str, reason: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM evidence WHERE ref = ?", (ref,))
        (self.files / ref).unlink(missing_ok=True)
        self.dropped_total += 1
        logger.error("evidence %s dropped: %s", ref, reason)

    def retry_all_now(self) -> None:
        """The backend is reachable again: every pending file is due now instead of after its backoff."""
        with self._lock:
            self._db.execute("UPDATE evidence SET next_attempt = 0 WHERE state = 'pending'")

    # --- budget --------------------------------------------------------------------------------------------
    def bytes_used(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM evidence").fetchone()
        return int(n)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM evidence GROUP BY state").fetchall()
        out = {"pending": 0, "uploaded": 0, "failed": 0}
        out.update({str(s): int(n) for s, n in rows})
        return out

    def state(self, ref: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM evidence WHERE ref = ?", (ref,)).fetchone()
        return None if row is None else str(row[0])

    def enforce_budget(self) -> int:
        """Delete files until the spool fits ``budget_bytes`` (see the module doc for the order); returns how many."""
        steps: list[tuple[str, int, int]] = [
            ("state = 'uploaded'", self.budget_bytes, logging.DEBUG),
            ("state != 'uploaded' AND protected = 0", self.budget_bytes, logging.WARNING),
            ("state != 'uploaded'", self.cap_bytes, logging.ERROR),
        ]
        removed = 0
        total = self.bytes_used()
        for where, limit, level in steps:
            if total <= limit:
                continue
            with self._lock:
                rows = self._db.execute(
                    f"SELECT ref, size, state FROM evidence WHERE {where} ORDER BY created, rowid"
                ).fetchall()
            for ref, size, state in rows:
                if total <= limit:
                    break
                with self._lock:
                    self._db.execute("DELETE FROM evidence WHERE ref = ?", (ref,))
                (self.files / ref).unlink(missing_ok=True)
                total -= int(size)
                removed += 1
                if state != "uploaded":
                    self.dropped_total += 1
                logger.log(level, "evidence budget: deleted %s (%s, %d bytes); spool now %d bytes", ref, state,
                           size, total)
        return removed
