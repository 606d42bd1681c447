"""The expression library: built from labelled clips, saved, loaded, refused when it is not one."""

import numpy as np
import pytest

from livemotion.errors import InvalidRequest
from livemotion.expression.library import GRID, LIBRARY_EMOTIONS, SHADING_REGIONS, load_library
from livemotion.expression.measure import (
    ClipMeasure,
    build_library,
    clip_label,
    clip_posture,
    labelled_clips,
    lips_apart_of_jaw,
    speech_basis,
)
from livemotion.face.mesh import CHIN, INNER_BROW, LOWER_INNER_LIP, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER


def test_clip_labels_come_from_file_names():
    assert clip_label("mead_W009_happy.mp4") == ("mead_w009", "happy")
    assert clip_label("x/styletalk_furious_talk1_clip1.mp4") == ("styletalk_talk1_clip1", "angry")
    assert clip_label("mead_W011_fear.mp4") == ("mead_w011", "fearful")
    assert clip_label("holiday.mp4") is None
    assert clip_label("anna-Surprised-take2.mov") == ("anna_take2", "surprised")
    # a word that only starts like an emotion names none (SadTalker's sample clips)
    assert clip_label("sadtalker_WDA_KatieHill_000.mp4") is None
    assert clip_label("fearless_leader_happy.mp4") == ("fearless_leader", "happy")


def test_clips_that_name_no_emotion_are_refused_with_the_naming_rule():
    with pytest.raises(InvalidRequest, match=r"sadtalker_demo\.mp4; name them like person_happy\.mp4"):
        labelled_clips(["clips/sadtalker_demo.mp4", "clips/me_neutral.mp4"])


def test_builder_recovers_each_made_up_expression(made_up_clips, tmp_path):
    library = build_library(made_up_clips)
    corners = library.geometry[:, [MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER], 1].mean(axis=1)  # + = down
    brows = library.geometry[:, list(INNER_BROW[0] + INNER_BROW[1]), 1].mean(axis=1)
    row = LIBRARY_EMOTIONS.index
    assert corners[row("happy")] < -0.02 and corners[row("happy")] < corners[row("sad")] - 0.02
    assert brows[row("surprised")] < -0.02 and brows[row("surprised")] < brows[row("angry")] - 0.02
    right, left = library.geometry[row("contemptuous"), [MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER], 1]
    assert right < left - 0.02  # one-sided
    assert library.shading.shape == (len(LIBRARY_EMOTIONS), len(SHADING_REGIONS), GRID, GRID)
    assert np.isfinite(library.shading).all() and np.abs(library.shading).max() <= 0.35
    path = tmp_path / "made_up.npz"
    library.save(path)
    assert path.stat().st_size < 5_000_000
    loaded = load_library(path)
    np.testing.assert_allclose(loaded.geometry, library.geometry, atol=1e-6)
    assert loaded.sources == tuple(p.name for p in made_up_clips)


def test_the_lips_parting_is_the_gap_beyond_what_the_jaw_explains():
    """Talking neutrally the lips follow the jaw; an emotion that pulls them back from the teeth parts
    them further at the same jaw. A wider jaw drop alone (surprise) is not a parting."""
    template, rng = load_library().template, np.random.default_rng(0)

    def take(jaw_drop: np.ndarray, beyond_jaw: float) -> ClipMeasure:
        frames = np.repeat(template[None], len(jaw_drop), axis=0)
        frames[:, CHIN, 1] += jaw_drop
        frames[:, LOWER_INNER_LIP, 1] += 0.8 * jaw_drop + beyond_jaw + rng.normal(0.0, 0.003, len(jaw_drop))
        empty = np.zeros((0,))
        return ClipMeasure("take.mp4", "x", "neutral", frames, empty, empty, empty, empty)

    parting = lips_apart_of_jaw(take(rng.uniform(0.0, 0.2, 80), 0.0))
    assert parting(take(rng.uniform(0.0, 0.2, 80), 0.07)) == pytest.approx(0.07, abs=0.005)
    assert parting(take(rng.uniform(0.1, 0.3, 80), 0.0)) == pytest.approx(0.0, abs=0.005)


def test_a_shouted_take_is_measured_as_wider_syllables_not_a_wider_posture():
    """Speech's scale is the spread of the gap over a take against the neutral take's: a take whose
    syllables open twice as far from the same closed lips measures 2, and its posture stays."""
    library, rng = load_library(), np.random.default_rng(1)

    def take(gaps: np.ndarray) -> ClipMeasure:
        frames = library.template[None] + gaps[:, None, None] * library.speech[None]
        empty = np.zeros((0,))
        return ClipMeasure("take.mp4", "x", "neutral", frames, np.zeros((len(gaps), GRID, GRID)), empty, empty, empty)

    syllables = np.where(rng.random(120) < 0.3, 0.0, rng.uniform(0.0, 0.12, 120))  # the lips meet between syllables
    neutral = take(syllables)
    speech = speech_basis(neutral)
    calm, shouted = clip_posture(neutral, speech), clip_posture(take(2.0 * syllables), speech)
    assert shouted.spread / calm.spread == pytest.approx(2.0, rel=0.02)
    assert shouted.gap == pytest.approx(calm.gap, abs=0.01)


def test_builder_needs_each_persons_own_neutral(made_up_clips):
    lines = []
    with pytest.raises(InvalidRequest, match="no person has both"):
        build_library([p for p in made_up_clips if "neutral" not in p.name], progress=lines.append)
    assert any("no neutral clip" in line for line in lines)
    with pytest.raises(InvalidRequest, match="no clip shows"):
        build_library([p for p in made_up_clips if "happy" not in p.name])


def test_shipped_library_is_small_and_complete():
    library = load_library()
    assert library.geometry.shape[0] == len(LIBRARY_EMOTIONS)
    assert any("mead" in source for source in library.sources)


def test_a_library_from_before_the_lips_parting_loads_without_one(tmp_path):
    shipped, path = load_library(), tmp_path / "older.npz"
    shipped.save(path)
    with np.load(path) as data:
        np.savez(path, **{key: data[key] for key in data.files if key != "parting"})
    older = load_library(path)
    assert not older.parting.any() and older.parting.shape == shipped.parting.shape
    np.testing.assert_allclose(older.geometry, shipped.geometry, atol=1e-6)


def test_a_file_that_is_not_a_library_is_refused_clearly(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InvalidRequest, match="not an expression library"):
        load_library(bad)
    with pytest.raises(InvalidRequest, match="no expression library at"):
        load_library(tmp_path / "missing.npz")

