"""Helpers several test files share: one still edited at full strength, and how high the mouth corners sit."""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np

from livemotion.engines.backends import EngineBackend, create_backend
from livemotion.expression.controller import ExpressionController, ExpressionPlan, ExpressionRequest
from livemotion.face.mesh import EYE_CORNERS, LOWER_INNER_LIP, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, UPPER_INNER_LIP, both
from livemotion.render.editor import ExpressionEditor
from livemotion.types import FaceTrack, Frame


@functools.cache
def torch_engine() -> EngineBackend:
    return create_backend("torch")


def edit_still(image: np.ndarray, track: FaceTrack, request: ExpressionRequest,
               backend: EngineBackend | None = None) -> tuple[np.ndarray, ExpressionPlan]:
    """``image`` edited as ``request`` asks, at full strength at once (a still has no earlier frame
    to fade in or ease from): (the output image, the plan the editor made)."""
    controller = ExpressionController(request, fade_step=1.0, transition=0.0)
    editor = ExpressionEditor(backend or torch_engine(), controller)
    output = editor.edit(Frame(image, 0, Fraction(0), 0.0), track, {})
    assert editor.last_plan is not None
    return output, editor.last_plan


def corner_lift(track: FaceTrack, against: str = "lips") -> float:
    """How far the mouth corners sit above the middle of the lips (``against="lips"``) or below the
    eyes, negated (``"eyes"``: speech moves the lips, a smile the corners), in IODs."""
    lm = track.landmarks
    corners = lm[[MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER], 1].mean()
    if against == "eyes":
        reference = lm[list(both(EYE_CORNERS)), 1].mean()
    else:
        reference = 0.5 * (lm[UPPER_INNER_LIP, 1] + lm[LOWER_INNER_LIP, 1])
    return float((reference - corners) / track.interocular)
