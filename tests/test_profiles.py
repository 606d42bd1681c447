"""Calibration profiles: one person's own library, stored privately, with the shipped one as fallback."""

import stat
from dataclasses import replace
from fractions import Fraction

import cv2
import numpy as np
import pytest

from livemotion.cli import main
from livemotion.engines.backends import create_backend
from livemotion.errors import InvalidRequest
from livemotion.expression import au
from livemotion.expression.controller import ExpressionController, ExpressionRequest
from livemotion.expression.library import GRID, LIBRARY_EMOTIONS, WIDE_SPEECH, load_library
from livemotion.expression.measure import MOUTH_EXEMPLARS, ClipMeasure, _face_exemplar
from livemotion.expression.profiles import (
    calibrate_from_clips,
    delete_profile,
    list_profiles,
    load_profile,
    profile_path,
    save_profile,
)
from livemotion.face.alignment import MOUTH_PATCH, align, crop_placement, mouth_patch_transform
from livemotion.face.canonical import inner_lip_gap, jaw_opening
from livemotion.face.mesh import (
    CHIN,
    FACE_OVAL,
    INNER_BROW,
    INNER_LIP_CONTOUR,
    IRIS_CENTRES,
    IRIS_RIMS,
    LOWER_INNER_LIP,
    MOUTH_LEFT_CORNER,
    MOUTH_RIGHT_CORNER,
    OUTER_LIP_CONTOUR,
    UPPER_INNER_LIP,
    both,
)
from livemotion.render.compositing import FaceLayers, MouthChange, lattice_mask, warp_face
from livemotion.render.editor import ExpressionEditor
from livemotion.runtime.pipeline import build_pipeline
from livemotion.runtime.session import SessionState
from livemotion.runtime.settings import last_settings, remember
from livemotion.server.control import ControlError, Controls
from livemotion.types import FaceTrack, Frame

ROW = LIBRARY_EMOTIONS.index


@pytest.fixture(scope="module")
def clips(made_up_clips):
    return {path.stem.split("_", 1)[1]: path for path in made_up_clips}


@pytest.fixture(scope="module")
def profile(clips):
    """The made-up person calibrated on two emotions only: happy and surprised."""
    return calibrate_from_clips(clips["neutral"], {"happy": clips["happy"], "surprised": clips["surprised"]})


def test_calibration_measures_the_persons_own_expressions(profile):
    assert profile.personal
    assert [e for e, own in zip(LIBRARY_EMOTIONS, profile.measured) if own] == ["happy", "surprised"]
    corners = profile.geometry[ROW("happy"), [MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER], 1].mean()
    assert corners < -0.02  # the made-up happy clip lifts the corners; the profile measured it
    assert profile.mouth_interior(ROW("happy")).shape == (*MOUTH_PATCH, 3)
    assert profile.mouth_interior(ROW("sad")) is None  # not calibrated: no interior of the person's
    face, points = profile.face_exemplar(ROW("surprised"))
    assert face.shape == (256, 256, 3) and points.shape == (len(profile.template), 2)
    assert profile.face_exemplar(ROW("sad")) is None and load_library().face_exemplar(ROW("sad")) is None


def test_profile_round_trips_privately(profile):
    path = save_profile("me", profile)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = load_profile("me")
    np.testing.assert_allclose(loaded.geometry[ROW("happy")], profile.geometry[ROW("happy")], atol=1e-6)
    np.testing.assert_allclose(loaded.parting[profile.measured], profile.parting[profile.measured], atol=1e-6)
    np.testing.assert_array_equal(loaded.mouths, profile.mouths)
    np.testing.assert_array_equal(loaded.faces, profile.faces)
    np.testing.assert_array_equal(loaded.face_points, profile.face_points)
    np.testing.assert_array_equal(loaded.mouth_faces, profile.mouth_faces)
    np.testing.assert_array_equal(loaded.mouth_face_points, profile.mouth_face_points)
    assert [(info.name, info.emotions) for info in list_profiles()] == [("me", ("happy", "surprised"))]
    with pytest.raises(InvalidRequest, match="exists"):
        save_profile("me", profile)
    delete_profile("me")
    assert list_profiles() == [] and not path.exists()


def test_the_profile_list_names_the_emotions_spoken_wide(profile, capsys):
    """Where ``--mouth auto`` shows the takes' mouth: the measured emotions spoken at least
    ``WIDE_SPEECH`` times as wide as neutral talk, named by ``livemotion profiles``."""
    scale = np.ones_like(profile.speech_scale)
    scale[[ROW("surprised"), ROW("angry")]] = WIDE_SPEECH  # angry: not measured in this profile
    save_profile("loud", replace(profile, speech_scale=scale))
    save_profile("calm", replace(profile, speech_scale=np.ones_like(scale)))
    assert {info.name: info.own_mouth for info in list_profiles()} == {"loud": ("surprised",), "calm": ()}
    assert main(["profiles"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert any("loud" in line and line.endswith("own mouth: surprised") for line in listed), listed
    assert any("calm" in line and "own mouth" not in line for line in listed), listed


def test_a_profile_keeps_its_takes_mouth_from_closed_to_open(profile, tmp_path):
    """Per calibrated emotion, frames of the take from its least to its most dropped jaw, only their
    mouths kept (black elsewhere). The edit is given the two whose jaws bracket the edited one's,
    shared by nearness, none as the lips close, and less of one the edited lips open much wider
    than its own (it would smear); a profile from before them loads with none."""
    row = ROW("happy")
    kept = profile.mouth_face_points[row]
    jaws = jaw_opening(kept)
    assert profile.mouth_faces.shape[1:] == (MOUTH_EXEMPLARS, 256, 256, 3) and np.ptp(jaws) > 1.0
    for k in (int(np.argmin(jaws)), int(np.argmax(jaws))):  # a frame's own face: that frame alone, whole
        assert profile.mouth_exemplars(row, kept[k]) == [(k, 1.0)]
        face, points = profile.mouth_faces[row, k], kept[k]
        brows = np.round(points[list(INNER_BROW[0])].mean(axis=0)).astype(int)
        lips = np.round(points[[13, 14]].mean(axis=0)).astype(int)
        assert not face[brows[1], brows[0]].any() and face[lips[1], lips[0]].any()
    order = np.argsort(jaws)
    between = kept[order[-1]].copy()  # the most dropped jaw, raised to halfway to the next one
    between[CHIN, 1] += 0.5 * (jaws[order[-2]] - jaws[order[-1]])
    gaps = inner_lip_gap(kept)
    between[LOWER_INNER_LIP, 1] = between[UPPER_INNER_LIP, 1] + gaps[order[-2:]].min()  # neither stretched open
    [(first, lower), (second, upper)] = profile.mouth_exemplars(row, between)
    assert {first, second} == set(order[-2:]) and lower == pytest.approx(upper, abs=0.01) and lower > 0.1
    closed = between.copy()
    closed[LOWER_INNER_LIP, 1] = closed[UPPER_INNER_LIP, 1]  # the speaker's lips meet: the live ones show
    assert profile.mouth_exemplars(row, closed) == []
    wide = between.copy()
    wide[LOWER_INNER_LIP, 1] = wide[UPPER_INNER_LIP, 1] + gaps.max() + 0.2 * crop_placement(256)[0]  # 0.2 IOD wider
    assert profile.mouth_exemplars(row, wide) == []
    assert profile.mouth_exemplars(ROW("sad"), between) == [] and load_library().mouth_exemplars(row, between) == []
    path = tmp_path / "older.npz"
    profile.save(path)
    with np.load(path) as data:
        np.savez(path, **{key: data[key] for key in data.files if not key.startswith("mouth_face")})
    older = load_library(path)
    assert older.mouth_exemplars(row, between) == [] and older.face_exemplar(row) is not None
    with pytest.raises(InvalidRequest, match="--profile"):
        build_pipeline(library=older, takes_mouth="take", backend="torch")


def test_missing_emotions_fall_back_to_the_shipped_library(profile):
    save_profile("me", profile)
    loaded, shipped = load_profile("me"), load_library()
    np.testing.assert_allclose(loaded.geometry[ROW("angry")], shipped.geometry[ROW("angry")], atol=1e-6)
    assert loaded.opening[ROW("sad")] == pytest.approx(shipped.opening[ROW("sad")], abs=1e-6)
    assert shipped.parting[ROW("angry")] > 0.03
    assert loaded.parting[ROW("angry")] == pytest.approx(shipped.parting[ROW("angry")], abs=1e-6)
    # the shipped shading is carried onto the person's own face lattice, not dropped
    carried, original = np.abs(loaded.shading[ROW("angry")]).sum(), np.abs(shipped.shading[ROW("angry")]).sum()
    assert 0.5 * original < carried < 1.5 * original
    assert not np.allclose(loaded.geometry[ROW("happy")], shipped.geometry[ROW("happy")], atol=1e-3)


def test_a_profile_gives_the_controller_the_persons_neutral_face(profile):
    controller = ExpressionController(library=profile)
    np.testing.assert_allclose(controller.baseline.features, au.features(profile.template))
    controller.use_library(load_library())  # back to the shipped library: the typical start again
    assert not np.allclose(controller.baseline.features, au.features(profile.template))


def test_a_new_opening_shows_the_persons_own_mouth_interior(profile, astronaut, still_tracker):
    """Lips that were closed, opened by the edit: the gap shows the profile's mouth interior (here a
    made-up green one no real frame has), inside the new opening only; without one, a dark cavity."""
    track = still_tracker.track(astronaut)
    assert isinstance(track, FaceTrack)
    alignment = align(track, 256)
    grid = 64
    mask = lattice_mask(alignment.points_to_crop(track.landmarks[:, :2]) * (grid - 1) / 255, grid)
    layers = FaceLayers(np.zeros((grid, grid, 2), np.float32), mask, None)  # no flow: only the fill changes pixels
    target = track.landmarks[:, :2].copy()
    centre = target[list(INNER_LIP_CONTOUR)].mean(axis=0)
    source_contour = np.repeat(centre[None], len(INNER_LIP_CONTOUR), axis=0) + (np.arange(len(INNER_LIP_CONTOUR))[:, None]
                                                                                % 2) * (0.3, 0.0)  # closed: a point
    target_contour = target[list(INNER_LIP_CONTOUR)]
    green = np.zeros((*MOUTH_PATCH, 3), np.uint8)
    green[..., 1] = 255
    with_interior = MouthChange(source_contour, target_contour, target[list(OUTER_LIP_CONTOUR)], green,
                                mouth_patch_transform(target))
    out = warp_face(astronaut, layers, alignment, with_interior)
    opening = np.zeros(astronaut.shape[:2], np.uint8)
    cv2.fillPoly(opening, [np.round(target_contour).astype(np.int32)], 1)
    changed = np.any(out != astronaut, axis=2)
    greenish = (out[..., 1].astype(int) - out[..., 0] > 60) & (out[..., 1].astype(int) - out[..., 2] > 60)
    assert greenish[opening > 0].mean() > 0.6  # the opening shows the interior
    assert not changed[cv2.dilate(opening, np.ones((7, 7), np.uint8)) == 0].any()  # nothing else changed
    cavity = warp_face(astronaut, layers, alignment, replace(with_interior, interior=None, interior_to_frame=None))
    assert cavity[opening > 0].mean() < 70 and not (cavity[..., 1].astype(int) - cavity[..., 0] > 60).any()
    # the editor hands the compositor the interior of the emotion asked for, from the profile
    plan = ExpressionController(ExpressionRequest("happy", 1.0, active=True), library=profile,
                                fade_step=1.0, transition=0.0).plan(track)
    change = ExpressionEditor._mouth_change(replace(plan, lip_gap_change=0.1), plan.target[:, :2], profile)
    assert change is not None and np.array_equal(change.interior, profile.mouth_interior(ROW("happy")))


def test_corrupt_or_foreign_profiles_give_one_clear_line(profile, capsys):
    path = profile_path("broken")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00garbage")
    with pytest.raises(InvalidRequest, match="profile 'broken' cannot be read.*calibrate") as error:
        load_profile("broken")
    assert "\n" not in str(error.value)
    load_library().save(profile_path("shipped_copy"))  # a library of many people, not a profile
    with pytest.raises(InvalidRequest, match="not a calibration profile"):
        load_profile("shipped_copy")
    with pytest.raises(InvalidRequest, match="no profile 'nobody'"):
        load_profile("nobody")
    with pytest.raises(InvalidRequest, match="not allowed"):
        load_profile("../etc/passwd")
    assert main(["run", "--profile", "broken", "--sink", str(path.parent / "out.mp4"), "--frames", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot be read" in lines[0]
    assert not (path.parent / "out.mp4").exists()


def test_the_control_api_selects_a_profile(profile):
    save_profile("me", profile)
    controls = Controls()
    state = controls.apply({"type": "set", "profile": "me"})
    assert state["profile"] == "me" and state["library"] is None and state["profiles"] == ["me"]
    with pytest.raises(ControlError, match="no profile 'ghost'"):
        controls.apply({"type": "set", "profile": "ghost"})
    assert controls.state.profile == "me"  # a refused message changes nothing
    assert controls.apply({"type": "set", "profile": None})["profile"] is None


def test_until_a_profile_is_in_use_the_app_and_the_command_line_advise_calibrating(profile, tmp_path, capsys):
    controls = Controls()
    assert controls.reply()["calibration_hint"] is True
    save_profile("me", profile)
    assert controls.apply({"type": "set", "profile": "me"})["calibration_hint"] is False  # in use: nothing to advise
    assert controls.apply({"type": "set", "profile": None})["calibration_hint"] is True
    assert main(["demo", "--out", str(tmp_path), "--frames", "2"]) == 0
    assert "calibrate --profile me --source webcam" in capsys.readouterr().err
    assert controls.apply({"type": "dismiss", "hint": "calibrate"})["calibration_hint"] is False
    assert Controls().reply()["calibration_hint"] is False  # dismissed is remembered, for the app and the CLI
    assert main(["demo", "--out", str(tmp_path), "--frames", "2"]) == 0
    assert "calibrate --profile" not in capsys.readouterr().err
    assert main(["hints", "on"]) == 0 and Controls().reply()["calibration_hint"] is True


def test_calibrate_and_run_from_the_command_line(clips, tmp_path, capsys):
    args = ["calibrate", "--profile", "cli", "--neutral", str(clips["neutral"]), "--clip", f"sad={clips['sad']}"]
    remember(SessionState(mouth="take"))  # chosen for an earlier profile
    assert main(args) == 0
    assert last_settings()["mouth"] == "auto"  # the new profile's takes, drawn as by default
    assert "from the shipped library: happy" in capsys.readouterr().err
    assert last_settings()["profile"] == "cli"  # selected at once: the next live run and serve start with it
    assert Controls(SessionState.from_values(last_settings())).reply()["profile"] == "cli"
    assert main(args) == 2 and "exists" in capsys.readouterr().err  # no silent overwrite
    assert main(["profiles"]) == 0 and "cli" in capsys.readouterr().out
    out = tmp_path / "out.mp4"
    assert main(["run", "--source", str(clips["neutral"]), "--profile", "cli", "--emotion", "sad",
                 "--sink", str(out), "--frames", "4", "-q"]) == 0
    assert out.stat().st_size > 0
    assert main(["profiles", "delete", "cli"]) == 0 and main(["profiles", "delete", "cli"]) == 2


def test_calibrate_with_mouth_fine_tunes_a_mouth_the_profile_brings(clips, tmp_path, capsys, monkeypatch):
    """`calibrate --mouth` fine-tunes the learned mouth on the takes (a few steps here); `run
    --mouth learned` with that profile uses it; replacing or deleting the profile removes it."""
    from livemotion import cli
    from livemotion.expression.profiles import profile_mouth_path
    from livemotion.training import mouth

    monkeypatch.setattr(mouth, "FINE_TUNE_STEPS", 2)
    args = ["calibrate", "--profile", "tuned", "--neutral", str(clips["neutral"]), "--clip", f"happy={clips['happy']}"]
    assert main([*args, "--mouth"]) == 0
    assert "your learned mouth" in capsys.readouterr().err and profile_mouth_path("tuned").is_file()
    chosen = cli._mouth_model(cli.build_parser().parse_args(["run", "--sink", "x.mp4", "--mouth", "learned"]), "tuned")
    assert chosen == str(profile_mouth_path("tuned"))
    assert cli._mouth_model(cli.build_parser().parse_args(["run", "--sink", "x.mp4", "--mouth", "learned"]), None).endswith(
        "engines/mouth.pt")  # without a profile: the shipped one
    out = tmp_path / "tuned.mp4"
    assert main(["run", "--source", str(clips["neutral"]), "--profile", "tuned", "--emotion", "happy",
                 "--mouth", "learned", "--sink", str(out), "--frames", "3", "-q"]) == 0
    assert main([*args, "--force"]) == 0 and not profile_mouth_path("tuned").exists()  # made from other takes
    assert main([*args, "--force", "--mouth"]) == 0 and main(["profiles", "delete", "tuned"]) == 0
    assert not profile_mouth_path("tuned").exists()


def _surprised_with_stripes(profile, astronaut, still_tracker, regions=None):
    """The astronaut made surprised with the profile, with and without its face exemplar. The
    exemplar is made up: the calibration frame with dark stripes, which no live frame has, across
    the forehead, the cheeks, the eyes and the lips."""
    track = still_tracker.track(astronaut)
    row = ROW("surprised")
    face, points = profile.face_exemplar(row)
    striped = face.copy()
    for landmarks in ([10, 151, 9], [50, 280], [159, 386], [13, 14]):  # forehead, cheeks, eyes, lips
        y = int(points[landmarks, 1].mean())
        striped[y - 3: y + 3] = striped[y - 3: y + 3] // 3
    faces = profile.faces.copy()
    faces[row] = striped
    outputs = []
    for library in (replace(profile, faces=faces), replace(profile, faces=np.zeros_like(profile.faces))):
        request = ExpressionRequest("surprised", 1.0, regions=regions or {}, active=True)
        controller = ExpressionController(request, library=library, fade_step=1.0, transition=0.0)
        outputs.append(ExpressionEditor(create_backend("torch"), controller).edit(
            Frame(astronaut, 0, Fraction(0), 0.0), track, {}).astype(int))
    return track.landmarks, outputs[0], outputs[1]


def test_the_takes_irises_land_on_the_live_ones(profile, astronaut, still_tracker):
    """The exemplar's eyes are laid onto the live face by its landmarks: a take whose face sits 6 px
    further right and 4 px lower in its crop puts its irises where the same take in place does."""
    track = still_tracker.track(astronaut)
    row = ROW("surprised")
    face, points = profile.face_exemplar(row)
    outputs = []
    for shift in ((0, 0), (6, 4)):
        faces, face_points = profile.faces.copy(), profile.face_points.copy()
        faces[row] = cv2.warpAffine(face, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), face.shape[1::-1],
                                    borderMode=cv2.BORDER_REFLECT)
        face_points[row] = points + shift
        controller = ExpressionController(ExpressionRequest("surprised", 1.0, active=True), fade_step=1.0,
                                          transition=0.0, library=replace(profile, faces=faces, face_points=face_points))
        outputs.append(ExpressionEditor(create_backend("torch"), controller).edit(
            Frame(astronaut, 0, Fraction(0), 0.0), track, {}))
    for centre, rim in zip(IRIS_CENTRES, IRIS_RIMS):
        live = track.landmarks[centre, :2]
        radius = np.linalg.norm(track.landmarks[list(rim), :2] - live, axis=1).mean()
        in_place, moved = (_dark_centre(out, live, 1.5 * radius) for out in outputs)
        assert np.linalg.norm(moved - in_place) < 0.1 * radius


def _dark_centre(image, centre, reach):
    """The centroid of the darkest fifth of the pixels within ``reach`` of ``centre`` (x, y): an iris's middle."""
    x0, y0 = np.round(centre - reach).astype(int)
    grey = image[y0: y0 + int(2 * reach) + 1, x0: x0 + int(2 * reach) + 1].mean(axis=2)
    ys, xs = np.nonzero(grey <= np.percentile(grey, 20))
    return np.array([xs.mean() + x0, ys.mean() + y0])


def _difference_near(image, other, landmarks, indices, reach=4):
    """The largest difference between two images within ``reach`` pixels of the landmarks' centre."""
    x, y = np.round(landmarks[indices, :2].mean(axis=0)).astype(int)
    window = (slice(y - reach, y + reach + 1), slice(x - reach, x + reach + 1))
    return np.abs(image[window] - other[window]).max()


@pytest.mark.parametrize("scale", [1, 3], ids=["portrait", "large face: the blend on a coarser grid"])
def test_the_persons_own_face_shows_on_the_skin_and_eyes_not_on_the_lips(profile, astronaut, still_tracker, scale):
    """Surprised with a profile: forehead, cheeks and eyes show the person's own surprised face (its
    stripes), colour-matched to the live face, its irises laid on the live ones; the lips stay the
    live face's, so the speech is the person's now."""
    astronaut = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    landmarks, with_exemplar, without = _surprised_with_stripes(profile, astronaut, still_tracker)
    assert _difference_near(with_exemplar, without, landmarks, [10, 151, 9], 10 * scale) > 40  # forehead
    assert _difference_near(with_exemplar, without, landmarks, [50], 6 * scale) > 40  # each cheek
    assert _difference_near(with_exemplar, without, landmarks, [280], 6 * scale) > 40
    for lid in ([159], [386]):  # the upper lids' middles
        assert _difference_near(with_exemplar, without, landmarks, lid, 2 * scale) > 40
    assert _difference_near(with_exemplar, without, landmarks, [13, 14], 2 * scale) < 12  # between the lips
    outline = np.zeros(with_exemplar.shape[:2], np.uint8)
    cv2.fillConvexPoly(outline, cv2.convexHull(np.round(landmarks[list(FACE_OVAL), :2]).astype(np.int32)), 1)
    outside = cv2.dilate(outline, np.ones((6 * scale + 1,) * 2, np.uint8)) == 0
    # the take's hair or background: faint at most (a few levels where its feathered edge meets sharp stripes)
    assert np.abs(with_exemplar[outside] - without[outside]).max() <= 8


def test_a_profiles_own_face_replaces_the_library_shading_it_covers(profile, astronaut, still_tracker):
    """Surprised with the profile's exemplar over every shaded region: the library's shading would
    be blended away under it, so its flow is not asked for (the edit's and the exemplar's only).
    With the brows given another emotion, the exemplar covers only part: the shading comes back.
    The take's mouth asks the engine for no flow of its own."""
    class Counting:  # the torch backend, counting the flows asked of it per frame
        def __init__(self):
            self.backend, self.flows = create_backend("torch"), []
            self.name, self.size, self.grid = "counting", self.backend.size, self.backend.grid

        def __call__(self, source, target):
            self.flows.append(len(source))
            return self.backend(source, target)

    track, counting = still_tracker.track(astronaut), Counting()
    for regions in ({}, {"brows": "angry"}):
        controller = ExpressionController(ExpressionRequest("surprised", 1.0, regions=regions, active=True),
                                          library=profile, fade_step=1.0, transition=0.0)
        ExpressionEditor(counting, controller).edit(Frame(astronaut, 0, Fraction(0), 0.0), track, {})
    assert counting.flows == [2, 3]
    counting.flows.clear()  # the take's mouth: its frames' flows from the exemplar are made once, off the engine
    controller = ExpressionController(ExpressionRequest("happy", 1.0, active=True), library=profile, fade_step=1.0,
                                      transition=0.0)
    editor = ExpressionEditor(counting, controller, takes_mouth="take")
    for _ in range(2):
        editor.edit(Frame(astronaut, 0, Fraction(0), 0.0), track, {})
    assert counting.flows == [2, 2]


class _Stream:
    """The control API's view of a stream: records what it is told about the mouth."""

    def __init__(self):
        self.takes_mouth: list[str] = []

    def set_takes_mouth(self, mode):
        self.takes_mouth.append(mode)

    def __getattr__(self, name):  # the other StreamControl calls: nothing to record
        return lambda *args, **kwargs: None


def test_the_app_offers_the_takes_mouth_where_the_profile_keeps_it(profile, astronaut, still_tracker):
    """``serve``'s control API: "mouth" ("auto" unless chosen) is remembered and reaches every stream; the reply
    says whether the library in use keeps its takes' mouths (a profile of this version does, the
    shipped library does not), and a stream told to take them from a library that keeps none
    draws the warp's mouth, the same bytes."""
    save_profile("me", profile)
    controls, stream = Controls(), _Stream()
    controls.attach(stream)
    assert controls.reply()["take_mouth_available"] is False and controls.reply()["mouth"] == "auto"
    state = controls.apply({"type": "set", "profile": "me", "mouth": "take"})
    assert state["take_mouth_available"] is True and state["mouth"] == "take" and stream.takes_mouth[-1] == "take"
    assert controls.apply({"type": "set", "mouth": "warp"})["mouth"] == "warp" and stream.takes_mouth[-1] == "warp"
    with pytest.raises(ControlError, match="mouth"):
        controls.apply({"type": "set", "mouth": "learned"})
    track = still_tracker.track(astronaut)
    emotions = len(profile.mouth_faces)
    without_frames = replace(profile, mouth_faces=np.zeros((emotions, 0, 0, 0, 3), np.uint8),
                             mouth_face_points=np.zeros((emotions, 0, 0, 2), np.float32))
    outputs = []
    for mode in ("take", "warp"):
        controller = ExpressionController(ExpressionRequest("happy", 1.0, active=True), fade_step=1.0,
                                          transition=0.0, library=without_frames)
        editor = ExpressionEditor(create_backend("torch"), controller)
        editor.set_takes_mouth(mode)
        outputs.append(editor.edit(Frame(astronaut, 0, Fraction(0), 0.0), track, {}))
    assert not without_frames.keeps_mouth_frames and np.array_equal(*outputs)


def test_the_takes_mouth_shows_on_the_lips_when_asked(profile, astronaut, still_tracker):
    """Happy with a profile and ``takes_mouth="take"``: the lips are drawn from the frames of the
    person's take whose jaw is as open as the edited one (here made up: their lips striped black,
    which no live frame has), laid onto the edited lips; the eyes and above are the same bytes as
    without them, and with "warp" nothing of them shows. "auto" shows them where the person speaks
    happy wide (``WIDE_SPEECH``), and draws the warp's mouth where they do not."""
    track = still_tracker.track(astronaut)
    row = ROW("happy")
    striped = profile.mouth_faces.copy()
    for face, points in zip(striped[row], profile.mouth_face_points[row]):
        for y in np.round(points[[0, 13, 14, 17], 1]).astype(int):  # the lips' midline, outer and inner
            face[y - 1: y + 2] = 0
    outputs = []
    wide, usual = (profile.speech_scale.copy() for _ in range(2))
    wide[row], usual[row] = WIDE_SPEECH, 1.0
    for mouth_faces, mode, scale in ((striped, "take", usual), (np.zeros_like(striped), "take", usual),
                                     (striped, "warp", usual), (striped, "auto", wide), (striped, "auto", usual),
                                     (striped, "take", wide)):
        library = replace(profile, mouth_faces=mouth_faces, speech_scale=scale)
        controller = ExpressionController(ExpressionRequest("happy", 1.0, active=True), fade_step=1.0, transition=0.0,
                                          library=library)
        outputs.append(ExpressionEditor(create_backend("torch"), controller, takes_mouth=mode).edit(
            Frame(astronaut, 0, Fraction(0), 0.0), track, {}).astype(int))
    landmarks, (with_mouth, without, not_asked, spoken_wide, spoken_usually, taken_wide) = track.landmarks, outputs
    assert np.array_equal(not_asked, without)
    assert np.array_equal(spoken_wide, taken_wide) and np.array_equal(spoken_usually, without)
    assert _difference_near(spoken_wide, without, landmarks, [17], 4) > 40
    assert _difference_near(with_mouth, without, landmarks, [0], 4) > 40  # the upper lip (the edit moves it)
    assert _difference_near(with_mouth, without, landmarks, [17], 4) > 40  # the lower lip
    eyes = int(landmarks[168, 1])  # between the eyes
    assert np.array_equal(with_mouth[:eyes], without[:eyes])


def test_a_region_kept_live_gets_no_exemplar(profile, astronaut, still_tracker):
    """The exemplar below the eyes follows the cheeks' and mouth corners' sources: with the mouth
    corners live, every byte below the eyes is what the edit gives without an exemplar."""
    landmarks, with_exemplar, without = _surprised_with_stripes(profile, astronaut, still_tracker,
                                                                {"mouth_corners": "live"})
    eyes = int(landmarks[[159, 386], 1].mean())
    assert np.array_equal(with_exemplar[eyes + 15:], without[eyes + 15:])
    assert _difference_near(with_exemplar, without, landmarks, [10, 151, 9], 10) > 40  # the forehead still shows it


def test_the_exemplar_is_a_frame_that_shows_the_expression_not_a_pause_or_a_shout():
    """An actor relaxes between sentences (lips closed, brows down) and shouts at times: the
    profile's face exemplar is neither, but a frame where the brows are clearly up."""
    rest = load_library().template
    brows = list(INNER_BROW[0] + INNER_BROW[1])
    motion = np.zeros_like(rest)
    motion[brows, 1] = -0.1  # surprise: the brows go up
    raised = [0.0, 0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 1.6]  # frames 0 and 1 pauses, 8 and 9 shouts
    opened = [0.0, 0.01, 0.06, 0.04, 0.05, 0.07, 0.05, 0.06, 0.3, 0.35]
    canonical = np.stack([rest + amount * motion for amount in raised])
    canonical[:, LOWER_INNER_LIP, 1] += opened
    faces = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(len(raised))])
    clip = ClipMeasure("take.mp4", "you", "surprised", canonical, np.zeros((0, GRID, GRID), np.float32),
                       np.zeros((0, *MOUTH_PATCH, 3), np.uint8), faces, np.zeros((len(raised), len(rest), 2), np.float32))
    face, _ = _face_exemplar(clip, rest, motion)
    chosen = int(face[0, 0, 0])
    assert chosen not in (0, 1, 8, 9) and raised[chosen] >= 0.5


@pytest.mark.parametrize("light", [0.55, 1.0], ids=["darker room", "same light"])
def test_a_profile_made_on_one_camera_works_on_another(profile, astronaut, still_tracker, light):
    """The profile was made from 320x240 takes; the live camera here is twice as large, and in one case
    its light is 0.55 as bright. The person's own surprised face still shows (the brows rise), and
    its skin takes the live face's brightness, not the take's."""
    live = np.clip(cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC) * light, 0, 255).astype(np.uint8)
    track = still_tracker.track(live)
    assert isinstance(track, FaceTrack)
    controller = ExpressionController(ExpressionRequest("surprised", 1.0, active=True), library=profile,
                                      fade_step=1.0, transition=0.0)
    out = ExpressionEditor(create_backend("torch"), controller).edit(Frame(live, 0, Fraction(0), 0.0), track, {})
    plan = controller.plan(track, 0.0)
    brows = list(both(INNER_BROW))
    assert (plan.source[brows, 1] - plan.target[brows, 1]).mean() > 0.02 * track.interocular  # raised
    x0, y0 = np.round(track.landmarks[[234, 10], :2].min(axis=0)).astype(int)
    x1, y1 = np.round(track.landmarks[[454, 152], :2].max(axis=0)).astype(int)
    skin_in, skin_out = live[y0:y1, x0:x1].mean(), out[y0:y1, x0:x1].mean()
    assert abs(skin_out - skin_in) < 0.06 * skin_in, (skin_in, skin_out)  # no bright take pasted on a dark face


def test_run_with_the_takes_mouth_from_the_command_line(profile, clips, tmp_path, capsys):
    """`run --mouth take` needs a profile that keeps its takes' mouths, and says so."""
    out = tmp_path / "o.mp4"
    assert main(["run", "--source", str(clips["neutral"]), "--sink", str(out), "--frames", "3", "--emotion", "happy",
                 "--mouth", "take", "-q"]) == 2
    assert "--profile" in capsys.readouterr().err and not out.exists()
    save_profile("mine", profile)
    assert main(["run", "--source", str(clips["neutral"]), "--sink", str(out), "--frames", "3", "--emotion", "happy",
                 "--profile", "mine", "--mouth", "take", "-q"]) == 0
    assert out.stat().st_size > 0


def test_a_live_run_keeps_the_mouth_last_chosen_where_the_profile_allows(profile, clips, tmp_path, monkeypatch):
    """The app's choice of mouth (remembered) carries to the next live run with a profile that keeps
    its takes' mouths; --fresh, --mouth warp, a library without them or a file run draw the warp's,
    and a file run with that profile the default ("auto")."""
    from livemotion.runtime import pipeline, settings

    asked = []
    real = pipeline.build_pipeline
    monkeypatch.setattr(pipeline, "build_pipeline", lambda *a, **k: asked.append(k["takes_mouth"]) or real(*a, **k))
    save_profile("mine", profile)
    run = ["run", "--source", str(clips["neutral"]), "--frames", "2", "--emotion", "happy", "-q"]
    cases = ((["--live"], "mine"), (["--live", "--fresh"], "mine"), (["--live", "--mouth", "warp"], "mine"),
             ([], "mine"), (["--live"], None),  # the shipped library keeps no takes, and no error
             (["--profile", "mine"], None))  # a file run with the profile: the default
    for n, (extra, chosen_profile) in enumerate(cases):
        settings.remember(SessionState(profile=chosen_profile, mouth="take"))  # as the app leaves it
        assert main([*run, "--sink", str(tmp_path / f"o{n}.mp4"), *extra]) == 0
    assert asked == ["take", "warp", "warp", "warp", "warp", "auto"]
