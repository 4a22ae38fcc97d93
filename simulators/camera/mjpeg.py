"""An MJPEG-over-HTTP camera, served the way IP cameras serve it (``multipart/x-mixed-replace``).

``GET /stream.mjpg`` streams frames at ``fps``; ``GET /snapshot.jpg`` returns one JPEG. OpenCV's
``cv2.VideoCapture("http://127.0.0.1:PORT/stream.mjpg")`` reads it. Binds 127.0.0.1; port 0 picks a
free port. ``pause()`` makes the camera stop delivering frames (for the offline tests) while the TCP
connection stays open, the way a hung camera behaves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

FrameFn = Callable[[float], NDArray[np.uint8]]
BOUNDARY = "xiaoquframe"


class MjpegCamera:
    """A simulated IP camera; ``frame_fn(t)`` renders the frame at scene time ``t`` (seconds)."""

    def __init__(
        self, frame_fn: FrameFn, *, fps: float = 5.0, host: str = "127.0.0.1", port: int = 0, quality: int = 85
    ) -> None:
        self.frame_fn = frame_fn
        self.fps = fps
        self.quality = quality
        self._paused = threading.Event()
        self._stopping = threading.Event()
        self._t0 = time.monotonic()
        self.frames_sent = 0
        camera = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                log.debug("mjpeg %s: %s", self.address_string(), format % args)

            def do_GET(self) -> None:
                if self.path.startswith("/snapshot.jpg"):
                    data = camera.encode(camera.scene_time())
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if not self.path.startswith("/stream.mjpg"):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                camera.stream(self)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def scene_time(self) -> float:
        return time.monotonic() - self._t0

    def encode(self, t: float) -> bytes:
        ok, buf = cv2.imencode(".jpg", self.frame_fn(t), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:  # pragma: no cover - encoding a uint8 image does not fail
            raise ValueError("JPEG encoding failed")
        return buf.tobytes()

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        period = 1.0 / self.fps
        next_at = time.monotonic()
        try:
            while not self._stopping.is_set():
                if self._paused.is_set():
                    time.sleep(0.05)
                    next_at = time.monotonic()
                    continue
                data = self.encode(self.scene_time())
                handler.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                )
                handler.wfile.write(data)
                handler.wfile.write(b"\r\n")
                handler.wfile.flush()
                self.frames_sent += 1
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stopping.wait(delay)
                else:
                    next_at = time.monotonic()
        except (BrokenPipeError, ConnectionResetError, OSError) as exc:
            log.debug("mjpeg client went away: %s", exc)

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def start(self) -> MjpegCamera:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._server.serve_forever, name="mjpeg-camera", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MjpegCamera:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
