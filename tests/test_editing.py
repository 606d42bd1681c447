"""Emotion editing: AU fields move the right landmarks, the edit keeps what it must keep."""

import dataclasses
import functools
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch

from livemotion.engines import create_engine
from livemotion.engines.backends import create_backend
from livemotion.engines.warp import backward_flow
from livemotion.errors import InvalidRequest
from livemotion.expression import au
from livemotion.expression.controller import ExpressionController, ExpressionRequest, canonical_landmarks
from livemotion.face import mesh
from livemotion.face.mesh import LOWER_INNER_LIP, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, UPPER_INNER_LIP
from livemotion.render.alignment import align
from livemotion.render.editor import ExpressionEditor
from livemotion.types import FaceTrack, Frame


@pytest.fixture(scope="module")
def astronaut_track(astronaut):
    from livemotion.face.tracking import FaceTracker

    with FaceTracker(static_images=True) as tracker:
        return tracker.track(astronaut)


@functools.cache
def backend():
    return create_backend("torch")


def edit(image, track, emotion=None, aus=None, intensity=1.0):
    request = ExpressionRequest(emotion or "neutral", intensity, aus or {}, active=True)
    editor = ExpressionEditor(backend(), ExpressionController(request, fade_step=1.0))  # a still: no fade-in
    return editor.edit(Frame(image, 0, Fraction(0), 0.0), track, {}), editor.last_plan


def unit_field(track, number, side=None):
    fields = au.fields(canonical_landmarks(track))[au.AU_NUMBERS.index(number)]
    return fields.sum(axis=0) if side is None else fields[side]


# ---- the AU fields themselves (canonical frame: y grows towards the chin) -----------------------

def test_au12_lifts_and_widens_the_mouth_corners(astronaut_track):
    field = unit_field(astronaut_track, 12)
    assert field[MOUTH_RIGHT_CORNER, 1] < -0.1 and field[MOUTH_LEFT_CORNER, 1] < -0.1
    assert field[MOUTH_RIGHT_CORNER, 0] < 0 < field[MOUTH_LEFT_CORNER, 0]


def test_au15_lowers_the_mouth_corners(astronaut_track):
    field = unit_field(astronaut_track, 15)
    assert field[MOUTH_RIGHT_CORNER, 1] > 0.1 and field[MOUTH_LEFT_CORNER, 1] > 0.1


def test_au4_lowers_and_draws_together_the_inner_brows(astronaut_track):
    field = unit_field(astronaut_track, 4)
    right, left = mesh.INNER_BROW[0][1], mesh.INNER_BROW[1][1]
    assert field[right, 1] > 0.05 and field[left, 1] > 0.05
    assert field[right, 0] > 0 > field[left, 0]  # towards the midline


def test_au1_raises_the_inner_brows_without_dragging_the_eyelids(astronaut_track):
    field = unit_field(astronaut_track, 1)
    assert field[mesh.INNER_BROW[0][1], 1] < -0.1 and field[mesh.INNER_BROW[1][1], 1] < -0.1
    assert np.abs(field[list(mesh.EYES)]).max() == 0.0


def test_unilateral_au_moves_one_side_only(astronaut_track):
    right_only = unit_field(astronaut_track, 12, side=0)
    assert right_only[MOUTH_RIGHT_CORNER, 1] < -0.1
    assert abs(right_only[MOUTH_LEFT_CORNER, 1]) < 0.01


@pytest.mark.parametrize("emotion", au.EMOTIONS)
def test_every_preset_leaves_the_mouth_opening_alone(astronaut_track, emotion):
    _, plan = edit(np.zeros((512, 512, 3), np.uint8), astronaut_track, emotion)
    for upper, lower in mesh.INNER_LIP_PAIRS:
        before = plan.source[lower] - plan.source[upper]
        after = plan.target[lower] - plan.target[upper]
        np.testing.assert_allclose(after, before, atol=1e-9)
    assert not plan.change[[au.AU_NUMBERS.index(n) for n in au.SPEECH_AUS]].any()


# ---- the warp and the composite ------------------------------------------------------------------

def test_zero_change_is_bit_exact():
    engine = create_engine("warp", size=256)
    crop = torch.rand(1, 3, 256, 256) * 255
    points = torch.rand(1, 100, 2) * 255
    with torch.inference_mode():
        out, motion = engine(crop, points, points.clone())
    assert torch.equal(out, crop) and motion.max() == 0


def test_asking_for_the_current_expression_gives_the_input_back(astronaut, astronaut_track):
    class Current(ExpressionController):
        def wanted(self, current, target):
            return current

    editor = ExpressionEditor(backend(), Current())
    out = editor.edit(Frame(astronaut, 0, Fraction(0), 0.0), astronaut_track, {})
    assert np.array_equal(out, astronaut)


def test_pixels_outside_the_face_are_untouched(astronaut, astronaut_track):
    out, _ = edit(astronaut, astronaut_track, "surprised")
    assert not np.array_equal(out, astronaut)
    face = np.zeros(astronaut.shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(astronaut_track.landmarks[list(mesh.FACE_OVAL), :2]).astype(np.int32))
    cv2.fillConvexPoly(face, hull, 1)
    reach = int(0.6 * astronaut_track.interocular)
    near_face = cv2.dilate(face, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
    assert np.array_equal(out[~near_face], astronaut[~near_face])
    changed = np.any(out != astronaut, axis=2)
    assert changed[face.astype(bool)].mean() > 0.2  # and the face itself did change


@pytest.mark.parametrize("emotion", [e for e in au.EMOTIONS if e != "neutral"])
def test_the_dense_warp_never_folds(astronaut_track, emotion):
    _, plan = edit(np.zeros((512, 512, 3), np.uint8), astronaut_track, emotion)
    alignment = align(astronaut_track, 256)
    source, target = alignment.points_to_crop(plan.source), alignment.points_to_crop(plan.target)
    ring = ExpressionEditor._pinned_ring(source)
    flow = backward_flow(torch.tensor(np.concatenate([source, ring]))[None].float(),
                         torch.tensor(np.concatenate([target, ring]))[None].float(), 256, 25, 0.035 * 256)[0].numpy()
    dudy, dudx = np.gradient(flow[0])
    dvdy, dvdx = np.gradient(flow[1])
    determinant = (1 + dudx) * (1 + dvdy) - dudy * dvdx
    assert determinant.min() > 0.2


# ---- end to end, judged by re-tracking the output ------------------------------------------------

def corner_lift(track: FaceTrack) -> float:
    """How far the mouth corners sit above the middle of the lips, in IODs."""
    lm = track.landmarks
    middle = 0.5 * (lm[UPPER_INNER_LIP, 1] + lm[LOWER_INNER_LIP, 1])
    return float((middle - lm[[MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER], 1].mean()) / track.interocular)


def test_neutral_on_a_smiling_face_lowers_the_corner_lift(still_tracker, astronaut, astronaut_track):
    out, plan = edit(astronaut, astronaut_track, "neutral")
    assert plan.current[au.AU_NUMBERS.index(12)].min() > 0.5  # the smile was seen
    assert corner_lift(still_tracker.track(out)) < corner_lift(astronaut_track) - 0.03


def test_sad_lowers_the_corners_and_raises_the_inner_brows(still_tracker, astronaut, astronaut_track):
    out, _ = edit(astronaut, astronaut_track, "sad")
    after = still_tracker.track(out)
    assert corner_lift(after) < corner_lift(astronaut_track) - 0.05
    brows = list(mesh.INNER_BROW[0] + mesh.INNER_BROW[1])
    lift = (astronaut_track.landmarks[brows, 1] - after.landmarks[brows, 1]).mean() / astronaut_track.interocular
    assert lift > 0.03


def test_speech_survives_an_emotion_on_a_talking_clip(tracker):
    from livemotion.io.sources import DemoSource
    from livemotion.runtime.pipeline import Pipeline

    pipeline = Pipeline(tracker, ExpressionEditor(backend(), ExpressionController(ExpressionRequest("happy", active=True))))
    from livemotion.face.tracking import FaceTracker

    gaps_in, gaps_out = [], []
    with FaceTracker() as judge:
        for frame in DemoSource(frames=36):
            out = pipeline.process(frame).output.image
            for image, gaps in ((frame.image, gaps_in), (out, gaps_out)):
                t = judge.track(image)
                gaps.append((t.landmarks[LOWER_INNER_LIP, 1] - t.landmarks[UPPER_INNER_LIP, 1]) / t.interocular)
    assert np.corrcoef(gaps_in, gaps_out)[0, 1] > 0.95
    assert np.abs(np.asarray(gaps_in) - np.asarray(gaps_out)).mean() < 0.03


def test_request_validation():
    with pytest.raises(InvalidRequest):
        ExpressionRequest("bored", active=True)
    for key in ("99", "X12", "12R", ""):
        with pytest.raises(InvalidRequest):
            au.au_vector({key: 0.5})
    for speech in ("25", "R26"):  # lips part and jaw drop carry speech: never requested
        with pytest.raises(InvalidRequest):
            ExpressionRequest("happy", aus={speech: 0.5})
    request = ExpressionRequest("happy", 1.0, {"12": 0.2}, active=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.intensity = 0.5  # type: ignore[misc]  # requests are replaced whole, never changed in place
    with pytest.raises(TypeError):
        request.aus["12"] = 0.9  # type: ignore[index]
    explicit = ExpressionRequest("happy", 1.0, {"12": 0.2, "R6": 0.0}, active=True).target()
    row12, row6 = au.AU_NUMBERS.index(12), au.AU_NUMBERS.index(6)
    assert explicit[row12].tolist() == [0.2, 0.2] and explicit[row6].tolist() == [0.0, 0.8]
