"""MediaPipe face-mesh topology: every landmark index the project uses lives here, and only here.

The numbering is MediaPipe's canonical face mesh: 468 surface vertices, then 10 iris points.
"Right" and "left" are the person's own sides (their right eye appears on the image's left);
groups are written ``(right, left)`` and eye corners ``(outer, inner)`` on both sides.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

NUM_MESH_VERTICES = 468  # surface vertices
NUM_LANDMARKS = 478  # surface + 2 x 5 iris points (refine_landmarks=True)
IRISES = tuple(range(NUM_MESH_VERTICES, NUM_LANDMARKS))
IRIS_CENTRES = (468, 473)  # (right, left); each followed by four points on its iris's rim
IRIS_RIMS = ((469, 470, 471, 472), (474, 475, 476, 477))

# The person's sides: index 0 = right, 1 = left.
SIDES = ("R", "L")

# ---- single points ---------------------------------------------------------------------------
FOREHEAD, CHIN, NOSE_TIP, NOSE_BASE, CHIN_BOSS, GLABELLA = 10, 152, 1, 2, 200, 9
MIDLINE_UPPER_LIP, MIDLINE_LOWER_LIP = 0, 17  # outer lip contour on the midline
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14  # inner lip contour on the midline
MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER = 61, 291

# ---- groups, each (right, left) --------------------------------------------------------------
EYE_CORNERS = ((33, 133), (263, 362))  # (outer, inner) per side
INNER_BROW = ((107, 55, 66, 65), (336, 285, 296, 295))
OUTER_BROW = ((70, 46, 63, 53), (300, 276, 293, 283))
UPPER_LID = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))
LOWER_LID = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))
CHEEK = ((50, 101, 36, 205, 187), (280, 330, 266, 425, 411))
NOSE_WING = ((129, 98, 64, 48), (358, 327, 294, 278))
UPPER_LIP_SIDE = ((37, 39, 40, 185), (267, 269, 270, 409))
LOWER_LIP_SIDE = ((84, 181, 91, 146), (314, 405, 321, 375))
MOUTH_CORNER = ((61, 76, 62, 78), (291, 306, 292, 308))
CHIN_SIDE = ((32, 140, 171, 208), (262, 369, 396, 428))

# Upper/lower inner-lip vertices facing each other, right to left. Moving each pair as one keeps
# the mouth opening exactly as the speaker makes it.
INNER_LIP_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))
INNER_LIPS = tuple(i for pair in INNER_LIP_PAIRS for i in pair) + (78, 308)
# Closed contours, clockwise on the image from the right mouth corner: the mouth opening, and the lips' outer edge.
INNER_LIP_CONTOUR = (78, *(upper for upper, _ in INNER_LIP_PAIRS), 308, *(lower for _, lower in INNER_LIP_PAIRS[::-1]))
OUTER_LIP_CONTOUR = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
# The face outline, clockwise from the top of the forehead.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


def both(group: tuple[tuple[int, ...], tuple[int, ...]]) -> tuple[int, ...]:
    """The right and left halves of a group as one tuple."""
    return group[0] + group[1]


EYES = both(UPPER_LID) + both(LOWER_LID) + both(EYE_CORNERS) + IRISES


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) eye centres: the mean of each eye's two corners, in the landmarks' units.

    Args:
        landmarks: (NUM_LANDMARKS, D) points, D = 2 or 3.
    """
    return landmarks[list(EYE_CORNERS[0])].mean(axis=0), landmarks[list(EYE_CORNERS[1])].mean(axis=0)


def _control_points() -> np.ndarray:
    """The vertices a warp is steered by: every feature contour in full, every other vertex
    elsewhere. The mesh is far denser than the flow needs (~2x the cost for no visible gain)."""
    features = set(EYES) | set(INNER_LIPS) | set(FACE_OVAL) | {MIDLINE_UPPER_LIP, MIDLINE_LOWER_LIP}
    for group in (INNER_BROW, OUTER_BROW, CHEEK, NOSE_WING, UPPER_LIP_SIDE, LOWER_LIP_SIDE, MOUTH_CORNER, CHIN_SIDE):
        features |= set(both(group))
    return np.array(sorted(features | set(range(0, NUM_MESH_VERTICES, 2))))


CONTROL_POINTS = _control_points()


@lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """(852, 3) vertex indices of the mesh's triangles (MediaPipe lists the tessellation's edges
    in triangle order; its ``frozenset`` variant loses that order)."""
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections

    edges = FaceLandmarksConnections.FACE_LANDMARKS_TESSELATION
    return np.array([(edges[i].start, edges[i + 1].start, edges[i + 2].start) for i in range(0, len(edges), 3)])


@lru_cache(maxsize=1)
def drawing_edges() -> np.ndarray:
    """(E, 2) vertex pairs of the tessellation and the irises, for debug drawing."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_IRISES, FACEMESH_TESSELATION

    return np.array(sorted(FACEMESH_TESSELATION | FACEMESH_IRISES), dtype=np.int64)
