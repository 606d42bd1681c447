"""Head-pose edits: the face turns the way asked, facing the camera undoes a turn, limits are refused."""


import numpy as np
import pytest
from helpers import edit_still

from livemotion.errors import InvalidRequest
from livemotion.expression.controller import ExpressionRequest
from livemotion.expression.pose import PoseEdit, axis_rotation, turn_rotation
from livemotion.expression.regions import EXPRESSION_REGIONS
from livemotion.types import FaceTrack


def turned(image, track, pose):
    """The image with only the head pose edited (the live expression kept)."""
    request = ExpressionRequest(pose=pose, regions=dict.fromkeys(EXPRESSION_REGIONS, "live"), active=True)
    return edit_still(image, track, request)[0]


@pytest.mark.parametrize("axis, degrees", [("yaw", 12.0), ("yaw", -12.0), ("pitch", 10.0), ("pitch", -10.0), ("roll", 15.0)])
def test_the_face_turns_the_way_asked(astronaut, astronaut_track, still_tracker, axis, degrees):
    out = turned(astronaut, astronaut_track, PoseEdit(**{axis: degrees}))
    after = still_tracker.track(out)
    assert isinstance(after, FaceTrack)
    moved = getattr(after.pose, axis) - getattr(astronaut_track.pose, axis)
    assert np.sign(moved) == np.sign(degrees) and abs(moved) > 0.4 * abs(degrees), (axis, degrees, moved)
    others = [getattr(after.pose, a) - getattr(astronaut_track.pose, a) for a in ("yaw", "pitch", "roll") if a != axis]
    assert max(abs(o) for o in others) < max(5.0, 0.5 * abs(moved))  # one axis turns, not all of them


def test_facing_the_camera_undoes_a_turn(astronaut, astronaut_track, still_tracker):
    turned_away = turned(astronaut, astronaut_track, PoseEdit(yaw=15.0))
    away = still_tracker.track(turned_away)
    assert away.pose.yaw - astronaut_track.pose.yaw > 6.0
    back = still_tracker.track(turned(turned_away, away, PoseEdit(face_camera=1.0)))
    assert abs(back.pose.yaw) < 0.6 * abs(away.pose.yaw)


def test_a_still_pose_request_gives_the_frame_back_bit_exact(astronaut, astronaut_track):
    assert np.array_equal(turned(astronaut, astronaut_track, PoseEdit()), astronaut)


def test_the_turn_follows_the_pose_signs():
    frontal = np.eye(3)  # face right = image right, face down = image down, backward = into the screen
    nose = np.array([0.0, 0.0, -1.0])
    assert (turn_rotation(frontal, np.array([10.0, 0, 0, 0])) @ nose)[0] > 0  # yaw > 0: nose to image right
    assert (turn_rotation(frontal, np.array([0, 10.0, 0, 0])) @ nose)[1] < 0  # pitch > 0: nose up
    assert (turn_rotation(frontal, np.array([0, 0, 10.0, 0])) @ np.array([1.0, 0, 0]))[1] > 0  # roll > 0: clockwise
    tilted = axis_rotation(np.array([0.0, 1.0, 0.0]), 20.0)
    assert np.allclose(turn_rotation(tilted, np.array([0, 0, 0, 1.0])) @ -tilted[:, 2], nose)  # face_camera=1 faces it


@pytest.mark.parametrize("pose, words", [(dict(yaw=30.0), "yaw must be between -20 and 20"),
                                         (dict(pitch=float("nan")), "pitch must be"),
                                         (dict(roll=200.0), "roll must be"), (dict(face_camera=1.5), "face_camera")])
def test_turns_beyond_the_limits_are_refused(pose, words):
    with pytest.raises(InvalidRequest, match=words):
        PoseEdit(**pose)
