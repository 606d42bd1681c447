import numpy as np

from livemotion.face.mesh import LOWER_INNER_LIP, UPPER_INNER_LIP
from livemotion.io.demo import demo_frame, jaw_opening
from livemotion.io.sources import DemoSource
from livemotion.types import FaceTrack


def test_demo_clip_is_deterministic():
    first = [f.image for f in DemoSource(frames=6)]
    second = [demo_frame(i) for i in range(6)]
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], first[5])  # and it moves


def test_demo_frames_carry_index_and_timestamps():
    frames = list(DemoSource(frames=5, fps=30.0))
    assert [f.index for f in frames] == list(range(5))
    assert [float(f.pts) for f in frames] == [i / 30 for i in range(5)]
    assert all(b.captured_at >= a.captured_at for a, b in zip(frames, frames[1:]))


def test_demo_mouth_opens_and_closes_like_speech(tracker):
    gaps, truth = [], []
    for frame in DemoSource(frames=45):
        track = tracker.track(frame.image)
        assert isinstance(track, FaceTrack)
        gap = track.landmarks[LOWER_INNER_LIP, 1] - track.landmarks[UPPER_INNER_LIP, 1]
        gaps.append(gap / track.interocular)
        truth.append(jaw_opening(frame.index))
    assert np.corrcoef(gaps, truth)[0, 1] > 0.9
    assert max(gaps) - min(gaps) > 0.1  # a visible opening, not a twitch
