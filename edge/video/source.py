"""Camera sources through OpenCV (RTSP, HTTP MJPEG, file): sampling, reconnect with backoff.

:meth:`FrameSource.frames` is a blocking generator meant for a worker thread. Live sources are read
continuously with ``grab()`` (which keeps the stream drained so frames stay fresh) and only the
frames due at ``sample_fps`` are decoded with ``retrieve()``. File sources take their timestamps from
the file's positions, so a file replays minutes of scene in seconds when ``realtime`` is off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from device_profiles.camera import SourceSpec
from edge.video.base import Frame

log = logging.getLogger(__name__)


class FrameSource:
    def __init__(
        self,
        spec: SourceSpec,
        *,
        stop: threading.Event | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.stop = stop or threading.Event()
        self.on_status = on_status or (lambda s: None)
        self.reconnects = 0

    def _open(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
        if self.spec.kind == "file":
            return cv2.VideoCapture(self.spec.url)
        return cv2.VideoCapture(self.spec.url, cv2.CAP_FFMPEG, params)

    def frames(self) -> Iterator[Frame]:
        backoff = self.spec.reconnect_initial_s
        period = 1.0 / self.spec.sample_fps
        file_base = datetime.now(UTC)
        while not self.stop.is_set():
            cap = self._open()
            if not cap.isOpened():
                cap.release()
                self.on_status("unreachable")
                log.warning("camera source %s cannot be opened; retry in %.1f s", self.spec.url, backoff)
                if self.stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.spec.reconnect_max_s)
                self.reconnects += 1
                continue
            self.on_status("connected")
            got_any = False
            try:
                if self.spec.kind == "file":
                    for frame in self._file_frames(cap, period, file_base):
                        got_any = True
                        yield frame
                    if not self.spec.loop:
                        return
                    file_base = file_base + timedelta(seconds=1)
                else:
                    for frame in self._live_frames(cap, period):
                        got_any = True
                        backoff = self.spec.reconnect_initial_s
                        yield frame
            finally:
                cap.release()
            if self.stop.is_set():
                return
            self.on_status("lost")
            log.warning("camera source %s stopped delivering frames; reconnecting", self.spec.url)
            if not got_any and self.stop.wait(backoff):
                return
            if not got_any:
                backoff = min(backoff * 2, self.spec.reconnect_max_s)
            self.reconnects += 1

    def _live_frames(self, cap: cv2.VideoCapture, period: float) -> Iterator[Frame]:
        next_at = 0.0
        while not self.stop.is_set():
            if not cap.grab():
                return
            now = time.monotonic()
            if now < next_at:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                return
            next_at = max(next_at + period, now - period) if next_at else now + period
            yield Frame(np.asarray(image, np.uint8), now, datetime.now(UTC))

    def _file_frames(self, cap: cv2.VideoCapture, period: float, base: datetime) -> Iterator[Frame]:
        next_ts = 0.0
        started = time.monotonic()
        while not self.stop.is_set():
            if not cap.grab():
                return
            ts = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            if ts + 1e-6 < next_ts:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                return
            next_ts = ts + period - 1e-3
            if self.spec.realtime:
                delay = started + ts - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
            yield Frame(np.asarray(image, np.uint8), ts, base + timedelta(seconds=ts))
