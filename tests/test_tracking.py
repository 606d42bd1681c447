import cv2
import numpy as np
import pytest

from livemotion.face.mesh import NUM_LANDMARKS
from livemotion.types import FaceTrack, NoFace

# Measured once on skimage.data.astronaut() (512x512) with this tracker, in pixels.
ASTRONAUT_POINTS = {
    33: (195.2, 100.9),  # right eye, outer corner
    133: (213.3, 103.7),  # right eye, inner corner
    362: (237.0, 104.9),  # left eye, inner corner
    263: (255.8, 104.3),  # left eye, outer corner
    61: (201.8, 139.2),  # mouth, right corner
    291: (245.0, 141.0),  # mouth, left corner
    1: (223.4, 130.0),  # nose tip
}


def test_finds_every_landmark_at_the_measured_positions(tracker, astronaut):
    track = tracker.track(astronaut)
    assert isinstance(track, FaceTrack)
    assert track.landmarks.shape == (NUM_LANDMARKS, 3)
    for index, expected in ASTRONAUT_POINTS.items():
        assert np.linalg.norm(track.landmarks[index, :2] - expected) < 3.0, index
    assert track.num_faces == 1 and track.confidence == 1.0
    assert 35 < track.interocular < 50
    box = track.box
    assert box.x0 < 195 and box.x1 > 256 and box.y0 < 100 and box.y1 > 141


def test_head_pose_follows_an_in_plane_rotation(still_tracker, astronaut):
    upright = still_tracker.track(astronaut).pose
    clockwise = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((224, 130), -15, 1.0), (512, 512))
    tilted = still_tracker.track(clockwise).pose
    assert tilted.roll - upright.roll == pytest.approx(15, abs=2)
    assert abs(tilted.yaw - upright.yaw) < 5


def test_head_pose_sees_a_turn(still_tracker, astronaut):
    # Squeezing the image's right half foreshortens that side, as when the nose turns to image right.
    h, w = astronaut.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    centre = 224.0
    map_x = np.where(xs < centre, xs, centre + (xs - centre) * 1.5).astype(np.float32)
    squeezed = cv2.remap(astronaut, np.tile(map_x, (h, 1)), np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w)),
                         cv2.INTER_LINEAR)
    assert still_tracker.track(squeezed).pose.yaw > still_tracker.track(astronaut).pose.yaw + 5


def test_no_face_is_explicit(tracker):
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert isinstance(tracker.track(noise), NoFace)
    assert isinstance(tracker.track(np.zeros((480, 640, 3), np.uint8)), NoFace)


def test_the_largest_of_two_faces_is_tracked(still_tracker, astronaut):
    face = astronaut[40:220, 150:300]
    small = cv2.resize(face, None, fx=0.8, fy=0.8)
    canvas = np.full((300, 400, 3), 200, np.uint8)
    canvas[20:200, 20:170] = face
    canvas[100:100 + small.shape[0], 220:220 + small.shape[1]] = small
    track = still_tracker.track(canvas)
    assert isinstance(track, FaceTrack)
    assert track.num_faces == 2
    assert track.box.x1 < 200  # the big face on the left, not the small one on the right


def test_a_face_leaving_the_frame_lowers_the_confidence(still_tracker, astronaut):
    shifted = np.zeros_like(astronaut)
    shifted[:, : 512 - 215] = astronaut[:, 215:]  # face centre now ~10 px from the left edge
    track = still_tracker.track(shifted)
    if isinstance(track, FaceTrack):
        assert track.confidence < 0.8
