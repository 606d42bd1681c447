"""Emotion editing: AU fields move the right landmarks, the edit keeps what it must keep."""

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from helpers import corner_lift, edit_still, torch_engine

from livemotion.engines import create_engine
from livemotion.errors import InvalidRequest
from livemotion.expression import au
from livemotion.expression.controller import ExpressionController, ExpressionRequest, MouthPosture
from livemotion.expression.library import SHADING_REGIONS, load_library
from livemotion.face import mesh
from livemotion.face.alignment import align, engine_points
from livemotion.face.canonical import canonical_landmarks, to_image
from livemotion.face.flow import backward_flow
from livemotion.face.mesh import LOWER_INNER_LIP, MOUTH_LEFT_CORNER, MOUTH_RIGHT_CORNER, UPPER_INNER_LIP
from livemotion.face.tracking import FaceTracker
from livemotion.io.demo import jaw_opening
from livemotion.io.sources import DemoSource
from livemotion.render.compositing import EYE_OPENINGS, FaceLayers, MouthChange, lattice_mask, warp_face
from livemotion.render.editor import ExpressionEditor
from livemotion.runtime.pipeline import build_pipeline
from livemotion.types import FaceTrack


def edit(image, track, emotion=None, aus=None, intensity=1.0):
    return edit_still(image, track, ExpressionRequest(emotion or "neutral", intensity, aus or {}, active=True))


def unit_field(track, number, side=None):
    fields = au.fields(canonical_landmarks(track))[au.AU_NUMBERS.index(number)]
    return fields.sum(axis=0) if side is None else fields[side]


# ---- the AU fields themselves (canonical frame: y grows towards the chin) -----------------------

def test_au12_lifts_and_widens_the_mouth_corners(astronaut_track):
    field = unit_field(astronaut_track, 12)
    assert field[MOUTH_RIGHT_CORNER, 1] < -0.1 and field[MOUTH_LEFT_CORNER, 1] < -0.1
    assert field[MOUTH_RIGHT_CORNER, 0] < 0 < field[MOUTH_LEFT_CORNER, 0]


def test_au15_lowers_the_mouth_corners(astronaut_track):
    field = unit_field(astronaut_track, 15)
    assert field[MOUTH_RIGHT_CORNER, 1] > 0.1 and field[MOUTH_LEFT_CORNER, 1] > 0.1


def test_au4_lowers_and_draws_together_the_inner_brows(astronaut_track):
    field = unit_field(astronaut_track, 4)
    right, left = mesh.INNER_BROW[0][1], mesh.INNER_BROW[1][1]
    assert field[right, 1] > 0.05 and field[left, 1] > 0.05
    assert field[right, 0] > 0 > field[left, 0]  # towards the midline


def test_au1_raises_the_inner_brows_without_dragging_the_eyelids(astronaut_track):
    field = unit_field(astronaut_track, 1)
    assert field[mesh.INNER_BROW[0][1], 1] < -0.1 and field[mesh.INNER_BROW[1][1], 1] < -0.1
    assert np.abs(field[list(mesh.EYES)]).max() == 0.0


def test_unilateral_au_moves_one_side_only(astronaut_track):
    right_only = unit_field(astronaut_track, 12, side=0)
    assert right_only[MOUTH_RIGHT_CORNER, 1] < -0.1
    assert abs(right_only[MOUTH_LEFT_CORNER, 1]) < 0.01


# ---- the flow, the one resampling and the shading ----------------------------------------------

def test_points_that_stay_put_give_a_zero_flow():
    engine = create_engine("warp", size=256)
    points = torch.rand(1, 100, 2) * 255
    with torch.inference_mode():
        flow = engine(points, points.clone())
    assert flow.shape == (1, 2, engine.grid, engine.grid) and flow.abs().max() < 1e-4


def test_zero_flow_and_unit_shading_give_the_frame_back_bit_exact(astronaut, astronaut_track):
    alignment = align(astronaut_track, 256)
    grid = 64
    lattice = alignment.points_to_crop(astronaut_track.landmarks[:, :2]) * (grid - 1) / 255
    mask = lattice_mask(lattice, grid)
    zero = np.zeros((grid, grid), np.float32)
    out = warp_face(astronaut, FaceLayers(np.zeros((grid, grid, 2), np.float32), mask, zero), alignment)
    assert np.array_equal(out, astronaut)


def test_shading_is_the_identity_at_intensity_zero(astronaut, astronaut_track):
    _, plan = edit(astronaut, astronaut_track, "angry", intensity=0.0)
    assert not plan.emotions.any()  # no library emotion, so no ratio image is multiplied in
    _, plan = edit(astronaut, astronaut_track, "angry", intensity=0.5)
    assert plan.emotions.max() == pytest.approx(0.5)


def test_shading_darkens_the_brow_furrow_for_angry(astronaut, astronaut_track):
    library = load_library()
    angry = library.shading[library.emotion_index("angry")]
    assert angry[SHADING_REGIONS.index("glabella")].min() < -0.02  # the shipped library: a furrow between the brows
    out, _ = edit(astronaut, astronaut_track, "angry")
    x, y = astronaut_track.landmarks[mesh.GLABELLA, :2].round().astype(int)
    r = int(0.12 * astronaut_track.interocular)
    patch_in = astronaut[y - r:y + r, x - r:x + r].astype(float).mean()
    patch_out = out[y - r:y + r, x - r:x + r].astype(float).mean()
    assert patch_out < patch_in - 1.0


def eyes_and_brows_detail(image, track):
    """Variance of the Laplacian over the upper face (lashes, brows, lids): moved, not redrawn, by an edit."""
    box = track.box
    y1 = int(track.landmarks[list(mesh.EYES), 1].max() + 0.1 * track.interocular)
    grey = cv2.cvtColor(image[int(box.y0):y1, int(box.x0):int(box.x1)], cv2.COLOR_RGB2GRAY)
    return cv2.Laplacian(grey, cv2.CV_64F).var()


@pytest.mark.parametrize("emotion", ["surprised", "angry", "sad"])
def test_the_edit_keeps_the_detail_of_a_large_face(astronaut, astronaut_track, emotion):
    # The astronaut's face is ~2x the 256-pixel crop: cutting, warping and warping back a crop kept
    # 0.57-0.77 of such a face's detail. One Lanczos resampling of the frame itself keeps >= 0.75 of
    # this sharp still's finest (pixel-level) detail where the brows and lids moved; the issue's
    # target of 0.95 is not reached on it (README, Quality).
    out, _ = edit(astronaut, astronaut_track, emotion)
    assert eyes_and_brows_detail(out, astronaut_track) / eyes_and_brows_detail(astronaut, astronaut_track) >= 0.75


def test_pixels_outside_the_face_are_untouched(astronaut, astronaut_track):
    out, _ = edit(astronaut, astronaut_track, "surprised")
    assert not np.array_equal(out, astronaut)
    face = np.zeros(astronaut.shape[:2], np.uint8)
    hull = cv2.convexHull(np.round(astronaut_track.landmarks[list(mesh.FACE_OVAL), :2]).astype(np.int32))
    cv2.fillConvexPoly(face, hull, 1)
    reach = int(0.6 * astronaut_track.interocular)
    near_face = cv2.dilate(face, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
    assert np.array_equal(out[~near_face], astronaut[~near_face])
    changed = np.any(out != astronaut, axis=2)
    assert changed[face.astype(bool)].mean() > 0.2  # and the face itself did change


def test_raised_upper_lids_are_handed_to_the_compositor_with_the_irises(astronaut, astronaut_track):
    """The compositor redraws an eye only when the editor says its lids move, and where its iris is."""
    _, plan = edit(astronaut, astronaut_track, aus={"5": 1.0})  # AU5, the upper lid raiser
    changes = ExpressionEditor._eye_changes(plan, plan.target[:, :2])
    assert len(changes) == 2
    for change, opening, centre in zip(changes, EYE_OPENINGS, mesh.IRIS_CENTRES):
        middle = opening[1 + len(mesh.UPPER_LID[0]) // 2]  # the upper lid's middle point
        assert plan.target[middle, 1] < plan.source[middle, 1] - 0.3  # raised (y grows downwards)
        assert np.allclose(change.opening, astronaut_track.landmarks[list(opening), :2])
        assert np.allclose(change.iris_centre, astronaut_track.landmarks[centre, :2])
        assert 0.05 < change.iris_radius / astronaut_track.interocular < 0.2
    # lids that stay put, or move only with the whole eye, leave the warp's eyes as they are
    assert ExpressionEditor._eye_changes(plan, plan.source[:, :2] + (3.0, -2.0)) == ()
    # and a head turned away has them redrawn less, from 20 degrees, and not at all past 30
    assert [c.strength for c in ExpressionEditor._eye_changes(plan, plan.target[:, :2], yaw=-25.0)] == [0.5, 0.5]
    assert ExpressionEditor._eye_changes(plan, plan.target[:, :2], yaw=32.0) == ()


@pytest.mark.parametrize("emotion", [e for e in au.EMOTIONS if e != "neutral"])
def test_the_dense_warp_never_folds(astronaut_track, emotion):
    _, plan = edit(np.zeros((512, 512, 3), np.uint8), astronaut_track, emotion)
    alignment = align(astronaut_track, 256)
    source, target = alignment.points_to_crop(plan.source), alignment.points_to_crop(plan.target)
    flow = backward_flow(torch.tensor(engine_points(source))[None].float(),
                         torch.tensor(engine_points(target))[None].float(), 256, 64, 0.035 * 256)[0].numpy() * 63 / 255
    dudy, dudx = np.gradient(flow[0])
    dvdy, dvdx = np.gradient(flow[1])
    determinant = (1 + dudx) * (1 + dvdy) - dudy * dvdx
    assert determinant.min() > 0.2


def test_a_fold_holds_back_only_the_vertices_around_it():
    """A grid of triangles; one vertex pushed through its neighbour (a fold) while the far corner
    moves freely: the fold is stopped where it happens, the far motion is delivered whole."""
    side = 6
    points = np.array([(x, y) for y in range(side) for x in range(side)], float) * 10.0
    triangles = np.array([t for y in range(side - 1) for x in range(side - 1) for t in (
        (y * side + x, y * side + x + 1, (y + 1) * side + x), (y * side + x + 1, (y + 1) * side + x + 1, (y + 1) * side + x))])
    target = points.copy()
    target[2 * side + 2] += (0.0, 25.0)  # through the row below: folds
    target[side * side - 1] += (3.0, 3.0)  # far away, harmless
    held = au.fold_free_target(points, target, triangles)

    def areas(p: np.ndarray) -> np.ndarray:
        a, b, c = (p[triangles[:, i]] for i in range(3))
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    assert (areas(held) / areas(points)).min() >= 0.1
    np.testing.assert_allclose(held[side * side - 1], target[side * side - 1])  # the far motion, whole
    assert 0 < held[2 * side + 2, 1] - points[2 * side + 2, 1] < 25.0  # the folding one, held back


# ---- end to end, judged by re-tracking the output ------------------------------------------------

def inner_gap(track: FaceTrack) -> float:
    return float((track.landmarks[LOWER_INNER_LIP, 1] - track.landmarks[UPPER_INNER_LIP, 1]) / track.interocular)


@pytest.mark.parametrize("shift", [0.2, 0.45])
def test_the_mouth_fill_traces_no_line_where_the_mouth_only_moved(astronaut, astronaut_track, shift):
    """The warp moves the whole mouth by a fraction of a pixel and the edit's mouth moves with it:
    nothing opened, nothing closed, so the fill must add nothing to the warp (no dark line drawn
    along the lips where the carried and the drawn outlines round differently)."""
    alignment, grid = align(astronaut_track, 256), 64
    points = astronaut_track.landmarks[:, :2]
    flow = np.zeros((grid, grid, 2), np.float32)
    flow[..., 1] = shift  # crop pixels, backward: the output shows what lies this far below
    layers = FaceLayers(flow, lattice_mask(alignment.points_to_crop(points) * (grid - 1) / 255, grid), None)
    moved = cv2.invertAffineTransform(alignment.to_crop)[:, :2] @ (0.0, shift)  # the same, in frame pixels
    inner, outer = points[list(mesh.INNER_LIP_CONTOUR)], points[list(mesh.OUTER_LIP_CONTOUR)]
    warped = warp_face(astronaut, layers, alignment)
    filled = warp_face(astronaut, layers, alignment, MouthChange(inner, inner - moved, outer))
    assert np.abs(filled.astype(int) - warped).max() <= 8


def test_neutral_closes_a_grin_over_the_teeth(still_tracker, astronaut, astronaut_track):
    # The astronaut grins with her teeth showing; "neutral" must close the lips and drop the corners.
    out, plan = edit(astronaut, astronaut_track, "neutral")
    assert plan.current[au.AU_NUMBERS.index(12)].min() > 0.5  # the smile was seen
    assert plan.lip_gap_change < -0.05  # and the grin's open posture
    after = still_tracker.track(out)
    assert corner_lift(after) < corner_lift(astronaut_track) - 0.03
    assert inner_gap(after) < 0.85 * inner_gap(astronaut_track)
    lips = astronaut_track.landmarks[list(mesh.INNER_LIP_CONTOUR), :2].round().astype(np.int32)
    mouth = np.zeros(astronaut.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [lips], 1)
    teeth_before = (astronaut[mouth > 0].min(axis=1) > 170).sum()  # bright, unsaturated: teeth
    teeth_after = (out[mouth > 0].min(axis=1) > 170).sum()
    assert teeth_after < 0.8 * teeth_before


def test_a_mouth_that_talks_with_the_lips_apart_is_not_closed(still_tracker):
    """Many people talk for seconds without their lips meeting. Without a smile that open posture
    is speech, not an expression: "neutral" must leave it (it used to shut such mouths by up to
    0.2 IOD) and the lips must part exactly as tracked; an emotion that opens the mouth (surprise)
    counts it towards its own opening and never closes it either."""
    from livemotion.io.demo import neutral_portrait

    calm = still_tracker.track(neutral_portrait())
    assert isinstance(calm, FaceTrack)
    library = load_library()
    surprise = library.opening[library.emotion_index("surprised")]
    controllers = {emotion: ExpressionController(ExpressionRequest(emotion, active=True))
                   for emotion in ("neutral", "surprised")}
    for index in range(90):  # 3 s at 30 fps, 4 syllables a second, the lips 0.14-0.26 apart throughout
        opening = 0.2 + 0.06 * np.sin(2 * np.pi * 4 * index / 30)
        landmarks = calm.landmarks.copy()
        landmarks[:, :2] += to_image(calm, opening * library.speech)
        track = dataclasses.replace(calm, landmarks=landmarks)
        neutral, surprised = (controller.plan(track, index / 30) for controller in controllers.values())
        if index >= 30:
            assert abs(neutral.lip_gap_change) < 0.005
            gap = neutral.target[LOWER_INNER_LIP, 1] - neutral.target[UPPER_INNER_LIP, 1]
            assert gap == pytest.approx(landmarks[LOWER_INNER_LIP, 1] - landmarks[UPPER_INNER_LIP, 1], abs=0.5)
            assert -0.005 < surprised.lip_gap_change <= surprise + 1e-6


def test_sad_lowers_the_corners(still_tracker, astronaut, astronaut_track):
    out, _ = edit(astronaut, astronaut_track, "sad")
    after = still_tracker.track(out)
    assert corner_lift(after) < corner_lift(astronaut_track) - 0.05


def test_angry_pulls_the_lips_back_from_the_teeth_with_the_jaw_still(astronaut_track):
    """The library's parting for angry (measured: MEAD's angry speakers part their lips beyond what
    their jaw explains) opens the inner lips by that much; the chin does not move for it."""
    library = load_library()
    assert library.parting[library.emotion_index("angry")] > 0.03

    def plan(parting):
        controller = ExpressionController(ExpressionRequest("angry", active=True), fade_step=1.0, transition=0.0,
                                          library=dataclasses.replace(library, parting=parting))
        return controller.plan(astronaut_track)

    parted, closed = plan(library.parting), plan(np.zeros_like(library.parting))
    change = (parted.target - closed.target) / astronaut_track.interocular  # a still: the whole parting applies
    wanted = library.parting[library.emotion_index("angry")]
    assert change[LOWER_INNER_LIP, 1] - change[UPPER_INNER_LIP, 1] == pytest.approx(wanted, rel=0.1)
    assert abs(change[mesh.CHIN]).max() < 0.1 * wanted
    assert parted.lip_gap_change == pytest.approx(closed.lip_gap_change + wanted, rel=0.05)


def test_the_parting_scales_the_speakers_articulation_and_leaves_p_b_m_closed():
    """While talking, the lips' parting is none where they touch and grows in proportion over the
    speaker's range (a scaled articulation, not a step added to it)."""
    mouth = MouthPosture()
    for index, gap in enumerate(np.tile([0.02, 0.08, 0.14, 0.20, 0.14, 0.08], 5)):
        _, speaking = mouth(gap, index / 30)
    assert speaking == 1.0
    assert mouth.applied_opening(0.06, 0.02, speaking) == 0.0
    assert mouth.applied_opening(0.06, 0.5 * (mouth.closed + mouth.high), speaking) == pytest.approx(0.03)
    assert mouth.applied_opening(0.06, mouth.high + 0.05, speaking) == pytest.approx(0.06)


def test_a_shouted_emotion_scales_the_syllables_and_the_lips_still_close(still_tracker):
    """A profile measured on someone who shouts their anger (``speech_scale`` 2) opens each of the
    live syllables twice as far above the mouth's posture; where the lips meet they still meet."""
    from livemotion.io.demo import neutral_portrait

    calm = still_tracker.track(neutral_portrait())
    assert isinstance(calm, FaceTrack)
    library = load_library()
    angry = library.emotion_index("angry")
    scaled = dataclasses.replace(library, speech_scale=np.where(np.arange(len(library.emotions)) == angry, 2.0, 1.0))
    controllers = [ExpressionController(ExpressionRequest("angry", active=True), library=lib) for lib in (library, scaled)]
    for index in range(60):  # 2 s at 30 fps, 3 syllables a second, the lips meeting between them
        opening = 0.1 * max(0.0, np.sin(2 * np.pi * 3 * index / 30))
        landmarks = calm.landmarks.copy()
        landmarks[:, :2] += to_image(calm, opening * library.speech)
        track = dataclasses.replace(calm, landmarks=landmarks)
        plain, shouted = (controller.plan(track, index / 30) for controller in controllers)
        if index >= 30:  # the posture (the gap's 10th percentile over 1 s) is the lips meeting
            extra = shouted.lip_gap_change - plain.lip_gap_change
            assert extra == pytest.approx(opening, abs=0.01)
            if opening == 0.0:
                gaps = [plan.target[LOWER_INNER_LIP, 1] - plan.target[UPPER_INNER_LIP, 1] for plan in (plain, shouted)]
                assert gaps[1] == pytest.approx(gaps[0], abs=0.1)  # pixels


@pytest.mark.parametrize("emotion", ["happy", "surprised", "sad", "angry"])
def test_articulation_survives_an_emotion_on_the_talking_demo(tracker, emotion):
    """The demo clip's jaw_opening is the ground truth of its speech: the output's mouth must follow it."""
    pipeline = build_pipeline(ExpressionRequest(emotion, active=True), backend=torch_engine(), tracker=tracker)
    truth, gaps_in, gaps_out = [], [], []
    with FaceTracker() as judge:
        for frame in DemoSource(frames=60):
            out = pipeline.process(frame).output.image
            if frame.index >= 15:  # after the fade-in and the onset
                truth.append(jaw_opening(frame.index))
                gaps_in.append(inner_gap(judge.track(frame.image)))
                gaps_out.append(inner_gap(judge.track(out)))
    truth, gaps_in, gaps_out = np.asarray(truth), np.asarray(gaps_in), np.asarray(gaps_out)
    # As well as the tracker follows the input's mouth, it follows the output's. (Sad brings the
    # drawn lips 0.06 IOD together, which the warp delivers fully, and MediaPipe reads them less
    # steadily: r 0.91 against the input's 0.97; on 28 real clips dlib's articulation r for sad is 0.92.)
    assert np.corrcoef(truth, gaps_out)[0, 1] > np.corrcoef(truth, gaps_in)[0, 1] - 0.07
    closed = truth < 0.05  # the lips close between syllables in the input, so they must in the output
    assert gaps_out[closed].mean() < gaps_out[truth > 0.5].mean() - 0.05


def test_request_validation():
    fitted = ExpressionController().fitted
    for name in ("live", "happy@0.5", "no way"):
        with pytest.raises(InvalidRequest, match="unknown emotion"):
            ExpressionRequest(name, active=True)
    with pytest.raises(InvalidRequest, match="unknown emotion 'bored'.*`livemotion style` makes a style"):
        ExpressionRequest("bored", active=True).target(fitted)  # could be a style's name; the library has none
    for key in ("99", "X12", "12R", ""):
        with pytest.raises(InvalidRequest):
            au.au_vector({key: 0.5})
    for speech in ("25", "R26"):  # lips part and jaw drop carry speech: never requested
        with pytest.raises(InvalidRequest):
            ExpressionRequest("happy", aus={speech: 0.5})
    request = ExpressionRequest("happy", 1.0, {"12": 0.2}, active=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.intensity = 0.5  # type: ignore[misc]  # requests are replaced whole, never changed in place
    with pytest.raises(TypeError):
        request.aus["12"] = 0.9  # type: ignore[index]
    explicit = ExpressionRequest("happy", 1.0, {"12": 0.2, "R6": 0.0}, active=True).target(fitted).aus[0]
    row12, row6 = au.AU_NUMBERS.index(12), au.AU_NUMBERS.index(6)
    happy6 = fitted.aus[fitted.library.emotion_index("happy"), row6, 1]
    assert explicit[row12].tolist() == [0.2, 0.2] and explicit[row6].tolist() == [0.0, happy6]
