"""Debug drawing: the tracked mesh, the face box and the head pose on top of a frame."""

from __future__ import annotations

import cv2
import numpy as np

from ..face.mesh import NOSE_TIP, drawing_edges
from ..types import FaceTrack, NoFace, TrackResult


def draw_overlay(image: np.ndarray, track: TrackResult) -> np.ndarray:
    """A copy of ``image`` with the mesh, box and pose of ``track`` drawn in (RGB)."""
    out = image.copy()
    if isinstance(track, NoFace):
        cv2.putText(out, track.reason, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 80, 80), 2, cv2.LINE_AA)
        return out
    assert isinstance(track, FaceTrack)
    points = np.round(track.landmarks[:, :2] * 16).astype(np.int32)  # 4 fractional bits for smooth lines
    segments = points[drawing_edges()]
    cv2.polylines(out, list(segments.reshape(-1, 2, 1, 2)), False, (0, 255, 160), 1, cv2.LINE_AA, shift=4)
    b = track.box
    cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), (255, 200, 0), 1)
    # Head axes from the nose tip: red = face right, green = face down, blue = towards the camera.
    nose = track.landmarks[NOSE_TIP, :2]
    length = track.interocular
    for axis, colour in zip((track.rotation[:, 0], track.rotation[:, 1], -track.rotation[:, 2]),
                            ((255, 0, 0), (0, 255, 0), (0, 120, 255)), strict=True):
        tip = nose + axis[:2] * length
        cv2.line(out, tuple(np.round(nose).astype(int)), tuple(np.round(tip).astype(int)), colour, 2, cv2.LINE_AA)
    p = track.pose
    label = f"pitch {p.pitch:+.0f}  yaw {p.yaw:+.0f}  roll {p.roll:+.0f}  faces {track.num_faces}"
    cv2.putText(out, label, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2, cv2.LINE_AA)
    return out
