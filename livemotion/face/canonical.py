"""The canonical face frame: origin between the eyes, x to the face's right, y down, unit = inter-ocular distance.

Expressions are defined, measured and compared here, whatever the head's pose and the face's
size in the image; ``to_image`` maps a motion back onto the live face.
"""

from __future__ import annotations

import numpy as np

from ..types import FaceTrack
from .mesh import CHIN, LOWER_INNER_LIP, NOSE_BASE, UPPER_INNER_LIP, eye_centres


def canonical_landmarks(track: FaceTrack) -> np.ndarray:
    """(NUM_LANDMARKS, 2) the tracked landmarks in the canonical face frame."""
    origin = 0.5 * sum(eye_centres(track.landmarks))
    return ((track.landmarks - origin) @ track.rotation / track.interocular)[:, :2]


def to_image(track: FaceTrack, canonical_displacement: np.ndarray) -> np.ndarray:
    """Map (N, 2) canonical displacements onto the live face: (N, 2) pixels, following pose and size."""
    d3 = np.concatenate([canonical_displacement, np.zeros((len(canonical_displacement), 1))], axis=1)
    return (d3 @ track.rotation.T)[:, :2] * track.interocular


def inner_lip_gap(canonical: np.ndarray) -> np.ndarray:
    """The mouth opening on the midline, canonical units: (..., NUM_LANDMARKS, 2) -> (...)."""
    return canonical[..., LOWER_INNER_LIP, 1] - canonical[..., UPPER_INNER_LIP, 1]


def jaw_opening(canonical: np.ndarray) -> np.ndarray:
    """Nose base to chin, canonical units: (..., NUM_LANDMARKS, 2) -> (...). The jaw's drop, which
    the lips follow while talking; they part beyond it when pulled back from the teeth."""
    return canonical[..., CHIN, 1] - canonical[..., NOSE_BASE, 1]
