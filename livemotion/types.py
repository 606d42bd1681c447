"""Small typed records passed between the pipeline stages.

source -> ``Frame`` -> tracker -> ``FaceTrack`` | ``NoFace`` -> engine/compositor -> ``Frame`` -> sink
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One video frame as it travels through the pipeline."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    index: int  # 0-based position in the source
    pts: Fraction  # media time in seconds, exact (from the container, or index / fps)
    captured_at: float  # time.perf_counter() when the source produced it; latency starts here

    @property
    def width(self) -> int:
        """Pixels across."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Pixels down."""
        return int(self.image.shape[0])

    def with_image(self, image: np.ndarray) -> Frame:
        """The same frame (index, timestamps) carrying another picture."""
        return Frame(image=image, index=self.index, pts=self.pts, captured_at=self.captured_at)


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Head rotation in degrees, from the landmarks.

    yaw > 0: the nose points towards image right; pitch > 0: the nose points up;
    roll > 0: the head is tilted clockwise in the image.
    """

    pitch: float
    yaw: float
    roll: float


@dataclass(frozen=True, slots=True)
class Box:
    """Axis-aligned box in pixels, x1/y1 exclusive."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        """Square pixels inside the box (0 if empty)."""
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)


@dataclass(frozen=True, slots=True)
class FaceTrack:
    """The tracked face of one frame."""

    landmarks: np.ndarray  # (NUM_LANDMARKS, 3) float32 (face.mesh): x, y in pixels; z depth on the x scale (smaller = nearer)
    rotation: np.ndarray  # (3, 3) float32 face frame: columns = face right, face down, face backward
    pose: HeadPose
    box: Box
    confidence: float  # 0..1, share of the mesh inside the frame (MediaPipe's legacy API hides its score)
    num_faces: int  # faces seen; the largest one is this track
    interocular: float  # distance between the eye centres in pixels: the face's scale


@dataclass(frozen=True, slots=True)
class NoFace:
    """The tracker found no usable face; the frame passes through unchanged."""

    reason: str = "no face found"


TrackResult = FaceTrack | NoFace


@dataclass(slots=True)
class StageTimes:
    """Milliseconds spent per stage on one frame, in pipeline order."""

    ms: dict[str, float] = field(default_factory=dict)
