"""The editor stage: expression control -> engine on an aligned crop -> compositor.

``ExpressionEditor.edit`` is what ``runtime.pipeline.Pipeline`` calls for every frame with a face.
"""

from __future__ import annotations

import time

import numpy as np

from ..engines.backends import EngineBackend
from ..expression.au import fold_free_fraction
from ..expression.controller import ExpressionController, ExpressionPlan, ExpressionRequest, Schedule
from ..face.mesh import CONTROL_POINTS, FACE_OVAL, triangles
from ..types import FaceTrack, Frame
from .alignment import align
from .compositing import composite, face_mask

_RING_SCALE = 1.3  # a pinned ring this far out from the face centre keeps the warp inside the face
_MOTION_FULL_PX = 0.3  # flow at which the edit fully replaces the original pixel


class ExpressionEditor:
    """Changes the expression of the tracked face in each frame (see ``runtime.pipeline.FrameEditor``).

    ``backend`` runs the engine; one backend instance can serve the editors of many streams.
    """

    def __init__(self, backend: EngineBackend, controller: ExpressionController | None = None,
                 schedule: Schedule | None = None):
        self.backend = backend
        self.controller = controller or ExpressionController()
        self.schedule = schedule
        self.crop_size = backend.size
        self._schedule_origin: float | None = None  # the pts the schedule's 0 s is counted from
        self._triangles = triangles()
        self.last_plan: ExpressionPlan | None = None

    def edit(self, frame: Frame, track: FaceTrack, timings: dict[str, float]) -> np.ndarray:
        start = time.perf_counter()
        target = None
        schedule = self.schedule  # read once: the control API may replace it meanwhile
        if schedule is not None:
            if self._schedule_origin is None:
                self._schedule_origin = float(frame.pts)
            target = schedule.target_at(float(frame.pts) - self._schedule_origin)
        plan = self.controller.plan(track, float(frame.pts), target)
        self.last_plan = plan
        timings["control"] = (time.perf_counter() - start) * 1e3
        if plan.is_identity:
            return frame.image
        start = time.perf_counter()
        alignment = align(track, self.crop_size)
        crop = alignment.cut(frame.image)
        source = alignment.points_to_crop(plan.source)
        target_points = alignment.points_to_crop(plan.target)
        target_points = source + fold_free_fraction(source, target_points, self._triangles) * (target_points - source)
        ring = self._pinned_ring(source)
        edited, motion = self.backend(
            crop.transpose(2, 0, 1)[None].astype(np.float32),
            np.concatenate([source[CONTROL_POINTS], ring])[None].astype(np.float32),
            np.concatenate([target_points[CONTROL_POINTS], ring])[None].astype(np.float32),
        )
        edited_crop = np.clip(np.rint(edited[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        motion_px = motion[0, 0]
        timings["engine"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        weight = face_mask(source, self.crop_size) * np.clip(motion_px / _MOTION_FULL_PX, 0.0, 1.0)
        out = composite(frame.image, edited_crop, weight, alignment)
        timings["composite"] = (time.perf_counter() - start) * 1e3
        return out

    # ---- the control interface (runtime.pipeline.StreamControl) ---------------------------------
    def set_request(self, request: ExpressionRequest) -> None:
        """Edit towards ``request`` from the next frame on (replaced whole, never changed in place)."""
        self.controller.request = request

    def set_schedule(self, schedule: Schedule | None) -> None:
        """Start ``schedule`` from the next frame on (None: back to the controller's request)."""
        self._schedule_origin = None
        self.schedule = schedule

    def reset_neutral(self) -> None:
        """Forget the learned neutral face and learn it anew."""
        self.controller.baseline.reset()

    @staticmethod
    def _pinned_ring(crop_points: np.ndarray) -> np.ndarray:
        oval = crop_points[list(FACE_OVAL)]
        centre = oval.mean(axis=0)
        return centre + _RING_SCALE * (oval - centre)
