"""Face alignment and compositing: cut an aligned crop out of the frame, blend the edit back.

The crop is a similarity transform of the frame (rotation = head roll, scale = fixed
inter-ocular distance). The edited crop returns through the inverse transform and a soft face
mask; pixels the mask does not reach keep their original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .au import FACE_OVAL
from .tracking import eye_centres
from .types import FaceTrack

_IOD_IN_CROP = 0.24  # inter-ocular distance as a share of the crop side: the crop spans ~4 IODs
_CENTRE_BELOW_EYES = 0.55  # crop centre, in IODs below the eye midpoint (between eyes and mouth)


@dataclass(frozen=True)
class Alignment:
    """Frame -> crop similarity transform for one face."""

    to_crop: np.ndarray  # (2, 3) affine, frame pixels -> crop pixels
    size: int

    def points_to_crop(self, points: np.ndarray) -> np.ndarray:
        return points @ self.to_crop[:, :2].T + self.to_crop[:, 2]

    def cut(self, image: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(image, self.to_crop, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)


def align(track: FaceTrack, size: int) -> Alignment:
    ex, ey = track.rotation[:2, 0], track.rotation[:2, 1]
    eyes = 0.5 * sum(eye_centres(track.landmarks[:, :2]))
    centre = eyes + ey / max(np.linalg.norm(ey), 1e-6) * _CENTRE_BELOW_EYES * track.interocular
    angle = np.arctan2(ex[1], ex[0])
    scale = _IOD_IN_CROP * size / track.interocular
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    # rotate by -angle (level the eyes), scale, and put ``centre`` in the middle of the crop
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([(size - 1) / 2, (size - 1) / 2]) - linear @ centre
    return Alignment(np.hstack([linear, offset[:, None]]).astype(np.float64), size)


def face_mask(crop_landmarks: np.ndarray, size: int, feather: float = 0.04) -> np.ndarray:
    """(size, size) float32 mask: 1 inside the face oval, a soft fall-off of ``feather`` * size outside.

    Drawn at a quarter of the resolution and upsampled: the mask is smooth, so that costs nothing
    visible and saves ~1 ms a frame.
    """
    small = size // 4
    mask = np.zeros((small, small), np.float32)
    hull = cv2.convexHull(np.round(crop_landmarks[list(FACE_OVAL)] / 4).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    radius = max(1, int(feather * small))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    mask = cv2.GaussianBlur(mask, (0, 0), radius)
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)


def composite(frame: np.ndarray, edited_crop: np.ndarray, weight_crop: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Blend ``edited_crop`` back into a copy of ``frame`` with per-pixel ``weight_crop`` (0..1).

    Only the crop's footprint is resampled; where the weight is 0 the frame keeps its bytes.
    """
    height, width = frame.shape[:2]
    out = frame.copy()
    # Only the part of the crop the weight reaches is carried back (the face, not the whole crop).
    cx, cy, cw, ch = cv2.boundingRect((weight_crop > 1e-3).astype(np.uint8))
    if cw == 0 or ch == 0:
        return out
    corners = np.array([[cx, cy], [cx + cw, cy], [cx, cy + ch], [cx + cw, cy + ch]], np.float64)
    to_frame = cv2.invertAffineTransform(alignment.to_crop)
    footprint = corners @ to_frame[:, :2].T + to_frame[:, 2]
    x0, y0 = np.maximum(np.floor(footprint.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(footprint.max(axis=0)).astype(int) + 1, (width, height))
    if x1 <= x0 or y1 <= y0:
        return out
    to_roi = to_frame.copy()
    to_roi[:, 2] -= (x0, y0)
    roi_size = (int(x1 - x0), int(y1 - y0))
    edited = cv2.warpAffine(edited_crop, to_roi, roi_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(weight_crop, to_roi, roi_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    roi = out[y0:y1, x0:x1]
    # weight * edited + (1 - weight) * original; where the weight is 0 this is the original byte exactly
    roi[...] = cv2.blendLinear(edited, roi, weight, 1.0 - weight)
    return out
