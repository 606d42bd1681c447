"""Head pose edits: turn the face in 3-D by a small yaw and pitch (any roll), or turn part of the
live head turn back towards the camera.

The face's landmarks (with MediaPipe's depth) are rotated about the centre of the face outline
and projected back onto the image; the warp engine then moves the pixels as it moves them for an
expression. Only the face inside its outline turns: ears, hair and the background behind the head
stay where they are, so beyond ~15 degrees the face visibly slides inside a head that does not
turn with it, and the side turning away is squeezed rather than hidden (no occlusion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidRequest
from ..face.mesh import FACE_OVAL

MAX_TURN = 20.0  # degrees of yaw or pitch accepted; ~15 is where the face still looks whole
_TOWARDS_CAMERA = np.array([0.0, 0.0, -1.0])  # the camera looks along +z (MediaPipe: smaller z is nearer)


@dataclass(frozen=True)
class PoseEdit:
    """A head-pose change, degrees. Signs as ``types.HeadPose``: yaw > 0 turns the nose towards image
    right, pitch > 0 up, roll > 0 tilts the head clockwise. ``face_camera`` 0..1: the share of the
    live yaw and pitch to turn back towards the camera (1: face it squarely), before the turn."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    face_camera: float = 0.0

    def __post_init__(self) -> None:
        for name in ("yaw", "pitch"):
            value = getattr(self, name)
            if not -MAX_TURN <= value <= MAX_TURN:  # also refuses NaN
                raise InvalidRequest(f"{name} must be between -{MAX_TURN:g} and {MAX_TURN:g} degrees, got {value}: "
                                     "a larger turn would need the sides of the head the camera never saw")
        if not -180.0 <= self.roll <= 180.0:
            raise InvalidRequest(f"roll must be between -180 and 180 degrees, got {self.roll}")
        if not 0.0 <= self.face_camera <= 1.0:
            raise InvalidRequest(f"face_camera must be between 0 and 1, got {self.face_camera}")

    def vector(self) -> np.ndarray:
        """(4,) yaw, pitch, roll, face_camera: the form the controller smooths over time."""
        return np.array([self.yaw, self.pitch, self.roll, self.face_camera])


def axis_rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    """(3, 3) rotation by ``degrees`` about the unit vector ``axis`` (right-handed, Rodrigues)."""
    x, y, z = axis
    cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    angle = np.radians(degrees)
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def turn_rotation(rotation: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(3, 3) camera-frame rotation that applies ``pose`` (a ``PoseEdit.vector``) to a face whose
    frame is ``rotation`` (columns: face right, face down, face backward; ``face.tracking``)."""
    yaw, pitch, roll, face_camera = pose
    right, down, backward = (rotation[:, i].astype(np.float64) for i in range(3))
    turn = np.eye(3)
    nose = -backward
    cosine = float(np.clip(nose @ _TOWARDS_CAMERA, -1.0, 1.0))
    axis = np.cross(nose, _TOWARDS_CAMERA)
    if face_camera and np.linalg.norm(axis) > 1e-9:
        turn = axis_rotation(axis / np.linalg.norm(axis), face_camera * np.degrees(np.arccos(cosine)))
    # About the face's own axes (after facing the camera): roll about the nose line, yaw about the
    # face's vertical, pitch about its horizontal. The signs make yaw > 0 move the nose image-right.
    right, down, backward = turn @ right, turn @ down, turn @ backward
    return axis_rotation(backward, roll) @ axis_rotation(down, -yaw) @ axis_rotation(right, -pitch) @ turn


def turned_points(points: np.ndarray, landmarks: np.ndarray, rotation: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(N, 2) image points after turning the face by ``pose``.

    Args:
        points: (N, 2) image points of the face (an expression's target), N = NUM_LANDMARKS.
        landmarks: (N, 3) the tracked landmarks, whose depth the points take.
        rotation: (3, 3) the tracked face frame.
        pose: (4,) yaw, pitch, roll (degrees) and face_camera (0..1), see ``PoseEdit``.
    """
    if not np.any(pose):
        return points
    solid = np.concatenate([points, landmarks[:, 2:]], axis=1).astype(np.float64)
    centre = solid[list(FACE_OVAL)].mean(axis=0)
    return ((solid - centre) @ turn_rotation(rotation, pose).T + centre)[:, :2]
