"""On-gateway video analytics: fire-lane blockage, e-bike in elevator car, intrusion / loitering.

Public API for the gateway's integrator::

    analytics = VideoAnalytics(camera_id, spec, sink, snapshot_dir)
    task = asyncio.create_task(analytics.run())
    ...
    await analytics.stop()

``sink`` receives :class:`VideoEvent` objects (a plain or an ``async`` callable). The analytics do not
depend on the outbox or MQTT.
"""

from edge.video.analytics import VideoAnalytics
from edge.video.base import Detection, Frame, VideoEvent
from edge.video.detectors import DETECTORS, Detector, DetectorError, load_detector
from edge.video.pipeline import FramePipeline

__all__ = [
    "DETECTORS",
    "Detection",
    "Detector",
    "DetectorError",
    "Frame",
    "FramePipeline",
    "VideoAnalytics",
    "VideoEvent",
    "load_detector",
]
