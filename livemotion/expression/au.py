"""Facial Action Units as displacement fields on the MediaPipe face mesh.

Everything here lives in the *canonical face frame* (``face.tracking.face_frame``): origin between
the eye centres, x from the person's right eye to their left (image right on a frontal face),
y from forehead to chin, unit = inter-ocular distance (IOD). A field is mapped to the live face
by its rotation and IOD (``to_image``), so one definition serves every head pose and face size.

Each AU is a few *handles*: mesh vertices that move by a FACS-described amount at intensity 1,
with Gaussian fall-off over neighbouring vertices. Groups that must not be dragged along
(eyelids under a moving brow, the inner lips) are pinned per AU, which keeps the warp fold-free.
Every AU has a right and a left half, so unilateral AUs (contempt) are the same machinery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import InvalidRequest
from ..face.mesh import (
    CHEEK,
    CHIN,
    CHIN_BOSS,
    CHIN_SIDE,
    EYE_CORNERS,
    EYES,
    GLABELLA,
    INNER_BROW,
    INNER_LIP_PAIRS,
    INNER_LIPS,
    LOWER_INNER_LIP,
    LOWER_LID,
    LOWER_LIP_SIDE,
    MIDLINE_LOWER_LIP,
    MIDLINE_UPPER_LIP,
    MOUTH_CORNER,
    NOSE_BASE,
    NOSE_WING,
    NUM_LANDMARKS,
    OUTER_BROW,
    OUTER_LIP_CONTOUR,
    SIDES,
    UPPER_INNER_LIP,
    UPPER_LID,
    UPPER_LIP_SIDE,
    both,
)

_OUT = np.array([-1.0, 1.0])  # x direction pointing away from the midline, per side (right, left)


@dataclass(frozen=True)
class Handle:
    """Vertices that move by ``(out, down)`` IOD at intensity 1, falling off over ``radius`` IOD.

    ``out`` is away from the face's midline on the handle's side, ``down`` towards the chin.
    """

    group: tuple[tuple[int, ...], tuple[int, ...]] | int
    out: float
    down: float
    radius: float


@dataclass(frozen=True)
class ActionUnit:
    """One FACS Action Unit: its handle vertices, how far each moves per unit intensity, and its fall-off."""

    number: int
    name: str
    handles: tuple[Handle, ...]
    pinned: tuple[int, ...] = ()  # vertices this AU must not move


# Amounts follow the FACS descriptions (Ekman & Friesen), scaled to a clearly visible apex.
ACTION_UNITS: dict[int, ActionUnit] = {au.number: au for au in (
    ActionUnit(1, "inner brow raiser", (Handle(INNER_BROW, 0.02, -0.2, 0.14),), pinned=EYES),
    ActionUnit(2, "outer brow raiser", (Handle(OUTER_BROW, 0.01, -0.2, 0.14),), pinned=EYES),
    ActionUnit(4, "brow lowerer", (Handle(INNER_BROW, -0.1, 0.18, 0.16), Handle(GLABELLA, 0.0, 0.06, 0.1)), pinned=EYES),
    ActionUnit(5, "upper lid raiser", (Handle(UPPER_LID, 0.0, -0.07, 0.07),),
               pinned=both(LOWER_LID) + both(EYE_CORNERS) + both(INNER_BROW) + both(OUTER_BROW)),
    ActionUnit(6, "cheek raiser", (Handle(CHEEK, 0.0, -0.07, 0.2), Handle(LOWER_LID, 0.0, -0.03, 0.08)),
               pinned=both(UPPER_LID) + INNER_LIPS),
    ActionUnit(7, "lid tightener", (Handle(LOWER_LID, 0.0, -0.06, 0.07), Handle(UPPER_LID, 0.0, 0.025, 0.05)),
               pinned=both(INNER_BROW) + both(OUTER_BROW)),
    ActionUnit(9, "nose wrinkler", (Handle(NOSE_WING, 0.0, -0.1, 0.11), Handle(INNER_BROW, -0.02, 0.03, 0.1)),
               pinned=EYES + INNER_LIPS),
    ActionUnit(10, "upper lip raiser", (Handle(UPPER_LIP_SIDE, 0.0, -0.1, 0.12),), pinned=EYES),
    ActionUnit(12, "lip corner puller", (Handle(MOUTH_CORNER, 0.09, -0.16, 0.16), Handle(CHEEK, 0.02, -0.04, 0.2)),
               pinned=EYES),
    ActionUnit(14, "dimpler", (Handle(MOUTH_CORNER, -0.05, -0.02, 0.09),), pinned=EYES),
    ActionUnit(15, "lip corner depressor", (Handle(MOUTH_CORNER, 0.02, 0.18, 0.14),), pinned=EYES),
    ActionUnit(17, "chin raiser", (Handle(CHIN_SIDE, 0.0, -0.07, 0.16), Handle(CHIN_BOSS, 0.0, -0.07, 0.14),
                                   Handle(LOWER_LIP_SIDE, 0.0, -0.03, 0.06)), pinned=EYES + INNER_LIPS),
    ActionUnit(20, "lip stretcher", (Handle(MOUTH_CORNER, 0.11, 0.02, 0.13),), pinned=EYES),
    ActionUnit(23, "lip tightener", (Handle(UPPER_LIP_SIDE, -0.01, 0.03, 0.05), Handle(MIDLINE_UPPER_LIP, 0, 0.03, 0.05),
                                     Handle(LOWER_LIP_SIDE, -0.01, -0.03, 0.05), Handle(MIDLINE_LOWER_LIP, 0, -0.03, 0.05)),
               pinned=EYES + INNER_LIPS),
    ActionUnit(25, "lips part", (Handle(LOWER_LIP_SIDE, 0.0, 0.04, 0.08),), pinned=EYES),
    ActionUnit(26, "jaw drop", (Handle(CHIN_SIDE, 0.0, 0.12, 0.25), Handle(CHIN, 0.0, 0.12, 0.25),
                                Handle(LOWER_LIP_SIDE, 0.0, 0.1, 0.12)), pinned=EYES),
    ActionUnit(43, "eyes closed", (Handle(UPPER_LID, 0.0, 0.09, 0.06),), pinned=both(LOWER_LID) + both(EYE_CORNERS)),
)}

AU_NUMBERS: tuple[int, ...] = tuple(ACTION_UNITS)
# Speech lives in these: the controller never changes them, so lips move exactly as spoken.
SPEECH_AUS: frozenset[int] = frozenset({25, 26})
EMOTION_AUS: tuple[int, ...] = tuple(n for n in AU_NUMBERS if n not in SPEECH_AUS)

# The emotions one can ask for. What each does to a face is measured on real people (``library``);
# the AU sliders above work beside them.
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contemptuous")


def au_vector(values: dict[str, float], base: np.ndarray | None = None) -> np.ndarray:
    """(len(AU_NUMBERS), 2) intensities [right, left] from ``{"12": 0.6, "R14": 0.9}``, written over
    a copy of ``base`` when given (a key sets both sides, an R/L key one side)."""
    vector = np.zeros((len(AU_NUMBERS), 2)) if base is None else base.copy()
    for key, value in values.items():
        match = re.fullmatch(r"([RL]?)(\d+)", key)
        if match is None or int(match[2]) not in ACTION_UNITS:
            raise InvalidRequest(f"unknown action unit {key!r}: use one of {', '.join(map(str, AU_NUMBERS))}, "
                                 "optionally with R or L for one side (R12)")
        row = AU_NUMBERS.index(int(match[2]))
        if match[1]:
            vector[row, SIDES.index(match[1])] = value
        else:
            vector[row] = value
    return vector


@dataclass(frozen=True)
class _HandleTable:
    """Every AU half's handles flattened once, so ``fields`` is a few array operations."""

    points: np.ndarray  # handle vertices, all handles concatenated
    starts: np.ndarray  # where each handle's vertices begin in ``points``
    radius: np.ndarray  # (H,) per handle
    gated: np.ndarray  # (H,) bool: the handle moves only its own side of the face
    side_sign: np.ndarray  # (H,) +-1: the outward direction of the handle's side
    amounts: np.ndarray  # (H, K * 2 * 2): each handle's contribution to (AU, side, x|y)
    pinned: np.ndarray  # (K, NUM_LANDMARKS) bool


@lru_cache(maxsize=1)
def _handle_table() -> _HandleTable:
    points: list[np.ndarray] = []
    starts: list[int] = []
    radius: list[float] = []
    gated: list[bool] = []
    signs: list[float] = []
    amounts: list[np.ndarray] = []
    pinned = np.zeros((len(ACTION_UNITS), NUM_LANDMARKS), bool)
    for row, au in enumerate(ACTION_UNITS.values()):
        pinned[row, list(au.pinned)] = True
        for side in (0, 1):
            for handle in au.handles:
                midline = isinstance(handle.group, int)
                if isinstance(handle.group, int):
                    if side == 1:
                        continue  # a midline handle belongs to the right half only, so it counts once
                    ids = np.atleast_1d(handle.group)
                else:
                    ids = np.atleast_1d(handle.group[side])
                starts.append(sum(len(p) for p in points))
                points.append(ids)
                radius.append(handle.radius)
                gated.append(not midline)
                signs.append(_OUT[side])
                amount = np.zeros((len(ACTION_UNITS), 2, 2))
                amount[row, side] = (handle.out * _OUT[side], handle.down)
                amounts.append(amount.ravel())
    return _HandleTable(np.concatenate(points), np.array(starts), np.array(radius), np.array(gated),
                        np.array(signs), np.stack(amounts), pinned)


def fields(canonical: np.ndarray) -> np.ndarray:
    """Unit displacement of every AU half on this face: (len(AU_NUMBERS), 2, NUM_LANDMARKS, 2), canonical units.

    ``canonical`` is the face's (NUM_LANDMARKS, 2) canonical landmark positions; fall-offs follow its geometry.
    """
    table = _handle_table()
    handles = canonical[table.points]
    # squared distances written out: np.linalg.norm over an axis is ~20x slower here
    to_points = (canonical[:, None, 0] - handles[None, :, 0]) ** 2 + (canonical[:, None, 1] - handles[None, :, 1]) ** 2
    distance2 = np.minimum.reduceat(to_points, table.starts, axis=1)  # (NUM_LANDMARKS, H): to each handle's nearest vertex
    weight = np.exp(-0.5 * distance2 / table.radius**2)
    # A half moves its own side of the face; vertices on the midline get half of it.
    side_gate = np.clip(0.5 + table.side_sign[None, :] * canonical[:, :1] / 0.1, 0.0, 1.0)
    weight = np.where(table.gated[None, :], weight * side_gate, weight)
    out = (weight @ table.amounts).reshape(NUM_LANDMARKS, len(ACTION_UNITS), 2, 2).transpose(1, 2, 0, 3)
    out[np.broadcast_to(table.pinned[:, None, :], out.shape[:3])] = 0.0
    return np.ascontiguousarray(out)


def keep_mouth_opening(displacement: np.ndarray, canonical: np.ndarray, radius: float = 0.06) -> np.ndarray:
    """Give facing upper/lower inner-lip vertices one shared motion, so the opening never changes.

    The correction each inner-lip vertex gets is spread over its neighbours (Gaussian, ``radius``
    IOD) so that the whole lip moves with it; otherwise the thin lips would be squeezed or folded.
    """
    upper, lower = np.array(INNER_LIP_PAIRS).T
    shared = 0.5 * (displacement[upper] + displacement[lower])
    inner = np.concatenate([upper, lower])
    correction = np.concatenate([shared - displacement[upper], shared - displacement[lower]])
    distance2 = ((canonical[:, None, :] - canonical[inner][None, :, :]) ** 2).sum(-1)
    weight = np.exp(-0.5 * distance2 / radius**2)
    out = displacement + (weight @ correction) / np.maximum(weight.sum(axis=1, keepdims=True), 1.0)
    out[upper], out[lower] = shared, shared
    return out


def lips_apart_motion(canonical: np.ndarray, radius: float = 0.06) -> np.ndarray:
    """(NUM_LANDMARKS, 2) canonical motion that parts the lips by one unit with the jaw still: the
    upper lip up and the lower lip down by half each (the inner-lip gap grows by exactly one), the
    skin beside them following (Gaussian, ``radius`` IOD), nothing pulled across the mouth's midline.
    The corners stay: the lips are pulled back from the teeth, not the mouth widened."""
    upper = [u for u, _ in INNER_LIP_PAIRS] + list(OUTER_LIP_CONTOUR[1:10])  # the contour: corner, upper, corner, lower
    lower = [d for _, d in INNER_LIP_PAIRS] + list(OUTER_LIP_CONTOUR[11:])
    middle = 0.5 * (canonical[UPPER_INNER_LIP, 1] + canonical[LOWER_INNER_LIP, 1])

    def following(lip: list[int], side: np.ndarray) -> np.ndarray:
        distance = np.linalg.norm(canonical[:, None] - canonical[lip][None], axis=-1).min(axis=1)
        weight = np.exp(-0.5 * (distance / radius) ** 2)
        weight[lip] = 1.0
        return weight * side

    motion = np.zeros_like(canonical)
    motion[:, 1] = 0.5 * (following(lower, canonical[:, 1] > middle - 0.005)
                          - following(upper, canonical[:, 1] < middle + 0.005))
    return motion


# ---- measuring AUs: per-side features, each a linear function of canonical landmarks -----------

def _y(c: np.ndarray, ids: int | tuple[int, ...]) -> np.ndarray:
    return c[list(np.atleast_1d(ids)), 1].mean()


def features(c: np.ndarray) -> np.ndarray:
    """(2, F) expression features [right, left] of canonical landmarks ``c`` (NUM_LANDMARKS, 2); larger = more."""
    rows = []
    mouth_mid = 0.5 * (c[UPPER_INNER_LIP, 1] + c[LOWER_INNER_LIP, 1])
    thickness = (c[UPPER_INNER_LIP, 1] - c[MIDLINE_UPPER_LIP, 1]) + (c[MIDLINE_LOWER_LIP, 1] - c[LOWER_INNER_LIP, 1])
    chin_gap = c[CHIN, 1] - c[MIDLINE_LOWER_LIP, 1]
    for side in (0, 1):
        outer_corner, inner_corner = EYE_CORNERS[side]
        eye_line = 0.5 * (c[outer_corner, 1] + c[inner_corner, 1])
        rows.append([
            c[inner_corner, 1] - _y(c, INNER_BROW[side]),  # inner brow height (AU1 up, AU4 down)
            c[outer_corner, 1] - _y(c, OUTER_BROW[side]),  # outer brow height (AU2)
            _OUT[side] * c[list(INNER_BROW[side]), 0].mean(),  # inner brows apart (AU4 draws them in)
            eye_line - _y(c, UPPER_LID[side][2:5]),  # upper lid height (AU5 up, AU43 down)
            eye_line - _y(c, LOWER_LID[side][2:5]),  # lower lid height (AU7, AU6 up)
            eye_line - _y(c, CHEEK[side]),  # cheek height (AU6)
            eye_line - _y(c, NOSE_WING[side]),  # nose wing height (AU9)
            c[NOSE_BASE, 1] - _y(c, UPPER_LIP_SIDE[side][:2]),  # upper lip height (AU10)
            mouth_mid - _y(c, MOUTH_CORNER[side][:2]),  # corner height (AU12 up, AU15 down)
            _OUT[side] * c[list(MOUTH_CORNER[side][:2]), 0].mean(),  # corner outwards (AU12, AU20; AU14 in)
            -chin_gap,  # chin raised (AU17)
            -thickness,  # lips thinned (AU23)
        ])
    return np.asarray(rows)


@lru_cache(maxsize=1)
def feature_operator() -> np.ndarray:
    """``features`` as a matrix: (2 * F, NUM_LANDMARKS * 2), so that features(c).ravel() == operator @ c.ravel()."""
    n = NUM_LANDMARKS * 2
    columns = [features(np.eye(1, n, k).reshape(NUM_LANDMARKS, 2)).ravel() for k in range(n)]
    return np.stack(columns, axis=1)


def fold_free_target(source: np.ndarray, target: np.ndarray, triangles: np.ndarray, min_ratio: float = 0.1,
                     rounds: int = 12) -> np.ndarray:
    """``target`` pulled back towards ``source`` only where it would squeeze a mesh triangle below
    ``min_ratio`` of its signed area (so none folds over): the vertices of such triangles move
    less, round after round, and the rest of the face keeps its full motion. A fold in one corner
    (a lid pressed onto the eyeball's points, a lip corner) no longer weakens the whole expression.
    Args: source, target (N, 2) points; triangles (T, 3) vertex indices. Returns (N, 2)."""
    reference = _signed_area(source, triangles)
    usable = np.abs(reference) > 0.2 * np.median(np.abs(reference))  # edge-on slivers (e.g. under the nose) say nothing
    triangles, reference = triangles[usable], reference[usable]
    motion = target - source
    share = np.ones(len(source))
    for _ in range(rounds):
        squeezed = _signed_area(source + share[:, None] * motion, triangles) / reference < min_ratio
        if not squeezed.any():
            return source + share[:, None] * motion
        share[np.unique(triangles[squeezed])] *= 0.7
    moved = source + share[:, None] * motion  # still folding somewhere: scale the rest back as a whole

    def worst(t: float) -> float:
        return float(np.min(_signed_area(source + t * (moved - source), triangles) / reference))

    low, high = 0.0, 1.0
    for _ in range(8):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if worst(middle) >= min_ratio else (low, middle)
    return source + low * (moved - source)


def _signed_area(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
