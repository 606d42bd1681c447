import cv2
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


def test_the_demo_command_shows_each_emotion_and_never_overwrites(tmp_path, capsys):
    """`livemotion demo --emotion happy --emotion sad`: a video and a contact sheet with one column per
    asked emotion (input above output, the face enlarged); run again, it writes demo-2.* beside them."""
    from livemotion.cli import main

    args = ["demo", "--emotion", "happy", "--emotion", "sad", "--seconds", "1", "--out", str(tmp_path), "-q"]
    assert main(args) == 0
    assert "happy, sad" in capsys.readouterr().err
    sheet = cv2.imread(str(tmp_path / "demo.png"))
    assert sheet.shape[1] == 2 * 200 + 6 and sheet.shape[0] == 2 * 220  # two columns, two enlarged faces each
    first = (tmp_path / "demo.mp4").read_bytes()
    assert main(args) == 0
    assert (tmp_path / "demo.mp4").read_bytes() == first and (tmp_path / "demo-2.mp4").stat().st_size > 0
    assert (tmp_path / "demo-2.png").exists()
    output_row, input_row = sheet[220 + 20:, :200], sheet[20:220, :200]
    assert np.abs(output_row.astype(int) - input_row).mean() > 1.0  # the output is the edited face


def test_the_demo_sheet_catches_each_emotion_between_two_syllables():
    """The sheet's frame of each emotion (its last 0.6-0.95 of the time it is shown) is a pause in
    the demo's speech: the expression, not a syllable's open mouth."""
    from livemotion.io.demo import jaw_opening, quietest_frame

    for seconds in (1.0, 1.5, 3.0):
        for index in range(8):
            first, last = round((index + 0.6) * seconds * 30), round((index + 0.95) * seconds * 30)
            frame = quietest_frame(first, last)
            assert first <= frame <= last and jaw_opening(frame) < 0.05


def test_the_neutral_demo_face_has_its_grin_closed_and_still_talks(still_tracker):
    """`livemotion demo` starts from a calm face: the astronaut's bared-teeth grin closed by our own
    code, the mouth still opening and closing with the clip's speech."""
    from livemotion.io.demo import neutral_portrait, portrait

    def gap(image):
        track = still_tracker.track(image)
        assert isinstance(track, FaceTrack)
        return (track.landmarks[LOWER_INNER_LIP, 1] - track.landmarks[UPPER_INNER_LIP, 1]) / track.interocular

    assert gap(neutral_portrait()) < 0.3 * gap(portrait())  # lips together over the teeth
    closed = min(range(30), key=jaw_opening)
    opened = max(range(30), key=jaw_opening)
    assert gap(demo_frame(opened, neutral=True)) > gap(demo_frame(closed, neutral=True)) + 0.1
