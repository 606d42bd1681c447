"""Per-region mixing: a region kept live keeps its bytes; the others show the edit."""


import numpy as np
import pytest
from helpers import edit_still

from livemotion.errors import InvalidRequest
from livemotion.expression.controller import ExpressionController, ExpressionRequest
from livemotion.expression.library import load_library
from livemotion.expression.regions import LANDMARK_REGIONS, REGIONS, landmark_region
from livemotion.face import mesh


def edited(image, track, emotion, live=(), **sources):
    regions = {**{region: "live" for region in live}, **sources}
    return edit_still(image, track, ExpressionRequest(emotion, 1.0, regions=regions, active=True))


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
    assert whole.lip_gap_change < -0.01 and kept.lip_gap_change == 0.0


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
        ExpressionRequest("happy", regions={"nose": "live"})


def test_each_region_can_show_its_own_emotion(astronaut, astronaut_track):
    """Brows from angry, the rest from happy: the brows move as angry moves them, the mouth corners
    as happy moves them."""
    _, angry = edited(astronaut, astronaut_track, "angry")
    _, happy = edited(astronaut, astronaut_track, "happy")
    _, mixed = edited(astronaut, astronaut_track, "happy", brows="angry")
    brows = list(mesh.both(mesh.INNER_BROW) + mesh.both(mesh.OUTER_BROW))
    corners = [mesh.MOUTH_RIGHT_CORNER, mesh.MOUTH_LEFT_CORNER]
    assert np.abs(angry.target - happy.target)[brows].max() > 1.0  # the two emotions differ there
    assert np.abs(mixed.target - angry.target)[brows].max() < 0.3
    assert np.abs(mixed.target - happy.target)[corners].max() < 0.3
    _, half = edited(astronaut, astronaut_track, "happy", brows="angry@0.5")
    assert 0.3 < np.abs(half.target - half.source)[brows].max() / np.abs(mixed.target - mixed.source)[brows].max() < 0.7


def test_a_manual_mouth_opening_opens_by_the_value_asked(astronaut, astronaut_track):
    request = ExpressionRequest(regions={"mouth_opening": "manual"}, opening=0.1, active=True)
    plan = ExpressionController(request, fade_step=1.0, transition=0.0).plan(astronaut_track, 0.0)
    assert plan.lip_gap_change == pytest.approx(0.1)
    with pytest.raises(InvalidRequest, match="opening must be between -0.3 and 0.3"):
        ExpressionRequest(opening=0.4)


def test_switching_a_region_live_eases_out_instead_of_snapping(astronaut_track):
    """A change of region source unfolds over the transition, like a change of emotion."""
    controller = ExpressionController(ExpressionRequest("angry", active=True), fade_step=1.0, transition=0.5)
    brows = list(mesh.both(mesh.INNER_BROW))
    full = np.abs(controller.plan(astronaut_track, 0.0).target - astronaut_track.landmarks[:, :2])[brows].max()
    controller.request = ExpressionRequest("angry", regions={"brows": "live"}, active=True)
    controller.plan(astronaut_track, 0.25)  # the change starts here
    halfway = controller.plan(astronaut_track, 0.5)
    after = controller.plan(astronaut_track, 0.8)
    assert 0.1 * full < np.abs(halfway.target - halfway.source)[brows].max() < 0.9 * full
    assert np.abs(after.target - after.source)[brows].max() == 0.0
