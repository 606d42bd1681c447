"""The built-in ``demo`` clip: the public-domain NASA astronaut portrait shipped by scikit-image,
with gentle head motion and the jaw opening and closing like a person talking.

Every frame is a pure function of its index, so the clip is deterministic. ``jaw_opening(i)``
is the ground truth of the mouth movement, which speech-preservation tests compare against.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

# Geometry of the portrait, measured once with MediaPipe on skimage.data.astronaut() (512x512).
_FACE_CENTRE = (224.0, 130.0)
_MOUTH_LEFT, _MOUTH_RIGHT = (201.0, 139.0), (246.0, 141.0)  # outer mouth corners (image left/right)
_LIP_SEAM_Y = 149.0  # where the lower lip meets the teeth, at the mouth's centre
_CHIN_Y = 182.0
_MAX_JAW_PX = 11.0  # jaw drop at full opening, in portrait pixels (~0.18 inter-ocular distances)
_MOUTH_INTERIOR = np.array([70.0, 28.0, 30.0], dtype=np.float32)  # dark red-brown cavity (RGB)
# The grin's inner lip contour (MediaPipe, same measurement): x, the upper lip's edge y, the lower lip's edge y.
_GRIN = np.array([(203.3, 139.9, 139.9), (205.9, 140.1, 143.2), (209.1, 140.7, 145.5), (212.9, 141.5, 147.7),
                  (217.6, 142.4, 149.3), (223.5, 143.2, 150.1), (229.4, 142.9, 149.7), (234.1, 142.3, 148.5),
                  (237.8, 141.8, 146.6), (240.9, 141.6, 144.6), (243.4, 141.5, 141.5)])
_NEUTRAL_SEAM_Y = float(_GRIN[5, 1])  # with the grin closed, the lips meet at the upper lip's edge


def jaw_opening(index: int, fps: float = 30.0) -> float:
    """Mouth opening 0..1 of frame ``index``: syllable-rate bursts with pauses, like speech."""
    t = index / fps
    syllables = max(0.0, math.sin(2 * math.pi * 2.7 * t))
    phrase = 0.5 + 0.5 * math.sin(2 * math.pi * 0.45 * t + 0.6)  # louder and quieter phrases
    return syllables * phrase


def quietest_frame(first: int, last: int, fps: float = 30.0) -> int:
    """The frame in ``first``..``last`` where the demo's mouth is least open: a pause between
    syllables, where a still shows the expression rather than the speech."""
    return min(range(first, last + 1), key=lambda index: jaw_opening(index, fps))


def head_motion(index: int, fps: float = 30.0) -> tuple[float, float, float, float]:
    """(rotation degrees, dx, dy in portrait pixels, scale) of frame ``index``: slow, small drifts."""
    t = index / fps
    return (
        3.0 * math.sin(2 * math.pi * 0.23 * t),
        6.0 * math.sin(2 * math.pi * 0.17 * t + 1.0),
        4.0 * math.sin(2 * math.pi * 0.29 * t + 2.0),
        1.0 + 0.02 * math.sin(2 * math.pi * 0.11 * t),
    )


@lru_cache(maxsize=1)
def portrait() -> np.ndarray:
    """The 512x512 RGB astronaut portrait (public domain, shipped by scikit-image)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


@lru_cache(maxsize=1)
def neutral_portrait() -> np.ndarray:
    """The portrait with its grin closed, rendered by this code: the lower lip and the chin rise
    onto the upper lip (the jaw closes over the teeth) and the corners relax a little. The demo
    starts from this face, so each emotion it shows starts from neutral, not from a smile."""
    image = portrait()
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    top = np.interp(xs[0], _GRIN[:, 0], _GRIN[:, 1]).astype(np.float32)
    teeth = (np.interp(xs[0], _GRIN[:, 0], _GRIN[:, 2]) - top).astype(np.float32)[None, :]
    below = ys - top[None, :]
    # the lower lip moves the full height of the teeth showing; the chin under it follows, fading out
    lift = cv2.GaussianBlur(teeth, (0, 0), 3.0) * np.clip(1.0 - np.maximum(below - 14.0, 0.0) / 30.0, 0.0, 1.0)
    lift *= below >= 0
    down, inward = np.zeros_like(lift), np.zeros_like(lift)
    centre_x = 0.5 * (_MOUTH_LEFT[0] + _MOUTH_RIGHT[0])
    for cx, cy in (_MOUTH_LEFT, _MOUTH_RIGHT):  # a grin lifts and stretches the corners
        near = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 6.0**2))
        down += 3.0 * near
        inward += 1.5 * near * np.sign(centre_x - cx)
    return cv2.remap(image, xs - inward, ys + lift - down, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


@lru_cache(maxsize=2)
def _jaw_fields(seam_y: float = _LIP_SEAM_Y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit jaw-drop displacement (per pixel), the lip seam per column (through ``seam_y`` at the
    mouth's centre), and the lens profile."""
    h, w = portrait().shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    (lx, ly), (rx, ry) = _MOUTH_LEFT, _MOUTH_RIGHT
    cx, half = (lx + rx) / 2, (rx - lx) / 2
    u = np.clip((xs[0] - cx) / half, -1.0, 1.0)
    corners_y = (ly + ry) / 2 + u * (ry - ly) / 2
    seam = corners_y + (1 - u**2) * (seam_y - (ly + ry) / 2)  # parabola through both corners
    lens = np.clip(1 - u**2, 0.0, 1.0)  # opening profile: widest at the centre, closed at the corners
    across = np.exp(-(((xs - cx) / (1.6 * half)) ** 2))  # chin and lower lip move as one block
    below = ys - seam[None, :]
    down = np.where(below < 0, 0.0, np.clip(1.0 - (ys - _CHIN_Y) / 40.0, 0.0, 1.0))
    ramp = np.clip(below / 2.0, 0.0, 1.0)  # keep the field continuous at the seam
    return (across * down * ramp).astype(np.float32), seam.astype(np.float32), lens.astype(np.float32)


def _open_mouth(image: np.ndarray, opening: float, seam_y: float = _LIP_SEAM_Y) -> np.ndarray:
    if opening <= 0.0:
        return image
    field, seam, lens = _jaw_fields(seam_y)
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    drop = _MAX_JAW_PX * opening * field * np.maximum(lens[None, :], 0.35)
    out = cv2.remap(image, xs, ys - drop, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    # Between the teeth and the lowered lip the mouth is open: paint the cavity with soft edges.
    gap = _MAX_JAW_PX * opening * lens
    depth = ys - seam[None, :]
    inside = np.clip(np.minimum(depth, gap[None, :] - depth) / 1.5, 0.0, 1.0)[..., None]
    return (out * (1 - inside) + _MOUTH_INTERIOR * inside).astype(np.uint8)


def demo_frame(index: int, width: int = 640, height: int = 480, fps: float = 30.0, neutral: bool = False) -> np.ndarray:
    """Frame ``index`` of the demo clip as (height, width, 3) uint8 RGB; ``neutral``: from ``neutral_portrait``."""
    if neutral:
        talking = _open_mouth(neutral_portrait(), jaw_opening(index, fps), _NEUTRAL_SEAM_Y)
    else:
        talking = _open_mouth(portrait(), jaw_opening(index, fps))
    angle, dx, dy, scale = head_motion(index, fps)
    # Cover the output with the portrait (face kept at the same place relative to the frame).
    cover = max(width, height) / talking.shape[1]
    motion = cv2.getRotationMatrix2D(_FACE_CENTRE, angle, scale)
    motion[:, 2] += (dx, dy)
    fit = np.array([[cover, 0.0, width / 2 - _FACE_CENTRE[0] * cover],
                    [0.0, cover, height * 0.42 - _FACE_CENTRE[1] * cover]])
    affine = fit @ np.vstack([motion, [0.0, 0.0, 1.0]])
    return cv2.warpAffine(talking, affine, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
