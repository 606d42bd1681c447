"""Temporal smoothing, so that the edit adds no jitter or flicker of its own.

- ``OneEuroFilter``: adaptive low-pass for landmarks (Casiez et al. 2012): steady when the face is
  still, quick when it moves. ``stabilize_track`` runs it in face-size units.
- ``CausalWindow``: Gaussian-weighted average of the last N AU readings (NED uses N = 10).
- ``Transition``: an emotion change unfolds along an onset/apex curve instead of jumping (FEV-GAN).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

import numpy as np

from ..types import FaceTrack
from .tracking import face_frame, head_pose


class OneEuroFilter:
    """One-Euro filter over arrays of any shape; ``__call__(value, t)`` returns the filtered value.

    ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` how fast the cut-off rises with speed,
    ``d_cutoff`` (Hz) the smoothing of the speed estimate. Values are in the caller's units.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next value passes through as it is."""
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, value: np.ndarray, t: float) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._time is None or t <= self._time:
            self._value, self._speed, self._time = value, np.zeros_like(value), t
            return value
        dt = t - self._time
        speed = (value - self._value) / dt
        self._speed = self._speed + self._alpha(self.d_cutoff, dt) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + self._alpha(cutoff, dt) * (value - self._value)
        self._time = t
        return self._value


class TrackSmoother:
    """Smooths a face's landmarks with a One-Euro filter in inter-ocular units (so the same
    settings suit any face size) and re-derives its pose from the smoothed mesh."""

    def __init__(self, min_cutoff: float = 1.5, beta: float = 1.5, d_cutoff: float = 1.0):
        self._filter = OneEuroFilter(min_cutoff, beta, d_cutoff)

    def reset(self) -> None:
        """Forget the face: the next track passes through as it is."""
        self._filter.reset()

    def __call__(self, track: FaceTrack, t: float) -> FaceTrack:
        scale = track.interocular
        smoothed = (self._filter(track.landmarks / scale, t) * scale).astype(np.float32)
        rotation, interocular = face_frame(smoothed)
        return replace(track, landmarks=smoothed, rotation=rotation, pose=head_pose(rotation), interocular=interocular)


class CausalWindow:
    """Average of the last ``size`` arrays with half-Gaussian weights (newest weighs most)."""

    def __init__(self, size: int = 10, sigma: float | None = None):
        sigma = sigma or size / 3
        self._weights = np.exp(-0.5 * (np.arange(size) / sigma) ** 2)  # index 0 = newest
        self._items: deque[np.ndarray] = deque(maxlen=size)

    def reset(self) -> None:
        """Forget the window's history."""
        self._items.clear()

    def __call__(self, value: np.ndarray) -> np.ndarray:
        self._items.appendleft(np.asarray(value, dtype=np.float64))
        weights = self._weights[: len(self._items)]
        return np.tensordot(weights / weights.sum(), np.stack(self._items), axes=1)


def onset_apex(progress: float) -> float:
    """Share of the way from the old expression to the new at ``progress`` 0..1 of the transition:
    a slow onset, a faster rise and a gentle arrival at the apex (smootherstep); monotone, ends at 1."""
    p = min(max(progress, 0.0), 1.0)
    return p * p * p * (p * (6 * p - 15) + 10)


class Transition:
    """Moves between AU targets over ``duration`` seconds along ``onset_apex`` whenever the target changes."""

    def __init__(self, duration: float = 0.5):
        self.duration = duration
        self._start: np.ndarray | None = None
        self._end: np.ndarray | None = None
        self._began = 0.0

    def __call__(self, target: np.ndarray, t: float) -> np.ndarray:
        if self._end is None:
            self._start, self._end, self._began = target, target, t
        elif not np.array_equal(target, self._end):
            self._start, self._end, self._began = self._value(t), target, t
        return self._value(t)

    def _value(self, t: float) -> np.ndarray:
        assert self._start is not None and self._end is not None
        if self.duration <= 0:
            return self._end
        share = onset_apex((t - self._began) / self.duration)
        return self._start + share * (self._end - self._start)
