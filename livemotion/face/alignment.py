"""Face alignment: the aligned crop, the coordinate frame the engine works in.

The crop is a similarity transform of the frame (rotation = head roll, scale = fixed
inter-ocular distance), so every face reaches the engine level and at one size. No pixels are
cut out: the engine works on points, the compositor resamples the frame itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..types import FaceTrack
from .mesh import CONTROL_POINTS, FACE_OVAL, OUTER_LIP_CONTOUR, eye_centres

_IOD_IN_CROP = 0.24  # inter-ocular distance as a share of the crop side: the crop spans ~4 IODs
_CENTRE_BELOW_EYES = 0.55  # crop centre, in IODs below the eye midpoint (between eyes and mouth)
_RING_SCALE = 1.3  # a pinned ring this far out from the face centre keeps a warp inside the face


@dataclass(frozen=True)
class Alignment:
    """Frame -> crop similarity transform for one face."""

    to_crop: np.ndarray  # (2, 3) affine, frame pixels -> crop pixels
    size: int

    def points_to_crop(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) frame pixels -> (N, 2) crop pixels."""
        return points @ self.to_crop[:, :2].T + self.to_crop[:, 2]

    @property
    def interocular(self) -> float:
        """The face's inter-ocular distance in frame pixels (the crop fixes it at ``_IOD_IN_CROP``)."""
        scale = float(np.sqrt(abs(np.linalg.det(self.to_crop[:, :2]))))
        return _IOD_IN_CROP * self.size / max(scale, 1e-9)



def align(track: FaceTrack, size: int) -> Alignment:
    """The crop of ``size`` x ``size`` pixels that centres ``track``'s face, eyes level."""
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


MOUTH_CROP_IODS = 1.25  # side of the mouth crop, in IODs: the lips, their corners and a margin of skin


def align_mouth(track: FaceTrack, size: int, iods: float = MOUTH_CROP_IODS) -> Alignment:
    """The crop of ``size`` x ``size`` pixels, ``iods`` inter-ocular distances wide, centred on the
    mouth (the middle of the outer lip contour), eyes level: the frame the mouth generator works in."""
    ex = track.rotation[:2, 0]
    angle = np.arctan2(ex[1], ex[0])
    centre = track.landmarks[list(OUTER_LIP_CONTOUR), :2].mean(axis=0)
    scale = size / (iods * track.interocular)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([(size - 1) / 2, (size - 1) / 2]) - linear @ centre
    return Alignment(np.hstack([linear, offset[:, None]]).astype(np.float64), size)


def crop_placement(size: int) -> tuple[float, np.ndarray]:
    """(scale, offset): a level face's canonical points (eye midpoint 0, IOD 1) land in the crop at
    ``points * scale + offset``, exactly where ``align`` puts them."""
    scale = _IOD_IN_CROP * size
    return scale, np.array([(size - 1) / 2, (size - 1) / 2 - _CENTRE_BELOW_EYES * scale])


def lattice_coordinates(span: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y), each (side, side) float32: a ``side`` x ``side`` lattice spanning 0..span-1 corner to corner,
    the way the engine's flow lattice spans the crop."""
    axis = np.linspace(0, span - 1, side, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    return x, y


def engine_points(crop_landmarks: np.ndarray) -> np.ndarray:
    """(NUM_POINTS, 2) the points an engine is steered by: ``CONTROL_POINTS`` of ``crop_landmarks``
    (NUM_LANDMARKS, 2), then a ring around the face oval that is meant to stay where it is."""
    oval = crop_landmarks[list(FACE_OVAL)]
    centre = oval.mean(axis=0)
    return np.concatenate([crop_landmarks[CONTROL_POINTS], centre + _RING_SCALE * (oval - centre)])


# ---- the mouth patch: the inner lips' own frame, for mouth-interior exemplars -----------------------

MOUTH_PATCH = (40, 120)  # (height, width) of a mouth-interior exemplar, in its own normalised frame
# Where the inner lips' corners and midpoints sit in that frame (x, y as fractions of width, height):
# the patch reaches a little past the opening so a pasted interior has lip to blend into.
_MOUTH_ANCHORS = {78: (0.08, 0.5), 308: (0.92, 0.5), 13: (0.5, 0.12), 14: (0.5, 0.88)}


def mouth_patch_transform(landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) affine from a mouth-interior patch (``MOUTH_PATCH``) to the image of ``landmarks``.

    Least squares over the inner lips' corners and midpoints, so the patch follows the mouth's
    width, opening and roll. Args: landmarks (NUM_LANDMARKS, 2) pixels.
    """
    height, width = MOUTH_PATCH
    patch = np.array([(fx * width, fy * height, 1.0) for fx, fy in _MOUTH_ANCHORS.values()])
    image = landmarks[list(_MOUTH_ANCHORS), :2]
    solution, *_ = np.linalg.lstsq(patch, image, rcond=None)
    return solution.T.astype(np.float64)


def mouth_patch(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(*MOUTH_PATCH, 3) uint8: the mouth region of ``image`` in the patch frame (for exemplars)."""
    height, width = MOUTH_PATCH
    return cv2.warpAffine(image, mouth_patch_transform(landmarks), (width, height),
                          flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
