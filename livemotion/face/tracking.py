"""Face tracking: MediaPipe Face Mesh (468 surface landmarks + 10 iris points) and head pose from the landmarks.

The models ship inside the mediapipe 0.10.21 wheel, so tracking runs offline.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..io.demo import portrait
from ..io.sources import FileSource
from ..types import Box, FaceTrack, Frame, HeadPose, NoFace, TrackResult
from .mesh import CHIN, FOREHEAD, eye_centres

# TFLite and glog print start-up chatter on stderr; keep the CLI's output readable.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Mute C++ start-up logs (TFLite/absl write them straight to fd 2, past Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        _libc.fflush(None)  # C stdio may still hold the lines; let them go to /dev/null
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Orthonormal face frame and scale from 3-D landmarks.

    Returns ``(R, interocular)``: R's columns are the face's right-to-left axis (image right for a
    frontal face), its downward axis (forehead to chin) and their cross product, which points
    from the face into the screen. ``interocular`` is the eye-centre distance in pixels.
    """
    right_eye, left_eye = eye_centres(landmarks)
    across = left_eye - right_eye
    interocular = float(np.linalg.norm(across[:2]))
    ex = across / np.linalg.norm(across)
    down = landmarks[CHIN] - landmarks[FOREHEAD]
    ey = down - ex * float(down @ ex)
    ey /= np.linalg.norm(ey)
    ez = np.cross(ex, ey)
    return np.stack([ex, ey, ez], axis=1).astype(np.float32), interocular


def head_pose(rotation: np.ndarray) -> HeadPose:
    """Pitch, yaw and roll in degrees from a face frame (see ``HeadPose`` for the signs)."""
    ex, ez = rotation[:, 0], rotation[:, 2]
    nose = -ez  # the nose points out of the screen, towards the camera
    yaw = np.degrees(np.arctan2(nose[0], -nose[2]))
    pitch = np.degrees(np.arctan2(-nose[1], np.hypot(nose[0], nose[2])))
    roll = np.degrees(np.arctan2(ex[1], ex[0]))
    return HeadPose(pitch=float(pitch), yaw=float(yaw), roll=float(roll))


class FaceTracker:
    """MediaPipe Face Mesh in video mode. ``track(rgb)`` returns the largest face or ``NoFace``.

    ``max_faces`` bounds how many faces are looked at to pick the largest; in video mode
    MediaPipe re-runs its face detector while fewer than ``max_faces`` faces are tracked, so
    1 is the cheapest and 2 (the default) handles a second person walking into view.
    """

    def __init__(self, max_faces: int = 2, static_images: bool = False, min_confidence: float = 0.5):
        from mediapipe.python.solutions import face_mesh

        with _native_stderr_silenced():
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=static_images,
                max_num_faces=max_faces,
                refine_landmarks=True,
                min_detection_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
            )
            # The graph opens its calculators (and logs about it) asynchronously and logs again on
            # its first face: warm it up on the demo portrait while still muted, and end on a blank
            # frame so that no face is carried over into the real stream.
            blank = np.zeros((64, 64, 3), np.uint8)
            for warm_up in (blank, portrait(), blank):
                self._mesh.process(warm_up)

    def track(self, image: np.ndarray) -> TrackResult:
        """The largest face in ``image`` ((H, W, 3) uint8 RGB) as a ``FaceTrack``, or ``NoFace`` saying why not."""
        height, width = image.shape[:2]
        result = self._mesh.process(image)
        faces = result.multi_face_landmarks or []
        if not faces:
            return NoFace()
        scale = np.array([width, height, width], dtype=np.float32)
        meshes = [
            np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32) * scale for face in faces
        ]
        boxes = [Box(*m[:, :2].min(axis=0), *m[:, :2].max(axis=0)) for m in meshes]
        largest = max(range(len(meshes)), key=lambda i: boxes[i].area)
        landmarks, box = meshes[largest], boxes[largest]
        inside = (
            (landmarks[:, 0] >= 0) & (landmarks[:, 0] < width) & (landmarks[:, 1] >= 0) & (landmarks[:, 1] < height)
        )
        rotation, interocular = face_frame(landmarks)
        return FaceTrack(
            landmarks=landmarks,
            rotation=rotation,
            pose=head_pose(rotation),
            box=Box(*(float(v) for v in (box.x0, box.y0, box.x1, box.y1))),
            confidence=float(inside.mean()),
            num_faces=len(meshes),
            interocular=interocular,
        )

    def close(self) -> None:
        """Free MediaPipe's graph."""
        self._mesh.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tracked_frames(path: str | Path, max_frames: int | None = None) -> Iterator[tuple[Frame, FaceTrack]]:
    """Each frame of the video file ``path`` that shows a face, with its track, among its first
    ``max_frames`` frames (None: all); the file and the tracker are closed when it ends."""
    source = FileSource(str(path))
    try:
        with FaceTracker(max_faces=1) as tracker:
            for frame in source:
                if max_frames is not None and frame.index >= max_frames:
                    break
                track = tracker.track(frame.image)
                if isinstance(track, FaceTrack):
                    yield frame, track
    finally:
        source.close()
