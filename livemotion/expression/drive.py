"""Mimic (ICface's driving): another face's expression, measured against that face's own neutral,
shown on the edited face.

``Driver`` wraps a second source (a webcam, a video file, a WebRTC track). Once a frame the
editor asks it for a ``DriveReading`` (``read``): it takes the driver's next frame, tracks it, and
measures against the driver's own neutral (the mean of its first ``learn_frames`` frames, then
kept fixed: the driving person starts calm, as in a calibration; a neutral that kept adapting
would let a held smile fade into it):

- its landmark motion in the canonical face frame, its speech taken out (the library's speech
  basis times its change of mouth opening);
- its mouth opening above its own lips-together gap (for a driven mouth);
- its head turn (for a driven head pose).

The regions whose source is "drive" (``regions``; by default the brows, eyes, cheeks and mouth
corners) neutralise the edited face's own expression (ICface's neutralise-then-apply) and take the
driver's motion; the edited face keeps its own speech unless its mouth opening is driven too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ..errors import SourceError
from ..face.canonical import canonical_landmarks, inner_lip_gap
from ..face.smoothing import CausalWindow
from ..face.tracking import FaceTracker
from ..io.sources import FrameSource
from ..types import FaceTrack
from .controller import DriveReading
from .library import load_library


class Driver:
    """The driving face's expression over time, one frame of ``source`` per ``read``.

    File sources loop (a short clip drives a long one); when the driving face is not found, the
    last reading is held, so the edited face does not snap back to itself. Without a ``source``,
    frames arrive on their own (``push``, from a WebRTC track): each ``read`` measures the newest
    one, and never waits for one.
    """

    def __init__(self, source: FrameSource | None = None, gain: float = 1.0, learn_frames: int = 15,
                 neutral: FrameSource | None = None):
        self.source, self.gain, self.learn_frames = source, gain, learn_frames
        self._frames = iter(source) if source is not None else None
        self._pushed: np.ndarray | Callable[[], np.ndarray] | None = None
        self._lock = threading.Lock()  # streams read from their own threads; the tracker is not shared
        self._tracker = FaceTracker(max_faces=1)
        self._neutral: list[FaceTrack] = []  # the driver's first frames
        # Its neutral face, mean and lips-together inner-lip gaps, and head turn, once learned.
        self._rest: tuple[np.ndarray, float, float, np.ndarray] | None = None
        if neutral is not None:  # the driver's neutral from a clip of its own (a recorded driver starts expressive)
            self._learn_from(neutral)
        self._motion = CausalWindow(3)  # landmark jitter is not expression
        self._speech = load_library().speech
        self._reading: DriveReading | None = None

    def push(self, image: np.ndarray | Callable[[], np.ndarray]) -> None:
        """The driving face's newest frame (H, W, 3) RGB, from a source that delivers on its own; or
        a function that makes it, so that of the frames a track delivers only the one a stream
        reads is converted, on that stream's thread (not the event loop that received it)."""
        self._pushed = image

    def _next_image(self) -> np.ndarray | None:
        if self.source is None or self._frames is None:
            image, self._pushed = self._pushed, None
            return image() if callable(image) else image
        try:
            return next(self._frames).image
        except StopIteration:
            self._frames = iter(self.source)  # files loop; a camera that stopped raises below
            try:
                return next(self._frames).image
            except StopIteration:
                raise SourceError(f"the driving source {self.source.name} gives no frames") from None

    def read(self, seconds: float) -> DriveReading | None:
        """The driving face now (None while its neutral is being learned)."""
        with self._lock:
            image = self._next_image()
            return self._reading if image is None else self._measure(image)

    def _measure(self, image: np.ndarray) -> DriveReading | None:
        track = self._tracker.track(image)
        if not isinstance(track, FaceTrack):
            return self._reading  # the driver looked away: hold the last expression
        if self._rest is None:  # still learning the driver's calm face
            self._learn(track)
            return self._reading
        face, gap, closed, turn = self._rest
        canonical = canonical_landmarks(track)
        now = float(inner_lip_gap(canonical))
        change = canonical - face - self._speech * (now - gap)  # not its speech
        self._reading = DriveReading(self._motion(self.gain * change), max(now - closed, 0.0), _turn(track) - turn)
        return self._reading

    def _learn(self, track: FaceTrack) -> None:
        self._neutral.append(track)
        if len(self._neutral) >= self.learn_frames:
            self._settle()

    def _settle(self) -> None:
        """Fix the neutral from the frames learned."""
        faces = np.array([canonical_landmarks(t) for t in self._neutral])
        gaps = inner_lip_gap(faces)
        self._rest = (faces.mean(axis=0), float(gaps.mean()), float(gaps.min()),
                      np.mean([_turn(t) for t in self._neutral], axis=0))

    def _learn_from(self, neutral: FrameSource) -> None:
        with FaceTracker(max_faces=1) as tracker:
            for frame in neutral:
                track = tracker.track(frame.image)
                if isinstance(track, FaceTrack):
                    self._neutral.append(track)
        neutral.close()
        if len(self._neutral) >= self.learn_frames:
            self._settle()
        else:
            raise SourceError(f"the driver's neutral clip {neutral.name} shows a face in only {len(self._neutral)} "
                              f"frames; it needs {self.learn_frames}")

    def close(self) -> None:
        """Stop reading the driving face: its tracker and its source are closed."""
        with self._lock:
            self._tracker.close()
        if self.source is not None:
            self.source.close()


def _turn(track: FaceTrack) -> np.ndarray:
    """(3,) the head's yaw, pitch and roll, degrees."""
    return np.array([track.pose.yaw, track.pose.pitch, track.pose.roll])
