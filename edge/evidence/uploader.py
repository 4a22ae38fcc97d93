"""Uploads queued evidence files to the backend (``POST <url>/<ref>``) with retries and a capped backoff.

Runs as one asyncio task with ``httpx.AsyncClient``; the file is read in a worker thread, so the event
loop never waits on disk or network. The queue (:mod:`edge.evidence.queue`) is the durable part: the
uploader holds nothing that a restart would lose.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from typing import Literal

import httpx

from edge.evidence.config import EvidenceConfig
from edge.evidence.queue import EvidenceQueue, Pending

logger = logging.getLogger(__name__)

Outcome = Literal["uploaded", "refused", "retry"]

# The backend will never accept this file under this ref: other content already there (409), too large
# (413), a content type it does not take (415), the sha256 does not match the bytes (422).
PERMANENT = frozenset({409, 413, 415, 422})


class EvidenceUploader:
    def __init__(
        self, config: EvidenceConfig, queue: EvidenceQueue, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self.queue = queue
        self._transport = transport
        self._wake = asyncio.Event()
        self.uploaded_total = 0
        self.failures_in_a_row = 0

    def wake(self) -> None:
        """A file was queued: look now (a running backoff is not cut short)."""
        self._wake.set()

    def backoff(self, failures: int) -> float:
        c = self.config
        delay: float = min(c.backoff_max_s, c.backoff_initial_s * 2 ** max(failures - 1, 0))
        return delay * random.uniform(0.8, 1.0)  # jitter: gateways do not retry in lockstep

    def _url(self, ref: str) -> str:
        return f"{self.config.url.rstrip('/')}/{ref}"

    async def upload_one(self, client: httpx.AsyncClient, item: Pending) -> Outcome:
        try:
            body = await asyncio.to_thread(item.path.read_bytes)
        except FileNotFoundError:
            self.queue.forget(item.ref, f"file {item.path} disappeared before upload")
            return "refused"
        except OSError as exc:
            self.queue.mark_retry(item.ref, f"cannot read {item.path}: {exc}", self.backoff(item.attempts + 1))
            logger.error("evidence %s: cannot read %s: %s; will retry", item.ref, item.path, exc)
            return "retry"
        headers = {
            "X-Gateway-Token": self.config.token,
            "X-Content-SHA256": item.sha256,
            "Content-Type": item.content_type,
        }
        try:
            r = await client.post(self._url(item.ref), content=body, headers=headers)
        except httpx.HTTPError as exc:
            self.queue.mark_retry(item.ref, f"{type(exc).__name__}: {exc}", self.backoff(item.attempts + 1))
            logger.info("evidence %s: backend unreachable (%s: %s); will retry", item.ref, type(exc).__name__, exc)
            return "retry"
        if r.is_success:
            self.queue.mark_uploaded(item.ref)
            self.uploaded_total += 1
            logger.debug("evidence %s uploaded (%d bytes, HTTP %d)", item.ref, item.size, r.status_code)
            return "uploaded"
        reason = f"HTTP {r.status_code}: {r.text[:200]}"
        if r.status_code in PERMANENT:
            self.queue.mark_failed(item.ref, reason)
            logger.error("evidence %s refused by the backend (%s); kept locally, not retried", item.ref, reason)
            return "refused"
        self.queue.mark_retry(item.ref, reason, self.backoff(item.attempts + 1))
        logger.warning("evidence %s: upload failed (%s); will retry", item.ref, reason)
        return "retry"

    async def upload_due(self, client: httpx.AsyncClient) -> Literal["idle", "progress", "down"]:
        """One round over the due files; stops at the first retryable failure (the backend is likely down)."""
        items = self.queue.due()
        if not items:
            return "idle"
        for item in items:
            outcome = await self.upload_one(client, item)
            if outcome == "retry":
                return "down"
            if outcome == "uploaded" and self.failures_in_a_row:
                logger.info("evidence: backend reachable again after %d failed round(s)", self.failures_in_a_row)
                self.failures_in_a_row = 0
                self.queue.retry_all_now()
        self.queue.enforce_budget()
        return "progress"

    async def run(self) -> None:
        """Until cancelled."""
        async with httpx.AsyncClient(timeout=self.config.timeout_s, transport=self._transport) as client:
            while True:
                self._wake.clear()
                try:
                    result = await self.upload_due(client)
                except (sqlite3.Error, OSError) as exc:  # loop boundary: the gateway must not stop over evidence
                    logger.error("evidence uploader: %s: %s; backing off", type(exc).__name__, exc)
                    result = "down"
                if result == "progress":
                    continue
                if result == "down":
                    self.failures_in_a_row += 1
                    await asyncio.sleep(self.backoff(self.failures_in_a_row))
                    continue
                due_in = self.queue.next_due_in()
                timeout = 60.0 if due_in is None else min(max(due_in, 0.01), 60.0)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except TimeoutError:
                    pass
