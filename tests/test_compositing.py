"""The compositor's eye redraw: a widened eye shows white above a round iris; blinks and narrowed eyes are the warp's."""

import cv2
import numpy as np
import pytest

from livemotion.face.mesh import UPPER_LID
from livemotion.render.compositing import EyeChange, _fill_eye

SKIN, WHITE, IRIS = (170, 120, 100), (235, 232, 228), (60, 40, 30)
CENTRE, HALF_WIDTH, IRIS_RADIUS = np.array([100.0, 100.0]), 40.0, 11.0
LID_POINTS = len(UPPER_LID[0])


def opening(upper: float, lower: float) -> np.ndarray:
    """(16, 2) an eye opening in ``EYE_OPENINGS`` order: outer corner, upper lid, inner corner,
    lower lid back; the lids ``upper`` and ``lower`` pixels from the corners' line at the middle."""
    xs = CENTRE[0] + HALF_WIDTH * np.linspace(-1, 1, LID_POINTS + 2)[1:-1]
    bulge = np.sqrt(1 - ((xs - CENTRE[0]) / HALF_WIDTH) ** 2)
    upper_lid = np.stack([xs, CENTRE[1] - upper * bulge], axis=1)
    lower_lid = np.stack([xs, CENTRE[1] + lower * bulge], axis=1)
    corners = CENTRE + np.array([[-HALF_WIDTH, 0.0], [HALF_WIDTH, 0.0]])
    return np.vstack([corners[:1], upper_lid, corners[1:], lower_lid[::-1]])


def eye_image(polygon: np.ndarray, white: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Skin with an eye: white, an iris partly under the upper lid, a dark lash line along it."""
    image = np.full((200, 200, 3), SKIN, np.uint8)
    inside = np.zeros((200, 200), np.uint8)
    cv2.fillPoly(inside, [np.round(polygon).astype(np.int32)], 1)
    eye = np.full_like(image, white)
    cv2.circle(eye, (int(CENTRE[0]), int(CENTRE[1])), int(IRIS_RADIUS), IRIS, -1)
    image[inside > 0] = eye[inside > 0]
    cv2.polylines(image, [np.round(polygon[: LID_POINTS + 2]).astype(np.int32)], False, (40, 30, 30), 2)
    return image


def lid_maps(lift: float) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps of a warp that moves the upper lid up by about ``lift`` pixels at its middle
    (down where negative), fading along the lid to the corners and away from it: the iris under it
    is stretched with it, as a smooth warp does."""
    ys, xs = np.mgrid[0:200, 0:200].astype(np.float32)
    along = np.clip(1 - ((xs - CENTRE[0]) / HALF_WIDTH) ** 2, 0, None)
    across = np.exp(-(((ys - 90) / 8) ** 2))
    return xs, ys + lift * along * across


def redraw(image: np.ndarray, live: np.ndarray, lift: float, asked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The warp alone and the warp with the eye redrawn (``asked``: the opening the edit asks for)."""
    map_x, map_y = lid_maps(lift)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR)
    out = warped.copy()
    _fill_eye(image, out, EyeChange(live, asked, CENTRE, IRIS_RADIUS), (0, 0), map_x, map_y)
    return warped, out


def test_a_raised_upper_lid_uncovers_white_beside_a_round_iris():
    live = opening(upper=8.0, lower=10.0)  # the upper lid hides the iris's top 3 pixels
    # the edit asks the lid up by 7 pixels in the middle (to y 85); the warp delivers about 3
    warped, out = redraw(eye_image(live), live, lift=4.0, asked=opening(upper=15.0, lower=10.0))
    # the lid with its lashes is where the edit asked, not where the warp left it (y 88-89)
    assert out[80:86, 100].astype(int).sum(axis=1).min() < 3 * 50
    assert warped[80:86, 100].astype(int).sum(axis=1).min() > 3 * 100
    # above the iris and beside it, under the lifted lid: the eye's white (bright, unsaturated),
    # where the warp alone shows lid skin (reddish) and lashes (dark)
    above = out[85:88, 98:103].reshape(-1, 3).astype(int)
    assert (above.sum(axis=1) > 3 * 170).all() and (np.abs(above[:, 0] - above[:, 2]) < 15).all()
    beside = out[89:92, 77:86].reshape(-1, 3).astype(int)
    assert (beside[:, 1] > 135).all() and (np.abs(beside[:, 0] - beside[:, 2]) < 15).all()
    assert (np.abs(warped[85:88, 98:103].astype(int)[..., 0] - warped[85:88, 98:103][..., 2]) > 40).any()
    # the iris keeps its place and shape: dark from its circle's top (y 89, under the lid before)
    # down to the lower lid
    dark = np.nonzero(out[85:115, 100].astype(int).sum(axis=1) < 3 * 90)[0] + 85
    assert abs(dark.min() - (CENTRE[1] - IRIS_RADIUS)) <= 1 and dark.max() >= CENTRE[1] + 9
    # nothing changed beyond the lifted lid's fold of skin and the opening
    reach = np.zeros((200, 200), np.uint8)
    cv2.fillPoly(reach, [np.round(opening(15.0 + IRIS_RADIUS + 2, 10.0)).astype(np.int32)], 1)
    reach = cv2.dilate(reach, np.ones((5, 5), np.uint8))  # the outline's anti-aliased edge
    assert np.array_equal(out[reach == 0], warped[reach == 0])


@pytest.mark.parametrize("live_upper, lift, asked_upper", [(0.5, 4.0, 7.5), (8.0, -3.0, 5.0)], ids=["blink", "narrowed"])
def test_a_blink_and_a_narrowed_eye_are_left_to_the_warp(live_upper, lift, asked_upper):
    """A blinking eye the edit widens must not open onto a white slit; lids the edit lowers are
    drawn by the warp, whose narrowed eye reads as the emotion (sad, happy, angry)."""
    lower = 0.5 if live_upper < 1 else 10.0
    live = opening(upper=live_upper, lower=lower)
    warped, out = redraw(eye_image(live), live, lift, asked=opening(upper=asked_upper, lower=lower))
    assert np.array_equal(out, warped)


def test_an_eye_that_shows_no_white_is_left_to_the_warp():
    """A narrow eye whose opening shows lashes and iris only has no white to copy: filling what a
    raised lid uncovers with its dark pixels would draw a band, so nothing is redrawn."""
    live = opening(upper=8.0, lower=10.0)
    warped, out = redraw(eye_image(live, white=(90, 70, 65)), live, lift=4.0,  # the white darker than the skin
                         asked=opening(upper=15.0, lower=10.0))
    assert np.array_equal(out, warped)
