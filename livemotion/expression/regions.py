"""Face regions for per-region mixing (ICface): each region shows what its source says.

Landmark regions partition the mesh by its nearest feature (brows, eyes, cheeks, mouth); the
mouth's opening and the head's pose are the edit's own scalar parts. A region's source is one of

- ``edit``: the request's emotion and AU sliders (the default; for ``head_pose``, its pose values);
- ``live``: the live face as it is: no motion and no shading, so where nothing around it moves
  its pixels keep their bytes;
- ``drive``: the driving face (mimic, ``drive.Driver``), read against its own neutral;
- ``manual``: the AU sliders alone (for ``mouth_opening``, the request's ``opening`` value; for
  ``head_pose``, its pose values);
- an emotion (or a style's name), optionally at an intensity: ``angry``, ``happy@0.6``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
from .au import EMOTIONS

_FEATURES = {  # the vertices that define each landmark region; every other vertex joins the nearest
    "brows": both(INNER_BROW) + both(OUTER_BROW),
    "eyes": both(UPPER_LID) + both(LOWER_LID) + both(EYE_CORNERS),
    "cheeks": both(CHEEK) + both(NOSE_WING),
    "mouth_corners": OUTER_LIP_CONTOUR + INNER_LIPS + both(MOUTH_CORNER) + both(CHIN_SIDE),
}
LANDMARK_REGIONS = tuple(_FEATURES)
REGIONS = (*LANDMARK_REGIONS, "mouth_opening", "head_pose")
EXPRESSION_REGIONS = REGIONS[:-1]  # all but the head: keeping these live leaves only a pose edit
# The library's shading regions (``library.SHADING_REGIONS``) that belong to each landmark region.
SHADING_OF = {"brows": ("forehead", "glabella"), "eyes": ("eyes",), "cheeks": ("nasolabial",), "mouth_corners": ("chin",)}
SOURCES = ("edit", "live", "drive", "manual")  # besides an emotion's name
DRIVEN = dict.fromkeys(LANDMARK_REGIONS, "drive")  # mimic's default: the expression, not the speech or the pose
_EMOTION_SOURCE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]{0,39})(?:@([0-9.]+))?$")


@dataclass(frozen=True)
class RegionSource:
    """What drives one region: ``kind`` is one of ``SOURCES`` or "emotion" (``emotion`` at ``intensity``)."""

    kind: str = "edit"
    emotion: str = "neutral"
    intensity: float = 1.0


def parse_source(region: str, text: str) -> RegionSource:
    """``text`` ("live", "angry@0.6", ...) as the source of ``region``, or ``InvalidRequest`` saying what to write."""
    if region not in REGIONS:
        raise InvalidRequest(f"unknown face region {region!r}: use {', '.join(REGIONS)}")
    if text in SOURCES:
        return RegionSource(text)
    match = _EMOTION_SOURCE.match(text)
    intensity = _intensity(match.group(2)) if match and match.group(2) else 1.0
    if match is None or intensity is None or match.group(1) in SOURCES:
        raise InvalidRequest(f"{region}={text!r}: write one of {', '.join(SOURCES)} or an emotion, optionally "
                             "with an intensity 0..1 (angry, happy@0.6)")
    if region == "head_pose":
        raise InvalidRequest(f"head_pose={text!r}: an emotion does not turn the head; use {', '.join(SOURCES)}")
    return RegionSource("emotion", match.group(1), intensity)


def check_emotion_name(name: str) -> str:
    """``name`` if it is an emotion's or could be a style's (``styles``); the library says which styles exist."""
    match = _EMOTION_SOURCE.match(name)
    if match is None or match.group(2) is not None or name in SOURCES:
        raise InvalidRequest(f"unknown emotion {name!r}: use one of {', '.join(EMOTIONS)} or a style's name")
    return name


def _intensity(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def check_mix(mix: Mapping[str, str]) -> dict[str, str]:
    """``mix`` ({region: source}) checked with ``parse_source``; regions left at "edit" are dropped."""
    return {region: text for region, text in mix.items() if parse_source(region, text).kind != "edit"}


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


def shading_owner(shading_regions: tuple[str, ...]) -> np.ndarray:
    """(len(shading_regions),) index into ``LANDMARK_REGIONS`` of the face region each of the
    library's shading regions belongs to."""
    owner = {s: r for r, name in enumerate(LANDMARK_REGIONS) for s in SHADING_OF[name]}
    return np.array([owner[region] for region in shading_regions])
