"""Per-region mixing: a region kept live keeps its bytes; the others show the edit."""

from fractions import Fraction

import numpy as np
import pytest

from livemotion.engines.backends import create_backend
from livemotion.errors import InvalidRequest
from livemotion.expression.controller import ExpressionController, ExpressionRequest
from livemotion.expression.library import load_library
from livemotion.expression.regions import LANDMARK_REGIONS, REGIONS, landmark_region
from livemotion.face import mesh
from livemotion.render.editor import ExpressionEditor
from livemotion.types import Frame


@pytest.fixture(scope="module")
def astronaut_track(astronaut, still_tracker):
    return still_tracker.track(astronaut)


def edited(image, track, emotion, live):
    request = ExpressionRequest(emotion, 1.0, live=frozenset(live), active=True)
    editor = ExpressionEditor(create_backend("torch"), ExpressionController(request, fade_step=1.0, transition=0.0))
    return editor.edit(Frame(image, 0, Fraction(0), 0.0), track, {}), editor.last_plan


def box(track, ids, pad=3):
    points = track.landmarks[list(ids), :2]
    (x0, y0), (x1, y1) = np.floor(points.min(0)).astype(int) - pad, np.ceil(points.max(0)).astype(int) + pad
    return slice(y0, y1), slice(x0, x1)


def test_the_mouth_kept_live_keeps_its_bytes_while_the_brows_frown(astronaut, astronaut_track):
    out, _ = edited(astronaut, astronaut_track, "angry", {"mouth_corners", "mouth_opening", "cheeks"})
    mouth, brows = box(astronaut_track, mesh.OUTER_LIP_CONTOUR), box(astronaut_track, mesh.both(mesh.INNER_BROW))
    assert np.array_equal(out[mouth], astronaut[mouth])
    assert np.abs(out[brows].astype(int) - astronaut[brows]).max() > 20  # the brows did change


def test_the_brows_kept_live_do_not_move(astronaut, astronaut_track):
    _, whole = edited(astronaut, astronaut_track, "angry", set())
    _, mixed = edited(astronaut, astronaut_track, "angry", {"brows"})
    brows = list(mesh.both(mesh.INNER_BROW) + mesh.both(mesh.OUTER_BROW))
    corners = [mesh.MOUTH_RIGHT_CORNER, mesh.MOUTH_LEFT_CORNER]
    assert np.abs(whole.target - whole.source)[brows].max() > 1.0
    assert np.abs(mixed.target - mixed.source)[brows].max() == 0.0
    assert np.allclose(mixed.target[corners], whole.target[corners])  # the rest of the edit is unchanged


def test_keeping_the_mouth_opening_live_leaves_the_posture(astronaut, astronaut_track):
    _, whole = edited(astronaut, astronaut_track, "neutral", set())  # neutral closes the astronaut's grin
    _, kept = edited(astronaut, astronaut_track, "neutral", {"mouth_opening"})
    assert whole.opening < -0.01 and kept.opening == 0.0


def test_the_whole_face_kept_live_is_the_identity(astronaut, astronaut_track):
    out, plan = edited(astronaut, astronaut_track, "sad", set(REGIONS))
    assert plan.is_identity and np.array_equal(out, astronaut)


def test_every_landmark_belongs_to_the_nearest_feature():
    owner = landmark_region(load_library().template)
    assert owner[mesh.INNER_BROW[0][0]] == LANDMARK_REGIONS.index("brows")
    assert owner[mesh.UPPER_LID[1][3]] == LANDMARK_REGIONS.index("eyes")
    assert owner[mesh.MOUTH_LEFT_CORNER] == LANDMARK_REGIONS.index("mouth_corners")
    assert owner[mesh.IRISES[0]] == LANDMARK_REGIONS.index("eyes")
    assert set(owner) == set(range(len(LANDMARK_REGIONS)))


def test_an_unknown_region_is_named():
    with pytest.raises(InvalidRequest, match="unknown face region.*nose.*use brows"):
        ExpressionRequest("happy", live=frozenset({"nose"}))
