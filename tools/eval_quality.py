#!/usr/bin/env python3
"""Quality of the emotion edit, judged by models the project did not train.

    tools/eval_quality.py SOURCE... [--library FILE] [--emotions happy,sad] [--style NAME=EMOTION]
                          [--frames N] [--json OUT] [--png OUT] [--mouth-png OUT] [--mouth-model FILE]

SOURCE is a video file, ``demo``, or ``astronaut`` (the still portrait). Every target emotion
runs through the pipeline on each source; per emotion it reports:
  flip      share of judged frames whose FER2013 top class becomes the target (output)
  gain      FER2013 probability of the target class, output minus input
  identity  dlib face-embedding distance, input vs output (same person < 0.6), frame by frame;
            "unpaired" is the mean over every (output, input) pair of judged frames, the only way a
            real expression can be set beside it (its frames are other frames)
  artic r   correlation of the articulation component (dlib inner-lip gap minus its 1 s rolling
            10th percentile, the posture) input vs output: speech kept
  lips r    the same, of dlib's gap on the output against the gap the edit asked for (MediaPipe's
            on the input, plus the change the plan made to it): do the drawn lips open and close
            where the edit put them. Beside it, per clip, "judges agree": dlib's gap against
            MediaPipe's on the input itself, how far the two landmark models agree on this mouth's
            syllables at all (where they agree little, neither r can be read as speech lost)
  lips mp   lips r with MediaPipe as the judge: the output tracked anew (the tracker the edit runs
            on, a fresh instance) against the same asked gap
  detail    variance of the Laplacian in the face box, output / input (1.0 = no blur added)
  skin      the same without the eyes and the mouth (their openings as tracked in the input, widened
            by 0.12 IOD): what the edit redraws there (an eye's new white, a mouth's fill) has edges
            of its own, so this is the figure that says whether the skin kept its texture
  jitter    frame-to-frame acceleration of dlib's 68 points after the first 0.8 s, output / input
            (1.0 = the edit adds no shake; speech and head motion are in both)
  flicker   the mouth's flicker after the first 0.8 s: the mean |second temporal difference| of
            grey pixels in the mouth box (dlib's mouth points of the input, grown by a quarter of
            the mouth's width), output / input (1.0 = nothing flickers that the input's speech
            does not; a drawn mouth that changes from frame to frame on its own shows above it)
  ceiling   the same person's real expression, where a sibling clip shows it (MEAD naming:
            mead_W009_neutral.mp4 beside mead_W009_happy.mp4): its flip rate, target probability
            and unpaired identity distance to the edited clip's input frames (how far the person's
            own expression takes dlib's embedding; the input's own frames give the floor)
For "neutral" the gain is reported on "happy" (what neutral should remove from a smile).
Frames judged are spread over the clip after the first 0.8 s (the fade-in and onset).
Evaluate on people the library was not built from: ``--library`` takes one built without them.
``--style furious=angry`` also edits with the stored style ``furious`` and judges it as angry.
Needs the ``eval`` extra (./lm test installs it).
"""

from __future__ import annotations

import livemotion  # noqa: F401  (first: it sets the BLAS thread count before numpy loads OpenBLAS)

# isort: split
import argparse
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from livemotion.contrib.evaluation import FER_CLASS_OF, dlib_face, emotion_classifier, inner_lip_gap, landmark_jitter, to_json
from livemotion.expression.au import EMOTIONS
from livemotion.expression.controller import ExpressionRequest
from livemotion.expression.library import ExpressionLibrary, load_library
from livemotion.expression.measure import clip_label
from livemotion.expression.styles import attach_styles, list_styles
from livemotion.face.masks import disc_kernel
from livemotion.face.mesh import EYE_CORNERS, INNER_LIP_PAIRS, OUTER_LIP_CONTOUR
from livemotion.face.tracking import FaceTracker
from livemotion.io.demo import portrait
from livemotion.io.preview import face_tile
from livemotion.io.sources import open_source
from livemotion.render.compositing import EYE_OPENINGS
from livemotion.render.editor import ExpressionEditor
from livemotion.runtime.pipeline import build_pipeline
from livemotion.types import Box, FaceTrack, Frame, TrackResult

_SETTLE_S = 0.8  # fade-in (4 frames) + the 0.5 s onset: judge after this
_FEATURE_MARGIN = 0.12  # IODs around the eyes and lips left out of the skin's detail
# Issue 11's targets: the gain of the emotion's probability on a neutral talking face, and for
# "neutral" the fall of P(happy) on a smiling one (input P(happy) at least _SMILING).
GAIN_TARGETS = {"happy": 0.30, "sad": 0.30, "angry": 0.30, "surprised": 0.30, "fearful": 0.15, "disgusted": 0.15}
NEUTRAL_TARGET, _SMILING = -0.40, 0.4


@dataclass
class Clip:
    """A source, its frames and everything measured on the unedited frames."""

    name: str
    frames: list[Frame]
    samples: list[int]  # judged frames
    boxes: list[Box | None]  # MediaPipe face box per frame (dlib's landmarks are placed in it)
    fer_boxes: dict[int, tuple[int, int, int, int]]  # Haar box per judged frame (the FER preprocessing)
    fps: float
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 68, 2)))  # (T, 68, 2) dlib's, NaN: no face
    gaps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tracked_gaps: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,) MediaPipe's (``tracked_lip_gap``), NaN: no face
    flicker: float | None = None  # the input's mouth flicker (``mouth_flicker``), what the output's is set beside
    probabilities: dict[int, dict[str, float]] = field(default_factory=dict)
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)
    detail: dict[int, float] = field(default_factory=dict)
    features: dict[int, np.ndarray] = field(default_factory=dict)  # (H, W) bool eyes and mouth, per judged frame
    skin_detail: dict[int, float] = field(default_factory=dict)


def load_frames(source: str, limit: int | None) -> tuple[list[Frame], float]:
    if source == "astronaut":
        return [Frame(portrait(), 0, Fraction(0), 0.0)], 25.0
    opened = open_source(source)
    try:
        frames = []
        for frame in opened:
            if limit is not None and len(frames) >= limit:
                break
            frames.append(frame)
        return frames, float(getattr(opened, "fps", 25.0))
    finally:
        opened.close()


def face_detail(image: np.ndarray, box: Box, left_out: np.ndarray | None = None) -> float:
    """Variance of the Laplacian of the grey face box: how much fine detail it holds; without the
    pixels of ``left_out`` ((H, W) bool over the image) where given."""
    y0, y1, x0, x1 = int(max(box.y0, 0)), int(box.y1), int(max(box.x0, 0)), int(box.x1)
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    laplacian = cv2.Laplacian(grey, cv2.CV_64F)
    return float((laplacian if left_out is None else laplacian[~left_out[y0:y1, x0:x1]]).var())


def eyes_and_mouth(shape: tuple[int, ...], track: FaceTrack) -> np.ndarray:
    """(H, W) bool: the eye openings and the lips as tracked, widened by ``_FEATURE_MARGIN`` IOD
    (the edit moves the lids and the mouth by less than that)."""
    mask = np.zeros(shape[:2], np.uint8)
    points = track.landmarks[:, :2]
    for polygon in (*EYE_OPENINGS, OUTER_LIP_CONTOUR):
        cv2.fillPoly(mask, [np.round(points[list(polygon)]).astype(np.int32)], 1)
    radius = max(1, int(round(_FEATURE_MARGIN * track.interocular)))
    return cv2.dilate(mask, disc_kernel(radius)) > 0


def articulation(gaps: np.ndarray, fps: float) -> np.ndarray:
    """The fast part of a mouth-opening series: minus its rolling 10th percentile over ~1 s (the posture)."""
    half = max(1, int(round(fps / 2)))
    posture = np.array([np.nanpercentile(gaps[max(0, i - half): i + half + 1], 10) for i in range(len(gaps))])
    return gaps - posture


def judge(clip: Clip, outputs: list[np.ndarray]) -> dict[int, dict[str, float]]:
    classifier = emotion_classifier()
    return {i: classifier.probabilities(outputs[i], box) for i, box in clip.fer_boxes.items()}


def measure_clip(name: str, frames: list[Frame], fps: float, samples_wanted: int) -> Clip:
    classifier, dlib = emotion_classifier(), dlib_face()
    first = min(int(_SETTLE_S * fps), len(frames) - 1)
    samples = sorted(set(np.linspace(first, len(frames) - 1, min(samples_wanted, len(frames))).round().astype(int)))
    tracks = track_all([f.image for f in frames])
    boxes = [t.box if isinstance(t, FaceTrack) else None for t in tracks]
    fer_boxes = {}
    for i in samples:
        haar = classifier.face_box(frames[i].image, near=boxes[i])
        b = boxes[i]
        if haar is None and b is not None:  # Haar missed: fall back to the MediaPipe box
            haar = (int(b.x0), int(b.y0), int(b.x1 - b.x0), int(b.y1 - b.y0))
        if haar is not None:
            fer_boxes[i] = haar
    clip = Clip(name, frames, samples, boxes, fer_boxes, fps)
    clip.points = dlib_points([f.image for f in frames], boxes)
    clip.gaps = lip_gaps(clip.points)
    clip.tracked_gaps = tracked_gaps(tracks)
    clip.flicker = mouth_flicker([f.image for f in frames], clip.points, int(_SETTLE_S * fps))
    clip.probabilities = judge(clip, [f.image for f in frames])
    for i in fer_boxes:
        box, track = boxes[i], tracks[i]
        if box is not None and isinstance(track, FaceTrack):
            clip.embeddings[i] = dlib.embedding(frames[i].image, box)
            clip.detail[i] = face_detail(frames[i].image, box)
            clip.features[i] = eyes_and_mouth(frames[i].image.shape, track)
            clip.skin_detail[i] = face_detail(frames[i].image, box, clip.features[i])
    return clip


def dlib_points(images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
    """(T, 68, 2) dlib's landmarks of each image in its face box, NaN where there is none."""
    dlib = dlib_face()
    return np.array([dlib.landmarks68(img, b) if b else np.full((68, 2), np.nan) for img, b in zip(images, boxes)])


def lip_gaps(points: np.ndarray) -> np.ndarray:
    """(T,) the inner-lip gap of each frame's (68, 2) points (NaN where none)."""
    return np.array([inner_lip_gap(p) for p in points])


def tracked_lip_gap(points: np.ndarray) -> float:
    """The inner-lip gap of MediaPipe's (NUM_LANDMARKS, 2) points, in interocular distances (outer eye corners)."""
    upper, lower = (list(side) for side in zip(*INNER_LIP_PAIRS))
    width = float(np.linalg.norm(points[EYE_CORNERS[0][0]] - points[EYE_CORNERS[1][0]]))
    return float(np.linalg.norm(points[upper] - points[lower], axis=1).mean()) / max(width, 1e-6)


def track_all(images: list[np.ndarray]) -> list[TrackResult]:
    """MediaPipe's reading of each of ``images`` by a fresh tracker (as a video; one image: a still)."""
    with FaceTracker(static_images=len(images) == 1) as tracker:
        return [tracker.track(image) for image in images]


def tracked_gaps(tracks: list[TrackResult]) -> np.ndarray:
    """(T,) the inner-lip gap (``tracked_lip_gap``) of each of ``track_all``'s readings, NaN where no face."""
    return np.array([tracked_lip_gap(t.landmarks[:, :2]) if isinstance(t, FaceTrack) else np.nan for t in tracks])


def articulation_agreement(first: np.ndarray, second: np.ndarray, fps: float) -> float | None:
    """Correlation of two gap series' articulation components (``articulation``), where both are measured."""
    a, b = articulation(first, fps), articulation(second, fps)
    valid = np.isfinite(a) & np.isfinite(b)
    if valid.sum() <= 10 or np.std(a[valid]) < 1e-6 or np.std(b[valid]) < 1e-6:
        return None
    return float(np.corrcoef(a[valid], b[valid])[0, 1])


def mouth_flicker(images: list[np.ndarray], points: np.ndarray, start: int) -> float | None:
    """Mean |I(t+1) - 2 I(t) + I(t-1)| over the grey mouth box of frame t (dlib's 20 mouth points of
    ``points`` (T, 68, 2), grown by a quarter of the mouth's width), over the frames from ``start``
    on whose neighbours have a face too; None when fewer than 3 are left."""
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) for image in images]
    changes = []
    for t in range(max(start, 1), len(images) - 1):
        mouth = points[t, 48:68]
        if not np.isfinite(points[t - 1: t + 2]).all():
            continue
        margin = 0.25 * float(np.ptp(mouth[:, 0]))
        x0, y0 = np.maximum(np.floor(mouth.min(axis=0) - margin).astype(int), 0)
        x1, y1 = np.ceil(mouth.max(axis=0) + margin).astype(int)
        second = grey[t + 1][y0:y1, x0:x1] - 2.0 * grey[t][y0:y1, x0:x1] + grey[t - 1][y0:y1, x0:x1]
        if second.size:
            changes.append(float(np.abs(second).mean()))
    return float(np.mean(changes)) if len(changes) >= 3 else None


def added_jitter(points_in: np.ndarray, points_out: np.ndarray, start: int) -> float | None:
    """Frame-to-frame acceleration of the output's landmarks over the input's, from frame ``start``
    on (both (T, P, 2)), over the frames where both have a face; None when fewer than 3 are left."""
    seen = np.isfinite(points_in).all(axis=(1, 2)) & np.isfinite(points_out).all(axis=(1, 2))
    seen[:start] = False
    if seen.sum() < 3:
        return None
    before = landmark_jitter(points_in[seen], 1.0)
    return landmark_jitter(points_out[seen], 1.0) / before if before > 0 else None


MOUTH_MODEL: str | None = None  # --mouth-model: the learned mouth draws the mouth (None: the warp)
TAKES_MOUTH = "auto"  # where a profile's takes show the person's own mouth (``run --mouth``; eval_calibration.py)


def run_edit(clip: Clip, emotion: str, intensity: float, library: ExpressionLibrary) -> tuple[list[np.ndarray], np.ndarray]:
    """The edited frames, and (T,) the change of the inner-lip gap each frame's plan asked for
    (``tracked_lip_gap`` of its target minus its source; NaN where no face was edited)."""
    still = len(clip.frames) == 1  # a still is edited at full strength, without a fade-in or onset
    outputs, asked = [], []
    with build_pipeline(ExpressionRequest(emotion, intensity, active=True), library=library, backend="torch",
                        static_images=still, fade_step=1.0 if still else 0.25, transition=0.0 if still else 0.5,
                        mouth_model=MOUTH_MODEL,
                        takes_mouth=TAKES_MOUTH if library.keeps_mouth_frames and not MOUTH_MODEL else "warp") as pipeline:
        editor = pipeline.editor
        for frame in clip.frames:
            if isinstance(editor, ExpressionEditor):
                editor.last_plan = None
            outputs.append(pipeline.process(frame).output.image)
            plan = editor.last_plan if isinstance(editor, ExpressionEditor) else None
            asked.append(np.nan if plan is None else tracked_lip_gap(plan.target) - tracked_lip_gap(plan.source[:, :2]))
    return outputs, np.array(asked)


def flip_and_probability(probabilities: dict[int, dict[str, float]], fer_class: str) -> tuple[float, float]:
    values = list(probabilities.values())
    flips = [max(p, key=p.__getitem__) == fer_class for p in values]
    return float(np.mean(flips)), float(np.mean([p[fer_class] for p in values]))


def evaluate_emotion(clip: Clip, emotion: str, intensity: float, library: ExpressionLibrary,
                     judged_as: str | None = None) -> dict:
    """``judged_as``: the emotion the judge should read (a style's emotion), default ``emotion``."""
    dlib = dlib_face()
    outputs, asked_change = run_edit(clip, emotion, intensity, library)
    result: dict = {"emotion": emotion}
    fer_class = FER_CLASS_OF.get(judged_as or emotion)
    judged = judge(clip, outputs)
    if fer_class is not None and judged:
        shown = "happy" if emotion == "neutral" else fer_class
        flip, after = flip_and_probability(judged, fer_class)
        _, before = flip_and_probability(clip.probabilities, shown)
        result.update(flip_rate=flip, gain_class=shown, probability_input=before,
                      probability_output=flip_and_probability(judged, shown)[1], gain=None)
        result["gain"] = result["probability_output"] - before
    edited = {i: dlib.embedding(outputs[i], clip.boxes[i]) for i in clip.embeddings}  # type: ignore[arg-type]
    distances = [float(np.linalg.norm(edited[i] - emb)) for i, emb in clip.embeddings.items()]
    result["identity_distance"] = float(np.mean(distances)) if distances else None
    result["identity_unpaired"] = unpaired_distance(edited, clip.embeddings)
    details = [face_detail(outputs[i], clip.boxes[i]) / d for i, d in clip.detail.items() if d > 0]  # type: ignore[arg-type]
    result["detail_kept"] = float(np.mean(details)) if details else None
    skin = [face_detail(outputs[i], clip.boxes[i], clip.features[i]) / d  # type: ignore[arg-type]
            for i, d in clip.skin_detail.items() if d > 0]
    result["skin_detail_kept"] = float(np.mean(skin)) if skin else None
    if len(clip.frames) > 10:
        points = dlib_points(outputs, clip.boxes)
        start = int(_SETTLE_S * clip.fps)
        result["jitter"] = added_jitter(clip.points, points, start)
        flicker = mouth_flicker(outputs, clip.points, start)
        if clip.flicker and flicker is not None:
            result["mouth_flicker"] = flicker / clip.flicker
        gaps = lip_gaps(points)
        asked_gaps = clip.tracked_gaps + asked_change
        for key, agreement in (("articulation_r", articulation_agreement(clip.gaps, gaps, clip.fps)),
                               ("lips_follow_r", articulation_agreement(gaps, asked_gaps, clip.fps)),
                               ("lips_tracked_r", articulation_agreement(tracked_gaps(track_all(outputs)), asked_gaps,
                                                                         clip.fps))):
            if agreement is not None:
                result[key] = agreement
    apex = clip.samples[len(clip.samples) // 2]
    result["_apex"] = outputs[apex]
    return result


def unpaired_distance(ours: dict[int, np.ndarray], theirs: dict[int, np.ndarray]) -> float | None:
    """Mean embedding distance over every pair of frames, one from each (the same frame never pairs with itself)."""
    distances = [float(np.linalg.norm(a - b)) for i, a in ours.items() for j, b in theirs.items()
                 if not (ours is theirs and i == j)]
    return float(np.mean(distances)) if distances else None


def real_expression_ceiling(source: str, emotion: str, frames_limit: int | None, samples: int,
                            edited: Clip) -> dict | None:
    """The same person's own expression, judged the same way: a sibling clip named like the source
    (``edited``: the clip the edit ran on, whose input frames its identity distance is taken to)."""
    label = clip_label(source)
    fer_class = FER_CLASS_OF.get(emotion)
    if label is None or fer_class is None or emotion == "neutral":
        return None
    siblings = [p for p in Path(source).parent.glob("*") if clip_label(p) == (label[0], emotion)]
    if not siblings:
        return None
    frames, fps = load_frames(str(siblings[0]), frames_limit)
    real = measure_clip(siblings[0].name, frames, fps, samples)
    flip, probability = flip_and_probability(real.probabilities, fer_class)
    return {"clip": siblings[0].name, "flip_rate": flip, "probability": probability,
            "identity_unpaired": unpaired_distance(real.embeddings, edited.embeddings)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="video file(s), 'demo' or 'astronaut'")
    parser.add_argument("--library", help="expression library to edit with (default: the shipped one)")
    parser.add_argument("--emotions", default=",".join(EMOTIONS), help="comma-separated (default: all eight)")
    parser.add_argument("--style", action="append", default=[], metavar="NAME=EMOTION",
                        help="a stored style (livemotion style) to evaluate too, judged as EMOTION; repeatable")
    parser.add_argument("--drive", metavar="MEAD_DIR", nargs="?", const=str(Path(__file__).resolve().parents[2] / "shared"
                        / "media" / "expressions"), help="also judge animate (the astronaut) and mimic (the MEAD "
                        "clips in MEAD_DIR driving each other; default: shared media), as tools/eval_drive.py does")
    parser.add_argument("--intensity", type=float, default=1.0, help="emotion intensity 0..1 (default 1)")
    parser.add_argument("--frames", type=int, help="use at most N frames of each source")
    parser.add_argument("--samples", type=int, default=8, help="frames judged per clip (default 8)")
    parser.add_argument("--json", help="write the results as JSON here")
    parser.add_argument("--png", help="write the contact sheet (a row per source: input | each emotion, at apex)")
    parser.add_argument("--mouth-png", help="write the mouths at 4x (a row per source: input | each emotion, at apex)")
    parser.add_argument("--mouth-model", help="edit with this learned mouth (livemotion train-mouth) instead of the warp's")
    args = parser.parse_args(argv)
    global MOUTH_MODEL
    MOUTH_MODEL = args.mouth_model
    emotions = [e.strip() for e in args.emotions.split(",") if e.strip()]
    styles = dict(item.split("=", 1) for item in args.style if "=" in item)
    unknown = [e for e in [*emotions, *styles.values()] if e not in EMOTIONS]
    if unknown or len(styles) != len(args.style):
        parser.error(f"unknown emotion(s) {', '.join(unknown)}: use {', '.join(EMOTIONS)}; --style NAME=EMOTION")
    stored = {style.name: style for style in list_styles()}
    missing = [name for name in styles if name not in stored]
    if missing:
        parser.error(f"no stored style {', '.join(missing)}: make it with `livemotion style CLIP --name NAME`")
    library = attach_styles(load_library(args.library), [stored[name] for name in styles])
    emotions += list(styles)

    report: dict = {"library": args.library or "shipped", "library_sources": list(library.sources), "clips": []}
    sheet, mouths = [], []
    for source in args.sources:
        entry, (row, mouth_row) = evaluate_source(source, emotions, args.intensity, library, args.frames,
                                                  args.samples, judged_as=styles)
        report["clips"].append(entry)
        sheet.append(row)
        mouths.append(mouth_row)
    report["summary"] = summarise(report["clips"], emotions)
    print("\nmean over sources")
    for emotion, row in report["summary"].items():
        print(f"{emotion:<13}" + "".join(f"{key}={value if isinstance(value, int) else _cell(value, 0)} "
                                         for key, value in row.items()))
    if args.drive:
        from eval_drive import evaluate_drive  # a sibling script, which imports this one

        report["drive"], drive_rows = evaluate_drive(Path(args.drive))
        sheet += drive_rows
    save(report, sheet, args.json, args.png)
    save(report, mouths, None, args.mouth_png)
    return 0


def mouth_box(points: np.ndarray | None, face: Box | None) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around the mouth: dlib's mouth points (68-point ``points``, NaN: no face)
    grown by 30 % of their width each side, else the lower middle of the ``face`` box."""
    if points is not None and np.isfinite(points[48:68]).all():
        lips = points[48:68]
        (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
        cx, cy, width = (x0 + x1) / 2, (y0 + y1) / 2, 1.6 * (x1 - x0)
    elif face is not None:
        cx, cy, width = (face.x0 + face.x1) / 2, face.y0 + 0.8 * (face.y1 - face.y0), 0.6 * (face.x1 - face.x0)
    else:
        return None
    half_w, half_h = width / 2, 0.35 * width
    return int(cx - half_w), int(cy - half_h), int(np.ceil(cx + half_w)), int(np.ceil(cy + half_h))


def mouth_tile(image: np.ndarray, box: tuple[int, int, int, int] | None, label: str, scale: int = 4) -> np.ndarray:
    """The mouth in ``box`` at ``scale`` x, each pixel a block (no smoothing that would hide what the
    edit drew), a label above; a blank tile where no face was found."""
    if box is None:
        return np.full((20 + 40 * scale, 56 * scale, 3), 255, np.uint8)
    x0, y0, x1, y1 = box
    padded = cv2.copyMakeBorder(image, 0, max(0, y1 - image.shape[0]), 0, max(0, x1 - image.shape[1]),
                                cv2.BORDER_REPLICATE)[max(y0, 0):y1, max(x0, 0):x1]
    tile = cv2.resize(padded, (padded.shape[1] * scale, padded.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    labelled = np.vstack([np.full((20, tile.shape[1], 3), 255, np.uint8), tile])
    cv2.putText(labelled, label, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return labelled


def save(report: dict, sheet: list[np.ndarray], json_path: str | None, png_path: str | None) -> None:
    """The report as JSON and the contact-sheet rows (one per source) stacked into a PNG, where asked."""
    if json_path:
        Path(json_path).write_text(to_json(report))
    if png_path:
        width = max(row.shape[1] for row in sheet)
        padded = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in sheet]
        cv2.imwrite(png_path, cv2.cvtColor(np.vstack(padded), cv2.COLOR_RGB2BGR))


def evaluate_source(source: str, emotions: list[str], intensity: float, library: ExpressionLibrary,
                    frames_limit: int | None, samples: int, ceiling_of: str | None = None,
                    judged_as: dict[str, str] | None = None) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Every emotion on one source: its report entry (printed as a table) and its contact-sheet rows
    (the faces; the mouths at 4x).
    ``ceiling_of``: the clip whose siblings show the person's real expressions (default ``source``);
    ``judged_as``: {style: the emotion the judge should read}."""
    judged_as = judged_as or {}
    frames, fps = load_frames(source, frames_limit)
    clip = measure_clip(Path(source).name, frames, fps, samples)
    results = []
    for emotion in emotions:
        judged = judged_as.get(emotion, emotion)
        result = evaluate_emotion(clip, emotion, intensity, library, judged)
        result["ceiling"] = real_expression_ceiling(ceiling_of or source, judged, frames_limit, samples, clip)
        results.append(result)
    apex = clip.samples[len(clip.samples) // 2]
    shown = [(frames[apex].image, f"{clip.name[:14]} input")] + [(r.pop("_apex"), r["emotion"]) for r in results]
    row = np.hstack([face_tile(image, clip.boxes[apex], label) for image, label in shown])
    mouth = mouth_box(clip.points[apex] if len(clip.points) else None, clip.boxes[apex])
    mouth_row = np.hstack([mouth_tile(image, mouth, label) for image, label in shown])
    spread = unpaired_distance(clip.embeddings, clip.embeddings)
    agree = articulation_agreement(clip.gaps, clip.tracked_gaps, fps) if len(frames) > 10 else None
    print(f"\n{source} ({len(frames)} frames, {len(clip.fer_boxes)} judged; identity unpaired among the input's "
          f"own frames {_cell(spread, 0)}; judges agree on its syllables {_cell(agree, 0)})")
    print(f"{'emotion':<13}{'flip':>6}{'P in':>7}{'P out':>7}{'gain':>7}{'ident':>7}{'unpair':>7}{'artic r':>9}"
          f"{'lips r':>8}{'lips mp':>8}"
          f"{'detail':>8}{'skin':>6}{'jitter':>8}{'flicker':>8}{'real flip':>11}{'real P':>8}{'real id':>8}")
    for r in results:
        ceiling = r["ceiling"] or {}
        print(f"{r['emotion']:<13}{_cell(r.get('flip_rate'), 6)}{_cell(r.get('probability_input'), 7)}"
              f"{_cell(r.get('probability_output'), 7)}{_cell(r.get('gain'), 7, '{:+.2f}')}"
              f"{_cell(r.get('identity_distance'), 7)}{_cell(r.get('identity_unpaired'), 7)}"
              f"{_cell(r.get('articulation_r'), 9, '{:.3f}')}{_cell(r.get('lips_follow_r'), 8)}"
              f"{_cell(r.get('lips_tracked_r'), 8)}"
              f"{_cell(r.get('detail_kept'), 8)}"
              f"{_cell(r.get('skin_detail_kept'), 6)}{_cell(r.get('jitter'), 8)}{_cell(r.get('mouth_flicker'), 8)}"
              f"{_cell(ceiling.get('flip_rate'), 11)}{_cell(ceiling.get('probability'), 8)}"
              f"{_cell(ceiling.get('identity_unpaired'), 8)}")
    entry = {"source": source, "frames": len(frames), "judged": len(clip.fer_boxes), "identity_input_spread": spread,
             "judges_agree_r": agree, "emotions": results}
    return entry, (row, mouth_row)


def summarise(clips: list[dict], emotions: list[str]) -> dict[str, dict[str, float | int | None]]:
    """Per emotion over the sources: the means, and how many clips read clearly (flip rate ≥ 0.5)
    and reach issue 11's target (for "neutral": of the clips that start smiling), worst cases beside."""
    summary: dict[str, dict[str, float | int | None]] = {}
    for emotion in emotions:
        rows = [r for c in clips for r in c["emotions"] if r["emotion"] == emotion]
        measured = {key: [r[key] for r in rows if r.get(key) is not None]
                    for key in ("flip_rate", "gain", "identity_distance", "articulation_r", "lips_follow_r", "lips_tracked_r",
                                "detail_kept", "skin_detail_kept", "jitter", "mouth_flicker")}
        entry: dict[str, float | int | None] = {key: float(np.mean(v)) if v else None for key, v in measured.items()}
        entry["clips"] = len(rows)
        entry["clips_flip_half"] = sum(flip >= 0.5 for flip in measured["flip_rate"])
        if emotion in GAIN_TARGETS:
            entry["clips_at_target"] = sum(gain >= GAIN_TARGETS[emotion] for gain in measured["gain"])
        elif emotion == "neutral":
            smiling = [r["gain"] for r in rows if r.get("gain") is not None and r["probability_input"] >= _SMILING]
            entry["clips_smiling"], entry["clips_at_target"] = len(smiling), sum(g <= NEUTRAL_TARGET for g in smiling)
        for key, worst in (("articulation_r", min), ("lips_follow_r", min), ("lips_tracked_r", min), ("detail_kept", min),
                           ("skin_detail_kept", min), ("identity_distance", max), ("jitter", max), ("mouth_flicker", max)):
            entry[f"{key}_{worst.__name__}"] = float(worst(measured[key])) if measured[key] else None
        summary[emotion] = entry
    return summary


def _cell(value: float | None, width: int, fmt: str = "{:.2f}") -> str:
    return (fmt.format(value) if value is not None else "-").rjust(width)


if __name__ == "__main__":
    sys.exit(main())
