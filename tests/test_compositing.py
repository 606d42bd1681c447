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


def redraw(image: np.ndarray, live: np.ndarray, lift: float) -> tuple[np.ndarray, np.ndarray]:
    """The warp alone and the warp with the eye redrawn."""
    map_x, map_y = lid_maps(lift)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR)
    out = warped.copy()
    _fill_eye(image, out, EyeChange(live, CENTRE, IRIS_RADIUS), (0, 0), map_x, map_y)
    return warped, out


def test_a_raised_upper_lid_uncovers_white_beside_a_round_iris():
    live = opening(upper=8.0, lower=10.0)  # the upper lid hides the iris's top 3 pixels
    warped, out = redraw(eye_image(live), live, lift=7.0)
    # above the iris, under where the warp put the lid (y 86 in the middle): the eye's white, where
    # the warp alone shows the iris dragged up with the lid
    above = out[87:89, 98:103].reshape(-1, 3).astype(int)
    assert (above.sum(axis=1) > 3 * 170).all() and (np.abs(above[:, 0] - above[:, 2]) < 15).all()
    assert (warped[87:89, 98:103].astype(int).sum(axis=2) < 3 * 50).all()
    # beside the iris, between the old lid and the new one: white too, not lashes or skin
    band = out[90:92, 77:86].reshape(-1, 3).astype(int)
    assert (band[:, 1] > 135).all() and (np.abs(band[:, 0] - band[:, 2]) < 15).all()
    # the iris keeps its place and shape: dark from its circle's top (y 89, hidden before) to the lower lid
    # (below the warped lid's lash line, y 86)
    dark = np.nonzero(out[87:115, 100].astype(int).sum(axis=1) < 3 * 90)[0] + 87
    assert abs(dark.min() - (CENTRE[1] - IRIS_RADIUS)) <= 1 and dark.max() >= CENTRE[1] + 9
    stretched = np.nonzero(warped[87:115, 100].astype(int).sum(axis=1) < 3 * 90)[0] + 87
    assert stretched.min() < dark.min() - 1  # the warp alone dragged the iris up with the lid
    # nothing outside the warped opening changed
    near = np.zeros((200, 200), np.uint8)
    cv2.fillPoly(near, [np.round(opening(15.0, 10.0)).astype(np.int32)], 1)
    near = cv2.dilate(near, np.ones((5, 5), np.uint8))  # the outline's anti-aliased edge
    assert np.array_equal(out[near == 0], warped[near == 0])


@pytest.mark.parametrize("live_upper, lift", [(0.5, 7.0), (8.0, -3.0)], ids=["blink", "narrowed"])
def test_a_blink_and_a_narrowed_eye_are_left_to_the_warp(live_upper, lift):
    """A blinking eye the edit widens must not open onto a white slit; lids the edit lowers are
    drawn by the warp, whose narrowed eye reads as the emotion (sad, happy, angry)."""
    live = opening(upper=live_upper, lower=0.5 if live_upper < 1 else 10.0)
    warped, out = redraw(eye_image(live), live, lift)
    assert np.array_equal(out, warped)


def test_an_eye_that_shows_no_white_is_left_to_the_warp():
    """A narrow eye whose opening shows lashes and iris only has no white to copy: filling what a
    raised lid uncovers with its dark pixels would draw a band, so nothing is redrawn."""
    live = opening(upper=8.0, lower=10.0)
    warped, out = redraw(eye_image(live, white=(90, 70, 65)), live, lift=7.0)  # darker than the skin
    assert np.array_equal(out, warped)
