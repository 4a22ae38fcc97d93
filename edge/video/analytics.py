"""Async face of the video analytics: one camera, frames and inference on a worker thread.

Everything that touches pixels — decoding, the gate, the detector, occupancy, snapshots — runs on a
dedicated thread per camera (OpenCV and ONNX Runtime release the GIL while they work), or, with
``detector.executor: process``, the detector runs in a separate process. The event loop only receives
finished :class:`VideoEvent` objects, so a slow model never stalls Modbus polling or the outbox.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import multiprocessing
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from device_profiles.camera import CameraSpec, DetectorSpec
from edge.video.base import Detection, Image, VideoEvent
from edge.video.detectors import Detector, load_detector
from edge.video.evidence import EvidenceStore
from edge.video.pipeline import FramePipeline
from edge.video.source import FrameSource

log = logging.getLogger(__name__)

Sink = Callable[[VideoEvent], None] | Callable[[VideoEvent], Awaitable[None]]

_worker_detector: Detector | None = None


def _init_worker(spec: DetectorSpec, base_dir: Path | None) -> None:
    global _worker_detector
    _worker_detector = load_detector(spec, base_dir)


def _detect_in_worker(image: Image) -> list[Detection]:
    assert _worker_detector is not None
    return _worker_detector.detect(image)


class ProcessDetector:
    """Runs a detector in a separate process (spawned, so no forked threads); same interface."""

    def __init__(self, spec: DetectorSpec, base_dir: Path | None = None) -> None:
        self.labels = dict(spec.labels)
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(spec, base_dir),
        )

    def detect(self, image: Image) -> list[Detection]:
        return self.pool.submit(_detect_in_worker, image).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class VideoAnalytics:
    """Analytics for one camera. ``await run()`` until ``await stop()`` (or a non-looping file ends)."""

    def __init__(
        self,
        camera_id: str,
        spec: CameraSpec,
        sink: Sink,
        snapshot_dir: Path,
        *,
        detector: Detector | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.spec = spec
        self.sink = sink
        self.evidence = EvidenceStore(snapshot_dir, spec.evidence)
        self._detector = detector
        self._base_dir = base_dir
        self._stop = threading.Event()
        self._last_frame: float | None = None
        self._started = time.monotonic()
        self._offline = False
        self._done: asyncio.Event | None = None
        self.pipeline: FramePipeline | None = None
        self.frames = 0

    def _make_detector(self) -> Detector:
        if self._detector is not None:
            return self._detector
        if self.spec.detector.executor == "process":
            return ProcessDetector(self.spec.detector, self._base_dir)
        return load_detector(self.spec.detector, self._base_dir)

    def _work(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[VideoEvent | None]) -> None:
        detector: Detector | None = None
        try:
            detector = self._make_detector()
            self.pipeline = FramePipeline(self.camera_id, self.spec, detector, self.evidence)
            source = FrameSource(self.spec.source, stop=self._stop)
            for frame in source.frames():
                self._last_frame = time.monotonic()
                self.frames += 1
                for event in self.pipeline.process(frame):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
        finally:
            if isinstance(detector, ProcessDetector):
                detector.close()
            loop.call_soon_threadsafe(queue.put_nowait, None)

    def _status_event(self, offline: bool) -> VideoEvent:
        return VideoEvent(
            camera_id=self.camera_id,
            rule="camera",
            kind="camera.offline" if offline else "camera.online",
            active=offline,
            severity="major",
            observed_at=datetime.now(UTC),
            detail={"source": self.spec.source.kind, "offline_after_s": self.spec.source.offline_after_s},
        )

    async def _watchdog(self, queue: asyncio.Queue[VideoEvent | None]) -> None:
        limit = self.spec.source.offline_after_s
        while not self._stop.is_set():
            await asyncio.sleep(min(1.0, limit / 4))
            last = self._last_frame if self._last_frame is not None else self._started
            stale = time.monotonic() - last > limit
            if stale and not self._offline:
                self._offline = True
                log.warning("camera %s offline: no frame for %.1f s", self.camera_id, limit)
                queue.put_nowait(self._status_event(True))
            elif not stale and self._offline:
                self._offline = False
                log.info("camera %s back online", self.camera_id)
                queue.put_nowait(self._status_event(False))

    async def _deliver(self, event: VideoEvent) -> None:
        try:
            result = self.sink(event)
            if inspect.isawaitable(result):
                await result
        except (OSError, ValueError, RuntimeError) as exc:  # a sink failure must not stop the camera
            log.error("camera %s: sink failed for %s: %s", self.camera_id, event.kind, exc)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[VideoEvent | None] = asyncio.Queue()
        self._stop.clear()
        self._started = time.monotonic()
        self._done = asyncio.Event()
        worker = loop.run_in_executor(None, self._work, loop, queue)
        watchdog = asyncio.create_task(self._watchdog(queue))
        try:
            while True:
                event = await queue.get()
                if event is None:
                    break
                await self._deliver(event)
            while not queue.empty():  # status events queued while the worker ended
                pending = queue.get_nowait()
                if pending is not None:
                    await self._deliver(pending)
        finally:
            self._stop.set()
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            await worker
            self._done.set()

    async def stop(self) -> None:
        self._stop.set()
        if self._done is not None:
            await self._done.wait()
