"""Photo to clip (FEV-GAN's task): a still face animated into an expression, with life in it.

``animate_photo`` turns one photo into frames: the face goes neutral -> onset -> apex (-> offset)
along a smooth curve (``intensity_curve``), the head drifts slightly (``head_drift``: a few pixels
and a degree or two, so it is not a still), and the eyes blink now and then (``blink``, AU43).
Every frame goes through the ordinary pipeline (tracking, control, engine, compositing), with
the fine warp engine, which closes an eyelid further than the live one can.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import InvalidRequest
from ..expression.controller import ExpressionRequest
from ..expression.library import ExpressionLibrary
from ..face.tracking import FaceTracker
from ..io.sinks import open_sink
from ..types import FaceTrack, Frame
from .pipeline import build_pipeline

HOLD_NEUTRAL = 0.15  # share of the clip before the onset starts
ONSET = 0.35  # share of the clip the onset takes (a smoothstep: no jerk at either end)
OFFSET = 0.25  # share of the clip the offset takes, when asked for
BLINK_SECONDS = 0.16  # a blink's length (lids down and up)
BLINK_EVERY = 2.8  # seconds between blinks (people blink every 2-4 s)
MAX_PHOTO_PIXELS = int(os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"])  # set by livemotion/__init__.py


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def intensity_curve(t: float, seconds: float, offset: bool = False) -> float:
    """0..1 expression strength at ``t`` seconds: neutral, a smooth onset, the apex held, and
    with ``offset`` a smooth return to neutral at the end. Never decreases before the apex."""
    x = t / seconds
    rise = _smoothstep((x - HOLD_NEUTRAL) / ONSET)
    if not offset:
        return rise
    return rise * (1.0 - _smoothstep((x - (1.0 - OFFSET)) / OFFSET))


def blink(t: float, first: float = 1.1) -> float:
    """0..1 lid closure at ``t`` seconds (AU43): a quick close-and-open every ``BLINK_EVERY`` s."""
    if t < first:
        return 0.0
    phase = (t - first) % BLINK_EVERY
    return math.sin(math.pi * phase / BLINK_SECONDS) if phase < BLINK_SECONDS else 0.0


def head_drift(t: float) -> tuple[float, float, float]:
    """(degrees, dx, dy) as a fraction of the face's size: slow, small, never repeating exactly."""
    return (1.2 * math.sin(2 * math.pi * 0.21 * t + 0.3) + 0.4 * math.sin(2 * math.pi * 0.53 * t),
            0.012 * math.sin(2 * math.pi * 0.17 * t + 1.0), 0.008 * math.sin(2 * math.pi * 0.27 * t + 2.0))


def animate_photo(photo: np.ndarray, emotion: str, seconds: float = 2.0, fps: float = 30.0, intensity: float = 1.0,
                  offset: bool = False, library: ExpressionLibrary | None = None,
                  backend: str = "torch") -> Iterator[tuple[Frame, float]]:
    """(frame, expression strength) for each frame of the clip made from ``photo`` (H, W, 3) RGB.
    The engine is the fine warp (``engines.warp.FineWarpEngine``): offline, its cost does not
    matter, and the blinks need it."""
    with FaceTracker(static_images=True) as finder:
        found = finder.track(photo)
    if not isinstance(found, FaceTrack):
        raise InvalidRequest("no face found in the photo: use a photo with one face, facing the camera, "
                             "at least ~100 pixels across")
    height, width = photo.shape[:2]
    centre = ((found.box.x0 + found.box.x1) / 2, (found.box.y0 + found.box.y1) / 2)
    face_size = found.box.x1 - found.box.x0
    # The curve is ours: no fade or onset of the controller's own. Refuses an emotion the library lacks.
    pipeline = build_pipeline(ExpressionRequest(emotion, intensity), library=library, backend=backend,
                              engine="warp-fine", max_faces=1, fade_step=1.0, transition=0.0)
    try:
        for index in range(max(1, round(seconds * fps))):
            t = index / fps
            degrees, dx, dy = head_drift(t)
            motion = cv2.getRotationMatrix2D(centre, degrees, 1.0)
            motion[:, 2] += (dx * face_size, dy * face_size)
            moved = cv2.warpAffine(photo, motion, (width, height), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT101)
            strength = intensity * intensity_curve(t, seconds, offset)
            pipeline.set_request(ExpressionRequest(emotion, strength, {"43": round(blink(t), 3)}, active=True))
            frame = Frame(moved, index, Fraction(index) / Fraction(fps), time.perf_counter())
            yield pipeline.process(frame).output, strength
    finally:
        pipeline.close()


def read_photo(data: bytes, name: str) -> np.ndarray:
    """(H, W, 3) RGB from an image file's bytes, cut to even sides (H.264 wants them), or a clear error."""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:  # OpenCV refuses images over OPENCV_IO_MAX_IMAGE_PIXELS (see livemotion/__init__.py)
        raise InvalidRequest(f"{name} is larger than {MAX_PHOTO_PIXELS >> 20} megapixels: use a smaller photo") \
            from None
    if image is None:
        raise InvalidRequest(f"cannot read {name} as an image: use a .png or .jpg file with one face")
    photo = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return photo[: photo.shape[0] // 2 * 2, : photo.shape[1] // 2 * 2]


def write_clip(photo: np.ndarray, out: str | Path, emotion: str, seconds: float = 2.0, fps: float = 30.0,
               intensity: float = 1.0, offset: bool = False, library: ExpressionLibrary | None = None,
               on_frame: Callable[[], object] | None = None) -> None:
    """``animate_photo`` written to the video file ``out`` (its sink: whole or not at all)."""
    frames = animate_photo(photo, emotion, seconds, fps, intensity, offset, library)
    sink = open_sink(str(out), (photo.shape[1], photo.shape[0]), fps)
    try:
        for frame, _ in frames:
            sink.write(frame)
            if on_frame is not None:
                on_frame()
    except BaseException:
        sink.abort()  # an earlier clip of that name stays as it was
        raise
    sink.close()
