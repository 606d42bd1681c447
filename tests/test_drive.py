"""Mimic: a driving face's expression, read against its own neutral, put on another face."""

import numpy as np
import pytest
from helpers import corner_lift

from livemotion.cli import main
from livemotion.engines.backends import create_backend
from livemotion.expression.controller import DriveReading, ExpressionController, ExpressionRequest
from livemotion.expression.drive import Driver
from livemotion.face.mesh import INNER_BROW, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, OUTER_BROW, UPPER_LID, both
from livemotion.face.tracking import FaceTracker
from livemotion.io.sinks import open_sink
from livemotion.io.sources import DemoSource, FileSource
from livemotion.render.editor import ExpressionEditor
from livemotion.runtime.pipeline import Pipeline
from livemotion.types import FaceTrack


def corner_lifts(path) -> np.ndarray:
    """Per frame: how high the mouth corners sit, measured down from the eyes in IODs and negated
    (NaN: no face). Against the eyes, not the lips: speech moves the lips, a smile the corners."""
    lifts = []
    source = FileSource(str(path))
    with FaceTracker(max_faces=1) as tracker:
        for frame in source:
            track = tracker.track(frame.image)
            if not isinstance(track, FaceTrack):
                lifts.append(np.nan)
                continue
            lifts.append(corner_lift(track, against="eyes"))
    source.close()
    return np.array(lifts)


def test_mimic_puts_the_drivers_smile_on_the_other_face(tmp_path):
    """The driver: the calm demo face smiling on and off (a lip-corner pull, AU12, and a cheek raise,
    AU6, made by livemotion's own editor). The edited face: the original grinning demo. Its corner
    lift follows the driver's over the clip."""
    driver = tmp_path / "driver.mp4"
    controller = ExpressionController(transition=0.0, fade_step=1.0)  # the smile curve is ours
    editor = ExpressionEditor(create_backend("torch"), controller)
    sink = open_sink(str(driver), (640, 480), 30.0)
    with FaceTracker(max_faces=1) as tracker:
        pipeline = Pipeline(tracker, editor)
        for frame in DemoSource(frames=90, neutral=True):
            smile = 0.5 - 0.5 * np.cos(2 * np.pi * frame.index / 40)  # on and off, twice
            controller.request = ExpressionRequest(aus={"12": round(smile, 2), "6": round(0.6 * smile, 2)}, active=True)
            sink.write(pipeline.process(frame).output)
    sink.close()
    out = tmp_path / "mimic.mp4"
    assert main(["run", "--source", "demo", "--drive", str(driver), "--sink", str(out), "--frames", "90", "-q"]) == 0
    theirs, ours = corner_lifts(driver), corner_lifts(out)
    valid = np.isfinite(theirs) & np.isfinite(ours)
    valid[:15] = False  # the driver's neutral is learned over its first half second
    assert valid.sum() > 50
    r = np.corrcoef(theirs[valid], ours[valid])[0, 1]
    assert r >= 0.8, r


def test_drive_refuses_a_second_expression_source(tmp_path, capsys):
    assert main(["run", "--source", "demo", "--drive", "demo", "--emotion", "sad", "--sink",
                 str(tmp_path / "x.mp4"), "--frames", "2"]) == 2
    assert "--drive sets the expression" in capsys.readouterr().err


def test_a_recorded_driver_measures_against_its_own_neutral_clip(made_up_clips):
    """A driving clip that starts expressive (a MEAD clip, a made-up happy one) takes its neutral
    from a clip of the same face at rest: the very first request already carries its smile."""
    clips = {path.stem.split("_", 1)[1]: path for path in made_up_clips}
    driver = Driver(FileSource(str(clips["happy"])), neutral=FileSource(str(clips["neutral"])))
    try:
        reading = driver.read(0.0)
    finally:
        driver.close()
    assert reading is not None
    assert reading.motion[[MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER], 1].mean() < -0.02  # corners up, canonical units


def test_a_pushed_driver_never_waits_and_learns_its_neutral_first(astronaut):
    """Frames that arrive on their own (a WebRTC track): no frame yet, no reading, no waiting; the
    first ``learn_frames`` frames are the driver's neutral; a turned head reads as a head turn."""
    driver = Driver(learn_frames=3)
    try:
        assert driver.read(0.0) is None  # nothing pushed: answers at once
        for _ in range(3):
            driver.push(astronaut)
            assert driver.read(0.0) is None  # learning the neutral face
        driver.push(astronaut)
        still = driver.read(0.0)
        assert still is not None and np.abs(still.pose).max() < 1.0 and still.opening < 0.05
        assert driver.read(0.0) is still  # no new frame: the last reading, not a second measurement
    finally:
        driver.close()


def test_only_the_pushed_frame_a_stream_reads_is_converted(astronaut):
    """A WebRTC track pushes every frame unconverted; the conversion to RGB runs for the newest
    one only, when a stream reads it (not on the event loop, not for frames nobody reads)."""
    converted = []

    def delivered(number: int):
        return lambda: converted.append(number) or astronaut

    driver = Driver(learn_frames=1)
    try:
        for number in range(5):
            driver.push(delivered(number))
        driver.read(0.0)
        assert converted == [4]
        driver.read(0.0)  # nothing new pushed: nothing converted
        assert converted == [4]
    finally:
        driver.close()


def test_driven_regions_take_the_drivers_motion_pose_and_mouth(astronaut, still_tracker):
    """brows, mouth opening and head pose driven; the other regions stay live (bit-exact motion 0)."""
    track = still_tracker.track(astronaut)
    motion = np.zeros((len(track.landmarks), 2))
    motion[:, 1] = -0.05  # everything up by 0.05 IOD; only the brows may take it
    reading = DriveReading(motion, 0.35, np.array([8.0, 0.0, 0.0]))  # her grin parts the lips by ~0.17
    regions = {"brows": "drive", "mouth_opening": "drive", "head_pose": "drive", "eyes": "live", "cheeks": "live",
               "mouth_corners": "live"}
    controller = ExpressionController(ExpressionRequest(regions=regions, active=True), fade_step=1.0, transition=0.0)
    plan = controller.plan(track, 0.0, drive=reading)
    assert plan.pose[0] == pytest.approx(8.0)
    assert plan.lip_gap_change > 0.1  # opened to the driver's 0.35 above the lips-together gap
    unturned = ExpressionController(ExpressionRequest(regions={**regions, "head_pose": "live"}, active=True),
                                    fade_step=1.0, transition=0.0).plan(track, 0.0, drive=reading)
    rise = (unturned.source - unturned.target)[:, 1]  # pixels up
    brows, lids = list(both(INNER_BROW) + both(OUTER_BROW)), list(both(UPPER_LID))
    assert rise[brows].min() > 0.03 * track.interocular and np.abs(rise[lids]).max() < 0.01 * track.interocular
    alone = controller.plan(track, 0.04)  # no driver connected: driven regions show nothing
    assert alone.lip_gap_change == 0.0 and not np.any(alone.pose)
