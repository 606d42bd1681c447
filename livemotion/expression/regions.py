"""Face regions for per-region mixing: each region shows the edit or stays as the live face has it.

Landmark regions partition the mesh by its nearest feature (brows, eyes, cheeks, mouth); the
mouth's opening and the head's pose are the edit's own scalar parts. A region kept live gets no
motion and no shading, so where nothing around it moves its pixels keep their bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import InvalidRequest
from ..face.mesh import (
    CHEEK,
    CHIN_SIDE,
    EYE_CORNERS,
    INNER_BROW,
    INNER_LIPS,
    LOWER_LID,
    MOUTH_CORNER,
    NOSE_WING,
    OUTER_BROW,
    OUTER_LIP_CONTOUR,
    UPPER_LID,
    both,
)

_FEATURES = {  # the vertices that define each landmark region; every other vertex joins the nearest
    "brows": both(INNER_BROW) + both(OUTER_BROW),
    "eyes": both(UPPER_LID) + both(LOWER_LID) + both(EYE_CORNERS),
    "cheeks": both(CHEEK) + both(NOSE_WING),
    "mouth_corners": OUTER_LIP_CONTOUR + INNER_LIPS + both(MOUTH_CORNER) + both(CHIN_SIDE),
}
LANDMARK_REGIONS = tuple(_FEATURES)
REGIONS = (*LANDMARK_REGIONS, "mouth_opening", "head_pose")
EXPRESSION_REGIONS = REGIONS[:-1]  # all but the head: keeping these live leaves only a pose edit
# The library's shading regions (``library.REGIONS``) that belong to each landmark region.
SHADING_OF = {"brows": ("forehead", "glabella"), "eyes": ("eyes",), "cheeks": ("nasolabial",), "mouth_corners": ("chin",)}


def check_regions(names: Iterable[str]) -> frozenset[str]:
    """``names`` as a set of regions, or ``InvalidRequest`` naming the unknown ones."""
    chosen = frozenset(names)
    unknown = sorted(chosen - set(REGIONS))
    if unknown:
        raise InvalidRequest(f"unknown face region(s) {', '.join(unknown)}: use {', '.join(REGIONS)}")
    return chosen


def landmark_region(template: np.ndarray) -> np.ndarray:
    """(NUM_LANDMARKS,) index into ``LANDMARK_REGIONS`` of each landmark, by its nearest feature
    vertex on ``template`` (NUM_LANDMARKS, 2) canonical points. Irises go with the eyes."""
    ids = [i for name in LANDMARK_REGIONS for i in _FEATURES[name]]
    owner = np.array([r for r, name in enumerate(LANDMARK_REGIONS) for _ in _FEATURES[name]])
    distance = np.linalg.norm(template[:, None, :] - template[None, ids, :], axis=-1)
    return owner[np.argmin(distance, axis=1)]


def edited_landmarks(owner: np.ndarray, live: frozenset[str]) -> np.ndarray:
    """(NUM_LANDMARKS,) 1 where a landmark's region shows the edit, 0 where it is kept live.
    ``owner``: each landmark's region, from ``landmark_region``."""
    kept = np.array([name in live for name in LANDMARK_REGIONS])
    return (~kept[owner]).astype(np.float64)


def edited_shading(shading_regions: tuple[str, ...], live: frozenset[str]) -> np.ndarray:
    """(len(shading_regions),) 1 for each of the library's shading regions whose face region shows the edit."""
    kept = {s for name in live if name in SHADING_OF for s in SHADING_OF[name]}
    return np.array([0.0 if region in kept else 1.0 for region in shading_regions])
