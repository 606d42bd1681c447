"""The editor stage: expression control -> engine on an aligned crop -> compositor.

``ExpressionEditor.edit`` is what ``Pipeline`` calls for every frame with a face.
"""

from __future__ import annotations

import time

import numpy as np

from .au import CONTROL_POINTS, FACE_OVAL, fold_free_fraction, mesh_triangles
from .compositing import align, composite, face_mask
from .backends import create_backend
from .expression import ExpressionController, ExpressionPlan, Schedule
from .types import FaceTrack, Frame

_RING_SCALE = 1.3  # a pinned ring this far out from the face centre keeps the warp inside the face
_MOTION_FULL_PX = 0.3  # flow at which the edit fully replaces the original pixel


class ExpressionEditor:
    """Changes the expression of the tracked face in each frame (see ``pipeline.FrameEditor``)."""

    def __init__(self, controller: ExpressionController | None = None, engine: str = "warp", crop_size: int = 256,
                 schedule: Schedule | None = None, backend: str = "torch", device: str = "cpu", fp16: bool = False):
        self.controller = controller or ExpressionController()
        self.schedule = schedule
        self.crop_size = crop_size
        self.backend = create_backend(backend, engine, crop_size, device, fp16)
        self._schedule_origin: float | None = None  # the pts the schedule's 0 s is counted from
        self._triangles = mesh_triangles()
        self.last_plan: ExpressionPlan | None = None

    def edit(self, frame: Frame, track: FaceTrack, timings: dict[str, float]) -> np.ndarray:
        start = time.perf_counter()
        target = None
        if self.schedule is not None:
            if self._schedule_origin is None:
                self._schedule_origin = float(frame.pts)
            target = self.schedule.target_at(float(frame.pts) - self._schedule_origin)
        plan = self.controller.plan(track, float(frame.pts), target)
        self.last_plan = plan
        timings["control"] = (time.perf_counter() - start) * 1e3
        if plan.is_identity:
            return frame.image
        start = time.perf_counter()
        alignment = align(track, self.crop_size)
        crop = alignment.cut(frame.image)
        source = alignment.points_to_crop(plan.source)
        target = alignment.points_to_crop(plan.target)
        target = source + fold_free_fraction(source, target, self._triangles) * (target - source)
        ring = self._pinned_ring(source)
        edited, motion = self.backend(
            crop.transpose(2, 0, 1)[None].astype(np.float32),
            np.concatenate([source[CONTROL_POINTS], ring])[None].astype(np.float32),
            np.concatenate([target[CONTROL_POINTS], ring])[None].astype(np.float32),
        )
        edited_crop = np.clip(np.rint(edited[0].transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        motion_px = motion[0, 0]
        timings["engine"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        weight = face_mask(source, self.crop_size) * np.clip(motion_px / _MOTION_FULL_PX, 0.0, 1.0)
        out = composite(frame.image, edited_crop, weight, alignment)
        timings["composite"] = (time.perf_counter() - start) * 1e3
        return out

    def set_schedule(self, schedule: Schedule | None) -> None:
        """Start ``schedule`` from the next frame on (None: back to the controller's request)."""
        self.schedule, self._schedule_origin = schedule, None

    @staticmethod
    def _pinned_ring(crop_points: np.ndarray) -> np.ndarray:
        oval = crop_points[list(FACE_OVAL)]
        centre = oval.mean(axis=0)
        return centre + _RING_SCALE * (oval - centre)
