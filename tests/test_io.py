"""Sources and sinks: timestamps survive a round trip, bad input gives one clear error."""

import os
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from livemotion.errors import InvalidRequest, SinkError, SourceError
from livemotion.io.sinks import open_sink
from livemotion.io.sources import CameraOptions, DemoSource, FileSource, WebcamSource, open_source
from livemotion.runtime.pipeline import Pipeline, run
from livemotion.types import FaceTrack, Frame


def read_all(path):
    source = open_source(str(path))
    try:
        return list(source)
    finally:
        source.close()


def test_file_to_file_pass_through_keeps_count_order_and_timestamps(tmp_path, demo_video, tracker):
    out = tmp_path / "out.mp4"
    source = open_source(str(demo_video))
    sink = open_sink(str(out), source.size, source.fps)
    stats = run(source, Pipeline(tracker), sink)
    original, copied = read_all(demo_video), read_all(out)
    assert stats.frames == len(original) == len(copied) == 40
    assert [f.index for f in copied] == list(range(40))
    assert [f.pts for f in copied] == [f.pts for f in original] == [Fraction(i, 25) for i in range(40)]
    for a, b in zip(original, copied, strict=True):  # one more H.264 generation at crf 18
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 2.0
    # and the frames are in order: each copy is closest to its own original
    diffs = [np.abs(copied[10].image.astype(int) - f.image.astype(int)).mean() for f in original]
    assert int(np.argmin(diffs)) == 10


def test_odd_sizes_are_padded_not_cropped(tmp_path):
    out = tmp_path / "odd.mkv"
    sink = open_sink(str(out), (65, 49), 30.0)
    image = np.random.default_rng(1).integers(0, 255, (49, 65, 3), dtype=np.uint8)
    for i in range(3):
        sink.write(Frame(image, i, Fraction(i, 30), 0.0))
    sink.close()
    frames = read_all(out)
    assert len(frames) == 3 and frames[0].image.shape == (50, 66, 3)


def test_a_live_recording_uses_the_faster_encoder_preset(tmp_path):
    """A file written while the frames come is encoded with x264's superfast preset (it keeps up at
    720p on two cores); one made from a file keeps veryfast. x264 writes its settings into the file."""
    frames = [f for f in DemoSource(size=(160, 120), frames=3)]
    settings = {}
    for live in (True, False):
        out = tmp_path / f"live-{live}.mp4"
        sink = open_sink(str(out), (160, 120), 30.0, live=live)
        for frame in frames:
            sink.write(frame)
        sink.close()
        settings[live] = out.read_bytes()
        assert len(read_all(out)) == 3
    assert b"me=dia subme=1" in settings[True]  # superfast
    assert b"me=hex subme=2" in settings[False]  # veryfast


def test_y4m_pipe_to_stdout_is_readable(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "livemotion", "run", "--source", "demo", "--sink", "-", "--frames", "3", "-q"],
        capture_output=True, check=True, timeout=120,
    )
    assert result.stdout.startswith(b"YUV4MPEG2 W640 H480 F30:1")
    (tmp_path / "pipe.y4m").write_bytes(result.stdout)
    assert len(read_all(tmp_path / "pipe.y4m")) == 3


def test_frames_without_a_face_pass_through_bit_exact(tracker):
    class Scribble:  # an editor that would visibly change any face it is given
        def edit(self, frame, track, timings):
            return np.zeros_like(frame.image)

    pipeline = Pipeline(tracker, editor=Scribble())
    empty = np.full((240, 320, 3), 90, np.uint8)
    processed = pipeline.process(Frame(empty, 0, Fraction(0), 0.0))
    assert not isinstance(processed.track, FaceTrack)
    assert processed.output.image is empty


def test_a_failing_editor_never_blanks_the_video(tracker, astronaut):
    class Broken:
        def edit(self, frame, track, timings):
            raise RuntimeError("engine exploded")

    processed = Pipeline(tracker, editor=Broken()).process(Frame(astronaut, 0, Fraction(0), 0.0))
    assert isinstance(processed.track, FaceTrack)
    assert np.array_equal(processed.output.image, astronaut)


@pytest.mark.parametrize(
    "content", [None, b"", os.urandom(4096)], ids=["missing", "empty", "noise"]
)
def test_bad_files_are_source_errors(tmp_path, content):
    path = tmp_path / "clip.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError) as raised:
        read_all(path)
    assert isinstance(raised.value, OSError) and "\n" not in str(raised.value)


def test_truncated_file_keeps_the_frames_before_the_damage(tmp_path, demo_video):
    data = demo_video.read_bytes()
    broken = tmp_path / "truncated.mkv"
    # Remux to Matroska (frames stream out in order), then cut the tail off.
    with av.open(str(demo_video)) as src, av.open(str(broken), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    cut = broken.read_bytes()
    broken.write_bytes(cut[: len(cut) * 2 // 3])
    frames = read_all(broken)
    assert 5 < len(frames) < 40
    assert len(data) > 0


def test_unknown_codec_says_to_convert(tmp_path):
    raw = tmp_path / "raw.mkv"
    with av.open(str(raw), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    unknown = tmp_path / "unknown.mkv"
    unknown.write_bytes(raw.read_bytes().replace(b"V_UNCOMPRESSED", b"V_NOTACODEC123"))
    with pytest.raises(SourceError):
        FileSource(str(unknown))


def test_missing_webcam_says_what_to_do():
    with pytest.raises(SourceError):
        open_source("webcam:7")


@pytest.mark.parametrize("path", ["missing-folder/out.mp4", ".", "out.gif"])
def test_unwritable_outputs_fail_before_any_work(tmp_path, path):
    with pytest.raises(SinkError) as raised:
        open_sink(str(tmp_path / path), (64, 48), 30.0)
    assert isinstance(raised.value, OSError)


def test_read_only_location():
    # /proc refuses new files even to root, so this holds whoever runs the tests.
    with pytest.raises(SinkError):
        open_sink("/proc/out.mp4", (64, 48), 30.0)


def test_bad_source_specs():
    with pytest.raises(InvalidRequest) as raised:
        open_source("demo:big")
    assert isinstance(raised.value, ValueError)
    assert DemoSource().size == (640, 480)
    assert open_source("demo:320x240").size == (320, 240)


def test_camera_options_mirror_and_report_what_the_camera_gives(demo_video, caplog):
    """No camera on these machines: OpenCV's capture opened on a video file stands in for one (the
    same ``cv2.VideoCapture`` a webcam uses). A size it cannot give is a warning, not a failure."""
    plain = next(iter(FileSource(str(demo_video)))).image
    camera = WebcamSource(str(demo_video), CameraOptions(size=(320, 240), mirror=True))
    try:
        mirrored = next(iter(camera)).image
    finally:
        camera.close()
    assert camera.size == (plain.shape[1], plain.shape[0]) and "not the 320x240 asked for" in caplog.text
    assert np.abs(mirrored.astype(int) - plain[:, ::-1]).mean() < 2.0  # left-right flipped (codec noise aside)
    assert np.abs(mirrored.astype(int) - plain).mean() > 5.0
    with pytest.raises(InvalidRequest, match="for webcams"):
        open_source("demo", CameraOptions(mirror=True))
    with pytest.raises(InvalidRequest, match="for webcams"):
        open_source(str(demo_video), CameraOptions(fps=60.0))


def test_a_file_read_again_starts_over(demo_video):
    """A looping --drive clip reads its file again: the second pass gives the same frames."""
    source = FileSource(str(demo_video))
    first = [frame.image for frame in source]
    second = [frame.image for frame in source]
    source.close()
    assert len(second) == len(first) and np.array_equal(second[0], first[0]) and np.array_equal(second[-1], first[-1])
