"""Deterministic camera scenes for the video analytics.

Real photographs come from scikit-image's bundled data (installed with the package, nothing is
downloaded): ``astronaut`` (NASA, public domain) is the person who walks through, ``camera``
(CC0, Lav Varshney) a second person, ``gravel`` and ``brick`` (CC0 textures from CC0Textures) are the
lane surface and the wall, ``motorcycle_left`` (Middlebury 2014 stereo benchmark, bundled with
scikit-image) is the parked two-wheeler / e-bike-sized object; and from the darknet test images copied
to ``photos/`` (see ``photos/LICENCE.txt``; boxes placed by hand in ``photos/labels.json``): the bicycle
and the pickup of ``dog.jpg`` (the e-bike wheeled into the lift, the vehicle parked in the fire lane)
and the dog of ``person.jpg`` (a non-bike thing in the lift). Everything else — the lane's
perspective, paint, piled cardboard boxes, the elevator car, illumination changes, sensor noise and
exposure flicker — is synthetic compositing. Given the same seed, a scene renders the same frames.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data
from numpy.typing import NDArray

Image = NDArray[np.uint8]

#: Default frame size (width, height).
SIZE = (640, 360)

#: The fire lane polygon in normalised coordinates (matches the rendered lane).
FIRE_LANE_ZONE: list[tuple[float, float]] = [(0.36, 0.42), (0.64, 0.42), (0.92, 0.98), (0.08, 0.98)]
#: The elevator car floor polygon in normalised coordinates.
ELEVATOR_FLOOR_ZONE: list[tuple[float, float]] = [(0.22, 0.55), (0.78, 0.55), (0.95, 0.98), (0.05, 0.98)]


# ---------------------------------------------------------------- real photographs (scikit-image)


@functools.cache
def person_photo() -> Image:
    """Eileen Collins (NASA, public domain), cropped to the person, BGR."""
    rgb = skimage.data.astronaut()  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(cv2.cvtColor(rgb[0:512, 60:420], cv2.COLOR_RGB2BGR))


@functools.cache
def cameraman_photo() -> Image:
    """The 'camera' photograph (CC0, Lav Varshney), BGR."""
    grey = np.asarray(skimage.data.camera(), np.uint8)  # type: ignore[no-untyped-call]
    return np.ascontiguousarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), np.uint8)


@functools.cache
def motorcycle_photo() -> Image:
    """The Middlebury 'motorcycle' photograph bundled with scikit-image, cropped to the bike, BGR."""
    path = os.path.join(os.path.dirname(skimage.data.__file__), "motorcycle_left.png")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:  # pragma: no cover - scikit-image always ships it
        raise FileNotFoundError(path)
    return np.ascontiguousarray(img[40:480, 20:720])


PHOTOS_DIR = Path(__file__).with_name("photos")
LABELS_FILE = PHOTOS_DIR / "labels.json"


@functools.cache
def photo_labels() -> dict[str, list[dict[str, Any]]]:
    """The hand-placed boxes of ``photos/labels.json``: file name -> objects (label, box, difficult)."""
    data = json.loads(LABELS_FILE.read_text(encoding="utf-8"))
    return {img["file"]: list(img["objects"]) for img in data["images"]}


@functools.cache
def labelled_photo(name: str) -> Image:
    """A photograph of the labelled set, BGR: ``dog.jpg`` (from ``photos/``) or ``skimage:astronaut``."""
    if name.startswith("skimage:"):
        key = name.split(":", 1)[1]
        if key == "motorcycle_left":
            path = os.path.join(os.path.dirname(skimage.data.__file__), "motorcycle_left.png")
            img = cv2.imread(path, cv2.IMREAD_COLOR)
        else:
            rgb = np.asarray(getattr(skimage.data, key)(), np.uint8)
            img = cv2.cvtColor(rgb, cv2.COLOR_GRAY2BGR if rgb.ndim == 2 else cv2.COLOR_RGB2BGR)
    else:
        img = cv2.imread(str(PHOTOS_DIR / name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"photo {name!r} not found (looked in {PHOTOS_DIR} and scikit-image's data)")
    return np.ascontiguousarray(img, np.uint8)


def photo_object(name: str, label: str, margin: float = 0.02) -> Image:
    """The first labelled (not difficult) ``label`` object of photo ``name``, cropped with a small margin."""
    img = labelled_photo(name)
    for obj in photo_labels()[name]:
        if obj["label"] == label and not obj.get("difficult", False):
            x1, y1, x2, y2 = obj["box"]
            mx, my = round((x2 - x1) * margin), round((y2 - y1) * margin)
            h, w = img.shape[:2]
            return np.ascontiguousarray(img[max(0, y1 - my) : min(h, y2 + my), max(0, x1 - mx) : min(w, x2 + mx)])
    raise KeyError(f"no {label!r} labelled in {name}")


def bicycle_photo() -> Image:
    """The bicycle of darknet's ``dog.jpg`` (a real photograph; the dog sits in front of its rear wheel)."""
    return photo_object("dog.jpg", "bicycle")


def pickup_photo() -> Image:
    """The white pickup of darknet's ``dog.jpg`` (COCO class truck; NanoDet often says car)."""
    return photo_object("dog.jpg", "truck")


def dog_photo() -> Image:
    """The dog of darknet's ``person.jpg``: a real non-bike object for the lift."""
    return photo_object("person.jpg", "dog")


def _texture(name: str) -> Image:
    grey = getattr(skimage.data, name)()
    return np.ascontiguousarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))


# ---------------------------------------------------------------- compositing helpers


def paste(dst: Image, src: Image, x: int, y: int, w: int, h: int, *, alpha: NDArray[np.float32] | None = None) -> None:
    """Paste ``src`` resized to w×h with its top-left at (x, y), clipped to ``dst``; optional alpha mask."""
    if w <= 0 or h <= 0:
        return
    patch = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
    H, W = dst.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 <= x0 or y1 <= y0:
        return
    part = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    if alpha is None:
        dst[y0:y1, x0:x1] = part
    else:
        a = cv2.resize(alpha, (w, h))[y0 - y : y1 - y, x0 - x : x1 - x, None]
        dst[y0:y1, x0:x1] = (part * a + dst[y0:y1, x0:x1] * (1 - a)).astype(np.uint8)


def cardboard_boxes(seed: int, w: int = 240, h: int = 180) -> Image:
    """Synthetic piled goods: a stack of cardboard boxes with tape, edges and texture."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (60, 70, 80)
    rows = [(0.55, 1.0), (0.15, 0.55)]
    for r, (t, b) in enumerate(rows):
        n = 3 - r
        for i in range(n):
            x0 = int(w * (i / n) + r * w / 6)
            x1 = int(w * ((i + 1) / n) + r * w / 6) - 3
            y0, y1 = int(h * t), int(h * b) - 2
            tone = rng.uniform(0.8, 1.1)
            color = tuple(int(c * tone) for c in (70, 130, 190))  # BGR cardboard brown
            cv2.rectangle(img, (x0, y0), (x1, y1), color, -1)
            cv2.rectangle(img, (x0, y0), (x1, y1), (40, 70, 100), 2)
            cx = (x0 + x1) // 2
            cv2.rectangle(img, (cx - 6, y0), (cx + 6, y1), (150, 190, 210), -1)  # tape
            cv2.putText(img, "FRAGILE", (x0 + 6, y1 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (20, 30, 60), 1)
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- scene timelines


@dataclass(frozen=True)
class Obstruction:
    """Something that arrives at ``arrive_s`` (sliding in over ``move_s``), stays, and leaves at ``leave_s``."""

    kind: str  # "boxes" | "motorcycle" | "bicycle" | "pickup" | "dog"
    arrive_s: float
    leave_s: float
    move_s: float = 2.0
    rect: tuple[float, float, float, float] = (0.36, 0.55, 0.30, 0.33)  # x, y, w, h (normalised, parked)


@dataclass(frozen=True)
class Walker:
    """A person crossing the frame from left to right between ``start_s`` and ``start_s + cross_s``."""

    start_s: float
    cross_s: float = 4.0
    y: float = 0.30
    height: float = 0.62
    photo: str = "astronaut"  # or "cameraman"


@dataclass(frozen=True)
class LightChange:
    """Global illumination change to ``gain`` starting at ``at_s`` over ``ramp_s`` (0 = a step)."""

    at_s: float
    gain: float
    ramp_s: float = 0.0


@dataclass(frozen=True)
class Flicker:
    """Exposure flicker: single frames at random times are brightened/darkened by up to ``amount``."""

    start_s: float
    end_s: float
    rate_hz: float = 1.0
    amount: float = 0.35


@dataclass
class Scene:
    """A deterministic timeline rendered into BGR frames: ``frame(t)`` depends only on seed and t."""

    seed: int = 0
    size: tuple[int, int] = SIZE
    kind: str = "fire_lane"  # "fire_lane" | "elevator"
    obstructions: list[Obstruction] = field(default_factory=list)
    walkers: list[Walker] = field(default_factory=list)
    lights: list[LightChange] = field(default_factory=list)
    flickers: list[Flicker] = field(default_factory=list)
    noise_sigma: float = 2.0
    _background: Image | None = field(default=None, init=False, repr=False)
    _noise_fields: list[NDArray[np.int16]] = field(default_factory=list, init=False, repr=False)

    @property
    def zone(self) -> list[tuple[float, float]]:
        return FIRE_LANE_ZONE if self.kind == "fire_lane" else ELEVATOR_FLOOR_ZONE

    def background(self) -> Image:
        if self._background is None:
            if self.kind == "fire_lane":
                self._background = fire_lane_background(self.seed, self.size)
            else:
                self._background = elevator_background(self.seed, self.size)
        return self._background

    def gain(self, t: float) -> float:
        g = 1.0
        for lc in sorted(self.lights, key=lambda c: c.at_s):
            if t >= lc.at_s + lc.ramp_s:
                g = lc.gain
            elif t >= lc.at_s:
                g = g + (lc.gain - g) * (t - lc.at_s) / lc.ramp_s
        for fl in self.flickers:
            if fl.start_s <= t < fl.end_s:
                slot = int(t * 5)  # per 0.2 s slot: deterministic choice from seed and slot
                r = np.random.default_rng((self.seed, slot, 7)).random(2)
                if r[0] < fl.rate_hz / 5.0:
                    g *= 1.0 + fl.amount * (2 * r[1] - 1)
        return g

    def frame(self, t: float) -> Image:
        W, H = self.size
        img = self.background().copy()
        for ob in self.obstructions:
            self._draw_obstruction(img, ob, t)
        for wk in self.walkers:
            if wk.start_s <= t <= wk.start_s + wk.cross_s:
                photo = person_photo() if wk.photo == "astronaut" else cameraman_photo()
                h = int(wk.height * H)
                w = int(h * photo.shape[1] / photo.shape[0])
                x = int(-w + (W + w) * (t - wk.start_s) / wk.cross_s)
                paste(img, photo, x, int(wk.y * H), w, h)
        out = cv2.convertScaleAbs(img, alpha=self.gain(t))
        if self.noise_sigma > 0:  # sensor noise: one of a few seeded noise fields, chosen by the frame time
            out = cv2.add(out.astype(np.int16), self._noise(round(t * 1000)), dtype=cv2.CV_8U)
        return np.asarray(out, np.uint8)

    def _noise(self, key: int) -> NDArray[np.int16]:
        if not self._noise_fields:
            W, H = self.size
            for i in range(8):
                rng = np.random.default_rng((self.seed, i, 11))
                self._noise_fields.append(np.round(rng.normal(0.0, self.noise_sigma, (H, W, 3))).astype(np.int16))
        idx = int(np.random.default_rng((self.seed, key)).integers(0, len(self._noise_fields)))
        return self._noise_fields[idx]

    def _draw_obstruction(self, img: Image, ob: Obstruction, t: float) -> None:
        if t < ob.arrive_s or t > ob.leave_s + ob.move_s:
            return
        W, H = self.size
        x, y, w, h = ob.rect
        if t < ob.arrive_s + ob.move_s:  # slides in from the right
            frac = (t - ob.arrive_s) / ob.move_s
            x = x + (1.0 - frac) * (1.05 - x)
        elif t > ob.leave_s:  # slides out to the right
            frac = (t - ob.leave_s) / ob.move_s
            x = x + frac * (1.05 - x)
        paste(img, obstruction_image(ob.kind, self.seed), int(x * W), int(y * H), int(w * W), int(h * H))

    def frames(self, fps: float, duration_s: float, start_s: float = 0.0) -> Iterator[tuple[float, Image]]:
        n = round(duration_s * fps)
        for i in range(n):
            t = start_s + i / fps
            yield t, self.frame(t)


def obstruction_image(kind: str, seed: int) -> Image:
    """The picture of an :class:`Obstruction` kind."""
    if kind == "boxes":
        return cardboard_boxes(seed)
    photos: dict[str, Callable[[], Image]] = {
        "motorcycle": motorcycle_photo, "bicycle": bicycle_photo, "pickup": pickup_photo, "dog": dog_photo,
    }  # fmt: skip
    if kind not in photos:
        raise ValueError(f"unknown obstruction kind {kind!r}; known: boxes, {', '.join(photos)}")
    return photos[kind]()


def fire_lane_background(seed: int, size: tuple[int, int] = SIZE) -> Image:
    """A fire lane seen from a pole camera: brick wall, gravel lane in perspective, yellow paint."""
    W, H = size
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), np.uint8)
    brick = cv2.resize(_texture("brick"), (W, int(H * 0.45)))
    tint = np.array([0.75, 0.85, 1.1], np.float32)  # a warm brick tone
    img[: brick.shape[0]] = np.clip(brick * tint, 0, 255).astype(np.uint8)
    ground = cv2.resize(_texture("grass"), (W, H - int(H * 0.40)))
    img[int(H * 0.40) :] = np.clip(ground * np.array([0.6, 0.9, 0.6], np.float32), 0, 255).astype(np.uint8)
    gravel = cv2.resize(_texture("gravel"), (512, 512))
    quad = np.array([[p[0] * W, p[1] * H] for p in FIRE_LANE_ZONE], np.float32)
    src = np.array([[0, 0], [511, 0], [511, 511], [0, 511]], np.float32)
    warped = cv2.warpPerspective(gravel, cv2.getPerspectiveTransform(src, quad), (W, H))
    mask = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(mask, quad.astype(np.int32), 255)
    img[mask > 0] = warped[mask > 0]
    pts = quad.astype(np.int32)
    cv2.line(img, tuple(pts[0]), tuple(pts[3]), (0, 210, 240), 4)
    cv2.line(img, tuple(pts[1]), tuple(pts[2]), (0, 210, 240), 4)
    cv2.putText(img, "FIRE LANE", (int(W * 0.40), int(H * 0.92)), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 200, 240), 2)
    jitter = rng.normal(0, 1.5, img.shape)
    return np.clip(img + jitter, 0, 255).astype(np.uint8)


def elevator_background(seed: int, size: tuple[int, int] = SIZE) -> Image:
    """An elevator car seen from the ceiling corner: brushed steel walls, a stone floor (gravel texture)."""
    W, H = size
    rng = np.random.default_rng(seed)
    base = np.linspace(150, 200, W, dtype=np.float32)[None, :].repeat(H, 0)
    streaks = rng.normal(0, 8, (1, W)).astype(np.float32).repeat(H, 0)
    steel = np.clip(base + streaks, 0, 255).astype(np.uint8)
    img = cv2.cvtColor(steel, cv2.COLOR_GRAY2BGR)
    floor = cv2.resize(_texture("gravel"), (512, 512))
    quad = np.array([[p[0] * W, p[1] * H] for p in ELEVATOR_FLOOR_ZONE], np.float32)
    src = np.array([[0, 0], [511, 0], [511, 511], [0, 511]], np.float32)
    warped = cv2.warpPerspective(floor, cv2.getPerspectiveTransform(src, quad), (W, H))
    mask = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(mask, quad.astype(np.int32), 255)
    img[mask > 0] = (warped[mask > 0] * 0.8).astype(np.uint8)
    cv2.rectangle(img, (int(W * 0.02), int(H * 0.2)), (int(W * 0.06), int(H * 0.5)), (90, 90, 90), -1)  # panel
    for i in range(6):
        cv2.circle(img, (int(W * 0.04), int(H * (0.24 + 0.04 * i))), 4, (30, 200, 230), -1)
    return np.asarray(img, np.uint8)


# ---------------------------------------------------------------- ready-made scenarios


def fire_lane_blockage_scene(seed: int = 0, *, arrive_s: float = 10.0, stay_s: float = 150.0) -> Scene:
    """Empty lane, piled boxes arrive and stay ``stay_s``, then leave; a light change while parked."""
    return Scene(
        seed=seed,
        kind="fire_lane",
        obstructions=[Obstruction("boxes", arrive_s, arrive_s + stay_s)],
        lights=[LightChange(arrive_s + stay_s * 0.6, 0.65, ramp_s=0.0)],
    )


def people_walking_scene(seed: int = 0, *, n: int = 6, every_s: float = 8.0) -> Scene:
    """People (real photographs) walking across the empty fire lane, one every ``every_s``."""
    walkers = [Walker(2.0 + i * every_s, photo="astronaut" if i % 2 == 0 else "cameraman") for i in range(n)]
    return Scene(seed=seed, kind="fire_lane", walkers=walkers)


def light_change_scene(seed: int = 0) -> Scene:
    """An empty lane under a dusk ramp, then lights switched on (a step), plus exposure flicker."""
    return Scene(
        seed=seed,
        kind="fire_lane",
        lights=[LightChange(5.0, 0.5, ramp_s=20.0), LightChange(40.0, 1.3, ramp_s=0.0)],
        flickers=[Flicker(50.0, 80.0, rate_hz=1.0, amount=0.4)],
    )


#: Where each thing stands in the lift once wheeled in (x, y, w, h normalised; keeps the photo's aspect).
ELEVATOR_RECTS: dict[str, tuple[float, float, float, float]] = {
    "motorcycle": (0.18, 0.40, 0.62, 0.55),
    "bicycle": (0.20, 0.34, 0.55, 0.64),
    "boxes": (0.30, 0.50, 0.36, 0.46),
    "dog": (0.34, 0.56, 0.30, 0.32),
}


def elevator_scene(seed: int = 0, *, ebike: bool = False, person: bool = True, thing: str | None = None) -> Scene:
    """An elevator car; with ``ebike`` a two-wheeler (the Middlebury motorcycle photograph) is wheeled in at
    t=4 s; ``thing`` names what is wheeled in instead: ``bicycle`` (dog.jpg's bicycle, the e-bike),
    ``motorcycle``, ``boxes`` (a trolley-load of cardboard boxes) or ``dog`` (person.jpg's dog)."""
    kind = thing or ("motorcycle" if ebike else None)
    obs = [Obstruction(kind, 4.0, 60.0, move_s=1.5, rect=ELEVATOR_RECTS[kind])] if kind else []
    walkers = [Walker(1.0, cross_s=5.0, y=0.12, height=0.8)] if person else []
    return Scene(seed=seed, kind="elevator", obstructions=obs, walkers=walkers)


def fire_lane_vehicle_scene(seed: int = 0, *, arrive_s: float = 10.0, stay_s: float = 150.0) -> Scene:
    """A pickup (dog.jpg's, a real photograph) drives into the lane from the right, parks ``stay_s``, leaves."""
    return Scene(
        seed=seed,
        kind="fire_lane",
        obstructions=[Obstruction("pickup", arrive_s, arrive_s + stay_s, move_s=3.0, rect=(0.28, 0.52, 0.44, 0.33))],
    )


def fire_lane_drive_through_scene(seed: int = 0, *, every_s: float = 20.0, n: int = 3) -> Scene:
    """The pickup drives through the lane (enters, pauses 1 s, leaves) every ``every_s``: never parked."""
    obs = [
        Obstruction("pickup", 2.0 + i * every_s, 2.0 + i * every_s + 1.0, move_s=3.0, rect=(0.28, 0.52, 0.44, 0.33))
        for i in range(n)
    ]
    return Scene(seed=seed, kind="fire_lane", obstructions=obs)


def write_video(scene: Scene, path: str | os.PathLike[str], *, fps: float, duration_s: float) -> int:
    """Write the scene to an MJPG .avi file that OpenCV reads back; returns the number of frames."""
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, scene.size)
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    n = 0
    try:
        for _, img in scene.frames(fps, duration_s):
            writer.write(img)
            n += 1
    finally:
        writer.release()
    return n
