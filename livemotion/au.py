"""Facial Action Units as displacement fields on the MediaPipe face mesh.

Everything here lives in the *canonical face frame* (``tracking.face_frame``): origin between
the eye centres, x from the person's right eye to their left (image right on a frontal face),
y from forehead to chin, unit = inter-ocular distance (IOD). A field is mapped to the live face
by its rotation and IOD (``to_image``), so one definition serves every head pose and face size.

Each AU is a few *handles*: mesh vertices that move by a FACS-described amount at intensity 1,
with Gaussian fall-off over neighbouring vertices. Groups that must not be dragged along
(eyelids under a moving brow, the inner lips) are pinned per AU, which keeps the warp fold-free.
Every AU has a right and a left half, so unilateral AUs (contempt) are the same machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# The person's sides: their right appears on the image's left. Index 0 = right, 1 = left.
SIDES = ("R", "L")
_OUT = np.array([-1.0, 1.0])  # x direction pointing away from the midline, per side

# ---- landmark groups (MediaPipe face mesh numbering), each as (right, left) ------------------
INNER_BROW = ((107, 55, 66, 65), (336, 285, 296, 295))
OUTER_BROW = ((70, 46, 63, 53), (300, 276, 293, 283))
UPPER_LID = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))
LOWER_LID = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))
EYE_CORNERS = ((33, 133), (263, 362))  # (outer, inner)
CHEEK = ((50, 101, 36, 205, 187), (280, 330, 266, 425, 411))
NOSE_WING = ((129, 98, 64, 48), (358, 327, 294, 278))
UPPER_LIP_SIDE = ((37, 39, 40, 185), (267, 269, 270, 409))
LOWER_LIP_SIDE = ((84, 181, 91, 146), (314, 405, 321, 375))
MOUTH_CORNER = ((61, 76, 62, 78), (291, 306, 292, 308))
CHIN_SIDE = ((32, 140, 171, 208), (262, 369, 396, 428))
MIDLINE_UPPER_LIP, MIDLINE_LOWER_LIP = 0, 17
UPPER_INNER, LOWER_INNER = 13, 14
NOSE_BASE, CHIN, CHIN_BOSS = 2, 152, 200
# Upper/lower inner-lip vertices facing each other. Moving each pair as one keeps the mouth
# opening exactly as the speaker makes it.
INNER_LIP_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))
INNER_LIPS = tuple(i for pair in INNER_LIP_PAIRS for i in pair) + (78, 308)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def _both(group: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[int, ...]:
    return group[0] + group[1]


EYES = _both(UPPER_LID) + _both(LOWER_LID) + _both(EYE_CORNERS) + tuple(range(468, 478))  # + irises


def _control_points() -> np.ndarray:
    """The mesh vertices the warp is steered by: every feature contour in full, every other vertex
    elsewhere. The mesh is far denser than the flow needs (~2x the cost for no visible gain)."""
    features = set(EYES) | set(INNER_LIPS) | set(FACE_OVAL) | {MIDLINE_UPPER_LIP, MIDLINE_LOWER_LIP}
    for group in (INNER_BROW, OUTER_BROW, CHEEK, NOSE_WING, UPPER_LIP_SIDE, LOWER_LIP_SIDE, MOUTH_CORNER, CHIN_SIDE):
        features |= set(_both(group))
    return np.array(sorted(features | set(range(0, 468, 2))))


CONTROL_POINTS = _control_points()


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
    number: int
    name: str
    handles: tuple[Handle, ...]
    pinned: tuple[int, ...] = ()  # vertices this AU must not move


# Amounts follow the FACS descriptions (Ekman & Friesen), scaled to a clearly visible apex.
ACTION_UNITS: dict[int, ActionUnit] = {au.number: au for au in (
    ActionUnit(1, "inner brow raiser", (Handle(INNER_BROW, 0.02, -0.2, 0.14),), pinned=EYES),
    ActionUnit(2, "outer brow raiser", (Handle(OUTER_BROW, 0.01, -0.2, 0.14),), pinned=EYES),
    ActionUnit(4, "brow lowerer", (Handle(INNER_BROW, -0.1, 0.18, 0.16), Handle(9, 0.0, 0.06, 0.1)), pinned=EYES),
    ActionUnit(5, "upper lid raiser", (Handle(UPPER_LID, 0.0, -0.07, 0.07),),
               pinned=_both(LOWER_LID) + _both(EYE_CORNERS) + _both(INNER_BROW) + _both(OUTER_BROW)),
    ActionUnit(6, "cheek raiser", (Handle(CHEEK, 0.0, -0.07, 0.2), Handle(LOWER_LID, 0.0, -0.03, 0.08)),
               pinned=_both(UPPER_LID) + INNER_LIPS),
    ActionUnit(7, "lid tightener", (Handle(LOWER_LID, 0.0, -0.06, 0.07), Handle(UPPER_LID, 0.0, 0.025, 0.05)),
               pinned=_both(INNER_BROW) + _both(OUTER_BROW)),
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
    ActionUnit(43, "eyes closed", (Handle(UPPER_LID, 0.0, 0.09, 0.06),), pinned=_both(LOWER_LID) + _both(EYE_CORNERS)),
)}

AU_NUMBERS: tuple[int, ...] = tuple(ACTION_UNITS)
# Speech lives in these: the controller never changes them, so lips move exactly as spoken.
SPEECH_AUS: frozenset[int] = frozenset({25, 26})
EMOTION_AUS: tuple[int, ...] = tuple(n for n in AU_NUMBERS if n not in SPEECH_AUS)

# Standard EMFACS prototypes at apex. "R12" = right side only (contempt is unilateral).
PRESETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"6": 0.8, "12": 1.0},
    "sad": {"1": 1.0, "4": 0.6, "15": 1.0, "17": 0.6},
    # angry: the 4+5+7+23 prototype's variant with AU10 (EMFACS); the raised upper lip and the
    # wrinkled nose are what an independent classifier responds to, brows alone barely move it
    "angry": {"4": 1.0, "7": 0.6, "9": 0.9, "10": 1.0, "23": 0.3},
    "surprised": {"1": 1.0, "2": 1.0, "5": 1.0},  # + AU26, which is left to the speaker's jaw
    "fearful": {"1": 1.0, "2": 0.6, "4": 0.6, "5": 1.0, "7": 0.4, "20": 1.0},
    "disgusted": {"9": 1.0, "10": 0.8, "15": 0.5, "17": 0.5, "4": 0.4},
    "contemptuous": {"R12": 0.7, "R14": 0.9},
}
EMOTIONS: tuple[str, ...] = tuple(PRESETS)


def au_vector(values: dict[str, float], base: np.ndarray | None = None) -> np.ndarray:
    """(len(AU_NUMBERS), 2) intensities [right, left] from ``{"12": 0.6, "R14": 0.9}``, written over
    a copy of ``base`` when given (a key sets both sides, an R/L key one side)."""
    vector = np.zeros((len(AU_NUMBERS), 2)) if base is None else base.copy()
    for key, value in values.items():
        side = key[0] if key[0] in "RL" else None
        number = int(key[1:] if side else key)
        if number not in ACTION_UNITS:
            raise ValueError(f"unknown action unit {key!r}: use one of {', '.join(map(str, AU_NUMBERS))}")
        row = AU_NUMBERS.index(number)
        if side is None:
            vector[row] = value
        else:
            vector[row, SIDES.index(side)] = value
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
    pinned: np.ndarray  # (K, 478) bool


@lru_cache(maxsize=1)
def _handle_table() -> _HandleTable:
    points, starts, radius, gated, signs, amounts = [], [], [], [], [], []
    pinned = np.zeros((len(ACTION_UNITS), 478), bool)
    for row, au in enumerate(ACTION_UNITS.values()):
        pinned[row, list(au.pinned)] = True
        for side in (0, 1):
            for handle in au.handles:
                midline = isinstance(handle.group, int)
                if midline and side == 1:
                    continue  # a midline handle belongs to the right half only, so it counts once
                ids = np.atleast_1d(handle.group if midline else handle.group[side])
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
    """Unit displacement of every AU half on this face: (len(AU_NUMBERS), 2, 478, 2), canonical units.

    ``canonical`` is the face's (478, 2) canonical landmark positions; fall-offs follow its geometry.
    """
    table = _handle_table()
    handles = canonical[table.points]
    # squared distances written out: np.linalg.norm over an axis is ~20x slower here
    to_points = (canonical[:, None, 0] - handles[None, :, 0]) ** 2 + (canonical[:, None, 1] - handles[None, :, 1]) ** 2
    distance2 = np.minimum.reduceat(to_points, table.starts, axis=1)  # (478, H): to each handle's nearest vertex
    weight = np.exp(-0.5 * distance2 / table.radius**2)
    # A half moves its own side of the face; vertices on the midline get half of it.
    side_gate = np.clip(0.5 + table.side_sign[None, :] * canonical[:, :1] / 0.1, 0.0, 1.0)
    weight = np.where(table.gated[None, :], weight * side_gate, weight)
    out = (weight @ table.amounts).reshape(478, len(ACTION_UNITS), 2, 2).transpose(1, 2, 0, 3)
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


# ---- measuring AUs: per-side features, each a linear function of canonical landmarks -----------

def _y(c: np.ndarray, ids) -> np.ndarray:
    return c[list(np.atleast_1d(ids)), 1].mean()


def features(c: np.ndarray) -> np.ndarray:
    """(2, F) expression features [right, left] of canonical landmarks ``c`` (478, 2); larger = more."""
    rows = []
    mouth_mid = 0.5 * (c[UPPER_INNER, 1] + c[LOWER_INNER, 1])
    thickness = (c[UPPER_INNER, 1] - c[MIDLINE_UPPER_LIP, 1]) + (c[MIDLINE_LOWER_LIP, 1] - c[LOWER_INNER, 1])
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
    """``features`` as a matrix: (2 * F, 478 * 2), so that features(c).ravel() == operator @ c.ravel()."""
    n = 478 * 2
    columns = [features(np.eye(1, n, k).reshape(478, 2)).ravel() for k in range(n)]
    return np.stack(columns, axis=1)


def mesh_triangles() -> np.ndarray:
    """(852, 3) vertex indices of the face mesh's triangles (the tessellation lists edges in triangle order)."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections

    edges = FaceLandmarksConnections.FACE_LANDMARKS_TESSELATION
    return np.array([(edges[i].start, edges[i + 1].start, edges[i + 2].start) for i in range(0, len(edges), 3)])


def fold_free_fraction(source: np.ndarray, target: np.ndarray, triangles: np.ndarray, min_ratio: float = 0.1) -> float:
    """Largest t in [0, 1] such that moving ``source`` by ``t * (target - source)`` squeezes no mesh
    triangle below ``min_ratio`` of its signed area (so none folds over), found by bisection."""

    def worst_ratio(t: float) -> float:
        moved = source + t * (target - source)
        return float(np.min(_signed_area(moved, triangles) / reference))

    reference = _signed_area(source, triangles)
    usable = np.abs(reference) > 0.2 * np.median(np.abs(reference))  # edge-on slivers (e.g. under the nose) say nothing
    triangles, reference = triangles[usable], reference[usable]
    if worst_ratio(1.0) >= min_ratio:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(6):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if worst_ratio(middle) >= min_ratio else (low, middle)
    return low


def _signed_area(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = points[triangles[:, 0]], points[triangles[:, 1]], points[triangles[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
