"""Photo to clip: a still face animated neutral -> onset -> apex (-> offset), with blinks and head drift."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from livemotion.cli import main
from livemotion.errors import InvalidRequest
from livemotion.face.mesh import EYE_CORNERS
from livemotion.runtime.animate import (
    HOLD_NEUTRAL,
    ONSET,
    animate_photo,
    blink,
    head_drift,
    intensity_curve,
    read_photo,
)
from livemotion.types import FaceTrack


def test_the_intensity_ramp_is_monotone_to_the_apex_and_back_with_offset():
    times = np.linspace(0.0, 2.0, 201)
    rise = [intensity_curve(t, 2.0) for t in times]
    assert rise[0] == 0.0 and rise[-1] == 1.0 and np.all(np.diff(rise) >= 0)
    apex = int((HOLD_NEUTRAL + ONSET) * 200) + 1
    back = [intensity_curve(t, 2.0, offset=True) for t in times]
    assert np.all(np.diff(back[:apex]) >= 0) and back[apex] == 1.0 and back[-1] == pytest.approx(0.0, abs=1e-6)
    assert max(blink(t) for t in np.linspace(0, 3, 301)) > 0.9  # at least one full blink in 3 s
    assert all(abs(head_drift(t)[0]) < 2.0 for t in times)  # slight: under 2 degrees


def test_an_animated_photo_moves_from_neutral_to_the_emotion(astronaut, still_tracker):
    frames = list(animate_photo(astronaut, "surprised", seconds=1.0, fps=15.0))
    strengths = [s for _, s in frames]
    apex = int(np.argmax(strengths))
    assert strengths[0] == 0.0 and np.all(np.diff(strengths[: apex + 1]) >= 0) and strengths[apex] == 1.0

    def brow_height(image):  # brows above the eye corners (which surprise leaves), in IODs
        track = still_tracker.track(image)
        assert isinstance(track, FaceTrack)
        lm = track.landmarks
        return (lm[[*EYE_CORNERS[0], *EYE_CORNERS[1]], 1].mean() - lm[[105, 334], 1].mean()) / track.interocular

    assert brow_height(frames[-1][0].image) > brow_height(frames[0][0].image) + 0.02  # ~0.04 IOD on this face
    moved = np.abs(frames[0][0].image.astype(int) - astronaut).mean()
    assert moved > 0.5  # the head drifts: even the first frame is not the still


def test_the_animate_command_writes_a_clip_and_refuses_bad_input(tmp_path, astronaut, capsys):
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    out = tmp_path / "clip.mp4"
    args = ["animate", str(photo), "--emotion", "happy", "--seconds", "0.6", "--fps", "10", "--out", str(out)]
    assert main(args) == 0 and out.stat().st_size > 0
    assert main(args) == 2 and "exists" in capsys.readouterr().err  # no silent overwrite
    (tmp_path / "not_an_image.png").write_bytes(b"nope")
    assert main(["animate", str(tmp_path / "not_an_image.png"), "--emotion", "sad", "--out", str(tmp_path / "x.mp4")]) == 2
    with pytest.raises(InvalidRequest, match="no face"):
        next(animate_photo(np.full((200, 200, 3), 128, np.uint8), "happy"))


def test_a_blink_narrows_the_eyes_visibly(astronaut, still_tracker):
    """At the first blink's peak (1.18 s) the lids, measured back by MediaPipe, are clearly closer
    than half a second earlier (the fine warp engine; the live one barely moves them)."""
    frames = [frame.image for frame, _ in animate_photo(astronaut, "neutral", seconds=1.3, fps=25.0)]

    def aperture(image):
        lm = still_tracker.track(image).landmarks
        return (lm[[145, 374], 1].mean() - lm[[159, 386], 1].mean()) / np.ptp(lm[:, 0])

    open_eyes, blinking = aperture(frames[17]), aperture(frames[30])  # 0.68 s and 1.2 s (blink 0.92)
    assert blinking < 0.85 * open_eyes, (open_eyes, blinking)


def test_animate_refuses_an_emotion_the_library_lacks(astronaut):
    with pytest.raises(InvalidRequest, match="unknown emotion 'bored'"):
        next(animate_photo(astronaut, "bored"))


def test_a_photo_that_would_decode_to_gigabytes_is_refused_in_one_line():
    """A 661-byte PNG that claims 20000 x 20000 pixels (a decompression bomb) never gets decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 60001 * 10))
            + chunk(b"IEND", b""))
    with pytest.raises(InvalidRequest, match="larger than 64 megapixels"):
        read_photo(bomb, "bomb.png")
