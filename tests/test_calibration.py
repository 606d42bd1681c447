"""The guided calibration session, fed live frames the way the server feeds it (made-up clips as the camera)."""

import itertools
import stat
from fractions import Fraction

import numpy as np
import pytest

from livemotion.errors import InvalidRequest
from livemotion.expression.library import LIBRARY_EMOTIONS
from livemotion.expression.profiles import load_profile
from livemotion.face.tracking import FaceTracker
from livemotion.io.sources import FileSource
from livemotion.runtime.calibration import CalibrationSession
from livemotion.types import Frame

FPS = 30


@pytest.fixture(scope="module")
def camera_frames(made_up_clips):
    """Per made-up clip: its frames, as the 'camera' shows them while the person does that emotion."""
    frames = {}
    for path in made_up_clips:
        source = FileSource(str(path))
        frames[path.stem.split("_", 1)[1]] = [frame.image for frame in source]
        source.close()
    return frames


class Camera:
    """Frames on one continuous clock, tracked as a live stream is."""

    def __init__(self, session: CalibrationSession):
        self.session, self.index = session, 0
        self.tracker = FaceTracker(max_faces=1)

    def show(self, images: list[np.ndarray], until_phase: str | None = None, limit: int = 200) -> None:
        """Feed ``images`` (looped) until the session reaches ``until_phase``; None: each image once."""
        for image in itertools.islice(itertools.cycle(images), limit) if until_phase else images:
            frame = Frame(image, self.index, Fraction(self.index, FPS), 0.0)
            self.index += 1
            self.session.feed(frame, self.tracker.track(image))
            if self.session.status()["phase"] == until_phase:
                return
        if until_phase:
            raise AssertionError(f"never reached {until_phase}: {self.session.status()}")


def test_a_guided_session_checks_each_take_and_builds_the_profile(camera_frames):
    session = CalibrationSession("guided", emotions=("happy", "sad", "angry"), neutral_seconds=0.5,
                                 emotion_seconds=0.5, countdown=0.2)
    camera = Camera(session)
    status = session.status()
    assert status["phase"] == "countdown" and status["step"] == "neutral" and "talk normally" in status["prompt"]
    with pytest.raises(InvalidRequest, match="cannot be skipped"):
        session.skip()
    camera.show(camera_frames["neutral"], "recording")
    assert session.status()["seconds_left"] == pytest.approx(0.5, abs=0.05)
    camera.show(camera_frames["neutral"], "review")
    assert session.status()["check"]["made"]
    session.accept()
    # happy asked, but the person stays neutral: the check says it did not show, and offers a retake
    camera.show(camera_frames["neutral"], "review")
    check = session.status()["check"]
    assert not check["made"] and "retake" in check["message"]
    session.retake()
    camera.show(camera_frames["happy"], "recording")
    camera.show(camera_frames["happy"][:8])  # part of the take: the live reading is up already
    assert session.status()["showing"] > 0.1
    camera.show(camera_frames["happy"], "review")
    check = session.status()["check"]
    assert check["made"] and check["share"] >= 0.15, check
    session.accept()
    session.skip()  # sad: skipped during its countdown
    camera.show(camera_frames["angry"], "review")
    session.accept()
    assert session.status()["phase"] == "complete" and session.status()["kept"] == ["angry", "happy", "neutral"]
    path = session.finish()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    profile = load_profile("guided")
    assert [e for e, own in zip(LIBRARY_EMOTIONS, profile.measured) if own] == ["happy", "angry"]
    assert session.status()["phase"] == "done" and not session._folder.exists()  # the takes are gone


def test_answers_out_of_turn_are_refused():
    session = CalibrationSession("early")
    with pytest.raises(InvalidRequest, match="under review"):
        session.accept()
    with pytest.raises(InvalidRequest, match="not complete"):
        session.finish()
    session.close()
