"""Measuring expressions on real clips: the expression library, calibration profiles and styles are made here.

Each labelled clip is tracked (``measure_clip``); each person's emotion clips are compared with
their own neutral clip and the people averaged (``measure_people``, ``build_library``). What is
measured is described in ``library``. Offline and slow (every frame of every clip is tracked);
the live path only reads the result.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InvalidRequest, SourceError
from ..face.alignment import MOUTH_PATCH, Alignment, align, crop_placement, engine_points, mouth_patch
from ..face.canonical import canonical_landmarks, inner_lip_gap, jaw_opening
from ..face.mesh import NUM_LANDMARKS, OUTER_LIP_CONTOUR
from ..face.tracking import tracked_frames
from ..types import FaceTrack
from .library import (
    EMOTION_WORDS,
    GRID,
    LIBRARY_EMOTIONS,
    ExpressionLibrary,
    lattice_positions,
    region_masks,
    skin_mask,
    template_lattice,
    template_to_crop,
)

_WORD_ENDINGS = "(?:d|ed|ful|ness|uous)?"  # surprise-d, disgust-ed, fear-ful, sad-ness, contempt-uous
_POSTURE_QUANTILE = 10  # percentile of the inner-lip gap taken as a clip's posture (speech at its least open)
# Emotions whose lips' parting the library keeps, by what the judge said on the 28 talking clips
# (README, "Quality"): angry's read more angry on 22 of them and less on 1. Happy's read *less*
# happy (13 down, 9 up; on profiles too, with the person's own teeth); surprised, fearful, sad and
# disgusted moved the judge by under 0.02 while costing articulation.
PARTED = ("angry",)
# How much larger a person's syllables are in an emotion than in neutral talk, kept within this
# range: W009 shouts her anger (x1.9) and mutters her sadness (x0.64); beyond x2 the warp's lips turn rubbery.
SPEECH_SCALE_RANGE = (0.5, 2.0)
_EXEMPLAR_QUANTILE = 60  # how strong a frame of a take a profile shows (percentile of the emotion's motion)
# A profile keeps this many frames of each take for the mouth, from its least to its most dropped
# jaw: the edit shows the two whose jaws bracket the edited one (``ExpressionLibrary.mouth_exemplars``).
MOUTH_EXEMPLARS = 6
# IODs kept around the lips in each: what the edit shows of it (``render.compositing.mouth_exemplar_mask``)
# after the flow has carried its lips onto the edited ones
_MOUTH_EXEMPLAR_MARGIN = 0.6
_SHADING_LIMIT = 0.35  # largest |log ratio|: a crease darkens skin by up to ~30 %, not more


@dataclass(frozen=True)
class ClipMeasure:
    """One labelled clip, tracked: its person, its label and per-frame measurements."""

    path: str
    person: str
    emotion: str  # "neutral" or one of LIBRARY_EMOTIONS
    canonical: np.ndarray  # (F, NUM_LANDMARKS, 2)
    luminance: np.ndarray  # (F, GRID, GRID) float32 0..255 on the template lattice (NaN: off the frame)
    mouths: np.ndarray  # (F, *MOUTH_PATCH, 3) uint8 the mouth region per frame (F = 0 unless asked for)
    faces: np.ndarray  # (F, size, size, 3) uint8 the aligned face crop per frame (F = 0 unless asked for)
    face_points: np.ndarray  # (F, NUM_LANDMARKS, 2) float32 its landmarks, crop pixels


def clip_label(path: str | Path) -> tuple[str, str] | None:
    """(person, emotion) from a clip's file name, or None when it names no known emotion.

    The emotion is a word of its own between ``_ - .`` or spaces (mead_W009_sad, anna-fearful-2),
    so that a name that merely starts like one (sadtalker_...) is not taken for it."""
    tokens = [token for token in re.split(r"[_\-. ]+", Path(path).stem.lower()) if token]
    for emotion, words in {"neutral": ("neutral",), **EMOTION_WORDS}.items():
        for index, token in enumerate(tokens):
            if any(re.fullmatch(rf"{word}{_WORD_ENDINGS}", token) for word in words):
                return "_".join(tokens[:index] + tokens[index + 1:]), emotion
    return None


def measure_clip(path: str | Path, template: np.ndarray | None, size: int = 256, max_frames: int = 150,
                 label: tuple[str, str] | None = None, mouths: bool = False) -> ClipMeasure:
    """Track ``path`` and measure every frame with a face: canonical landmarks and, given a
    ``template``, the luminance carried onto its lattice (else an empty array); with ``mouths``,
    the mouth region of every frame. ``label`` (person, emotion) defaults to the file name's."""
    label = label or clip_label(path)
    if label is None:
        raise InvalidRequest(f"{path}: the file name names no emotion ({', '.join(('neutral', *LIBRARY_EMOTIONS))})")
    template_points = None if template is None else engine_points(template_to_crop(template, size))
    canonical, luminance, patches, faces, face_points = [], [], [], [], []
    for frame, track in tracked_frames(path, max_frames):
        canonical.append(canonical_landmarks(track))
        crop = align(track, size)
        if template_points is not None:
            luminance.append(_lattice_luminance(frame.image, track, crop, template_points))
        if mouths:
            patches.append(mouth_patch(frame.image, track.landmarks))
            faces.append(cv2.warpAffine(frame.image, crop.to_crop, (size, size), flags=cv2.INTER_LANCZOS4))
            face_points.append(crop.points_to_crop(track.landmarks[:, :2]).astype(np.float32))
    if len(canonical) < 10:
        raise SourceError(f"{path}: a face was found in only {len(canonical)} frames; a library clip needs 10 or more")
    lattice_luminance = np.stack(luminance) if luminance else np.zeros((0, GRID, GRID), np.float32)
    mouth_patches = np.stack(patches) if patches else np.zeros((0, *MOUTH_PATCH, 3), np.uint8)
    crops = np.stack(faces) if faces else np.zeros((0, size, size, 3), np.uint8)
    crop_points = np.stack(face_points) if face_points else np.zeros((0, NUM_LANDMARKS, 2), np.float32)
    return ClipMeasure(str(path), label[0], label[1], np.stack(canonical), lattice_luminance, mouth_patches, crops,
                       crop_points)


def _lattice_luminance(image: np.ndarray, track: FaceTrack, alignment: Alignment, template_points: np.ndarray) -> np.ndarray:
    """The face's luminance carried onto the template lattice (backward flow template -> this face)."""
    size = alignment.size
    face_points = engine_points(alignment.points_to_crop(track.landmarks[:, :2]))
    crop_x, crop_y = lattice_positions(face_points, template_points, size)
    to_frame = cv2.invertAffineTransform(alignment.to_crop)
    frame_x = to_frame[0, 0] * crop_x + to_frame[0, 1] * crop_y + to_frame[0, 2]
    frame_y = to_frame[1, 0] * crop_x + to_frame[1, 1] * crop_y + to_frame[1, 2]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    step = abs(to_frame[0, 0]) * (size - 1) / (GRID - 1)  # frame pixels per lattice step
    grey = cv2.GaussianBlur(grey, (0, 0), max(0.5, 0.5 * step))  # no aliasing when sampling coarser than the frame
    return cv2.remap(grey, frame_x.astype(np.float32), frame_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


@dataclass(frozen=True)
class Posture:
    """A clip's face with speech factored out: its shape, its inner-lip gap and its luminance on the template lattice."""

    shape: np.ndarray  # (NUM_LANDMARKS, 2)
    gap: float
    luminance: np.ndarray  # (GRID, GRID)
    spread: float  # how far speech opens the lips beyond the posture: the gap's 10th-90th percentile range


def clip_posture(clip: ClipMeasure, speech: np.ndarray) -> Posture:
    """A clip's face with speech factored out: frame = posture + speech * (gap - posture gap)."""
    gaps = inner_lip_gap(clip.canonical)
    gap, top = (float(v) for v in np.percentile(gaps, (_POSTURE_QUANTILE, 100 - _POSTURE_QUANTILE)))
    shape = np.mean(clip.canonical - speech[None] * (gaps - gap)[:, None, None], axis=0)
    closest = clip.luminance[gaps <= np.percentile(gaps, 30)]  # shading at the least articulated frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # lattice points off the frame in every frame stay NaN
        return Posture(shape, gap, np.nanmedian(closest, axis=0), top - gap)


def lips_apart_of_jaw(neutral: ClipMeasure) -> Callable[[ClipMeasure], float]:
    """For a person's ``neutral`` talking clip: a function giving another clip's median inner-lip
    gap above what the jaw explains (the straight line of gap on jaw over the neutral clip),
    minus the neutral clip's own."""
    jaw, gaps = jaw_opening(neutral.canonical), inner_lip_gap(neutral.canonical)
    slope, intercept = np.polyfit(jaw, gaps, 1)

    def above(clip: ClipMeasure) -> float:
        return float(np.median(inner_lip_gap(clip.canonical) - (intercept + slope * jaw_opening(clip.canonical))))

    baseline = above(neutral)
    return lambda clip: above(clip) - baseline


def speech_basis(neutral: ClipMeasure) -> np.ndarray:
    """(NUM_LANDMARKS, 2) least-squares motion per unit of inner-lip gap over a neutral talking clip."""
    gaps = inner_lip_gap(neutral.canonical)
    centred = gaps - gaps.mean()
    shapes = neutral.canonical - neutral.canonical.mean(axis=0)
    return np.tensordot(centred, shapes, axes=1) / max(float(centred @ centred), 1e-9)


def log_ratio(expressive: np.ndarray, neutral: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """(GRID, GRID) smoothed log luminance ratio on skin; the lighting's slow variation removed.

    The ratio of a face to itself under the same light carries only what the expression changed
    (creases, bulges). Whatever varies slower than ~1 IOD (a lighting gradient, a slight pose
    change of the light's angle) is taken out by subtracting a wide skin-weighted blur.
    """
    ratio = np.log(np.nan_to_num(expressive, nan=128.0) + 8.0) - np.log(np.nan_to_num(neutral, nan=128.0) + 8.0)
    valid = skin * np.isfinite(expressive) * np.isfinite(neutral)
    ratio = np.where(valid > 0, ratio, 0.0).astype(np.float32)
    wide = GRID / 4.0 / 1.5  # ~1 IOD on the lattice

    def weighted_blur(values: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(values * valid, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(valid, (0, 0), sigma), 1e-3)

    detail = ratio - weighted_blur(ratio, wide)
    smooth = weighted_blur(detail, 0.8)
    return np.clip(smooth * valid, -_SHADING_LIMIT, _SHADING_LIMIT).astype(np.float32)


def _expression_amount(clip: ClipMeasure, rest: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(F,) how far each frame's face above the lips has moved from the neutral ``rest`` along the
    emotion's ``motion`` (both (NUM_LANDMARKS, 2) canonical)."""
    above = rest[:, 1] < rest[list(OUTER_LIP_CONTOUR), 1].min()
    return np.einsum("fnd,nd->f", clip.canonical[:, above] - rest[above], motion[above])


def _face_exemplar(clip: ClipMeasure, rest: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clip's aligned face and its landmarks where the expression shows clearly: of the frames
    whose mouth is no more open than the clip's median (the expression, not a shout), the one whose
    face above the lips has moved from the neutral ``rest`` along the emotion's ``motion`` by the
    ``_EXEMPLAR_QUANTILE``-th percentile of that amount. Not the frame with the least open mouth:
    an actor often relaxes the whole face between sentences, and then the take's creases are gone."""
    amount = _expression_amount(clip, rest, motion)
    gaps = inner_lip_gap(clip.canonical)
    candidates = np.nonzero(gaps <= np.median(gaps))[0]
    wanted = np.percentile(amount[candidates], _EXEMPLAR_QUANTILE)
    row = int(candidates[np.argmin(np.abs(amount[candidates] - wanted))])
    return clip.faces[row], clip.face_points[row]


def _mouth_exemplars(clip: ClipMeasure, rest: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, S, S, 3) uint8 and (K, NUM_LANDMARKS, 2): the take's faces at ``MOUTH_EXEMPLARS`` drops
    of the jaw spread over its syllables (5th to 95th percentile), each the frame nearest that drop
    among those where the expression shows (above the median amount, as for ``_face_exemplar``);
    black beyond ``_MOUTH_EXEMPLAR_MARGIN`` IODs around the lips (only the mouth of them is shown,
    and black compresses to nothing in the profile's file)."""
    amount = _expression_amount(clip, rest, motion)
    strong = np.nonzero(amount >= np.median(amount))[0]
    jaws = jaw_opening(clip.canonical)[strong]
    rows = [int(strong[np.argmin(np.abs(jaws - wanted))])
            for wanted in np.percentile(jaws, np.linspace(5, 95, MOUTH_EXEMPLARS))]
    faces = np.zeros_like(clip.faces[rows])
    margin = _MOUTH_EXEMPLAR_MARGIN * crop_placement(faces.shape[1])[0]  # IODs -> crop pixels
    for face, row in zip(faces, rows):
        lips = clip.face_points[row, list(OUTER_LIP_CONTOUR)]
        x0, y0 = np.maximum(np.floor(lips.min(axis=0) - margin).astype(int), 0)
        x1, y1 = np.ceil(lips.max(axis=0) + margin).astype(int)
        face[y0:y1, x0:x1] = clip.faces[row, y0:y1, x0:x1]
    return faces, clip.face_points[rows]


def _mouth_exemplar(clip: ClipMeasure) -> np.ndarray:
    """The clip's mouth interior where it is open as the expression opens it (80th percentile of the gap)."""
    gaps = inner_lip_gap(clip.canonical)
    return clip.mouths[int(np.argmin(np.abs(gaps - np.percentile(gaps, 80))))]


def labelled_clips(clips: Iterable[str | Path]) -> dict[str, dict[str, Path]]:
    """{person: {emotion: clip}} from the clips' file names (mead_W009_happy.mp4)."""
    paths = [Path(p) for p in clips]
    labels = {p: clip_label(p) for p in paths}
    unlabelled = [p.name for p, label in labels.items() if label is None]
    if unlabelled:
        raise InvalidRequest(f"these clips name no emotion in their file name: {', '.join(unlabelled)}; name "
                             "them like person_happy.mp4, the emotion a word of its own")
    people: dict[str, dict[str, Path]] = {}
    for path, label in labels.items():
        assert label is not None
        people.setdefault(label[0], {})[label[1]] = path
    return people


def build_library(clips: Iterable[str | Path], size: int = 256,
                  progress: Callable[[str], None] | None = None) -> ExpressionLibrary:
    """A library from labelled clips (person and emotion in each file name; every person needs a
    neutral clip and every emotion at least one person). People without a neutral clip are
    skipped and reported through ``progress``."""
    people = labelled_clips(clips)
    report = progress or (lambda _: None)
    for person in [p for p, clips_of in people.items() if "neutral" not in clips_of]:
        report(f"skipping {person}: no neutral clip of the same person to compare with")
        del people[person]
    library = measure_people(people, size, progress=report)
    missing = [e for e, measured in zip(LIBRARY_EMOTIONS, library.measured) if not measured]
    if missing:
        raise InvalidRequest(f"no clip shows {', '.join(missing)}: a library needs every emotion "
                             f"({', '.join(LIBRARY_EMOTIONS)}) from at least one person")
    return library


def measure_people(people: Mapping[str, Mapping[str, str | Path]], size: int = 256, max_frames: int = 150,
                   mouths: bool = False, progress: Callable[[str], None] | None = None) -> ExpressionLibrary:
    """Measure each person's emotion clips against their own neutral clip and average over people.

    ``people`` maps a person to {emotion or "neutral": clip}; everyone needs a neutral clip.
    Emotions nobody shows stay unmeasured (``measured`` False, zero motion). One person with
    ``mouths`` makes a personal library (``calibration``): their neutral face is the template, and
    their mouth interiors and their faces showing each emotion clearly (``face_exemplar``) are kept.
    """
    report = progress or (lambda _: None)
    if not people:
        raise InvalidRequest("no person has both a neutral clip and an emotion clip: name them like "
                             "person_neutral.mp4, person_happy.mp4")
    for person, clips_of in people.items():
        if "neutral" not in clips_of:
            raise InvalidRequest(f"{person} has no neutral clip: every emotion is measured against the same "
                                 "person's neutral face")
        unknown = [e for e in clips_of if e != "neutral" and e not in LIBRARY_EMOTIONS]
        if unknown:
            raise InvalidRequest(f"unknown emotion(s) {', '.join(unknown)}: use {', '.join(LIBRARY_EMOTIONS)}")
    # The template everyone is warped to: first pass on the neutral clips' mean canonical face.
    neutral_shapes = []
    for person, clips_of in people.items():
        report(f"{person}: neutral")
        shape = measure_clip(clips_of["neutral"], None, size, max_frames, (person, "neutral")).canonical.mean(axis=0)
        neutral_shapes.append(shape)
    template = np.mean(neutral_shapes, axis=0)
    skin = skin_mask(*template_lattice(template, size))
    masks = region_masks(template, size)
    count = np.zeros(len(LIBRARY_EMOTIONS))
    geometry = np.zeros((len(LIBRARY_EMOTIONS), NUM_LANDMARKS, 2))
    opening, parting = np.zeros(len(LIBRARY_EMOTIONS)), np.zeros(len(LIBRARY_EMOTIONS))
    speech_scale = np.zeros(len(LIBRARY_EMOTIONS))
    shading = np.zeros((len(LIBRARY_EMOTIONS), GRID, GRID), np.float32)
    kept = len(LIBRARY_EMOTIONS) if mouths else 0  # exemplars of the person's own face: profiles only
    interiors = np.zeros((len(LIBRARY_EMOTIONS), *(MOUTH_PATCH if kept else (0, 0)), 3), np.uint8)
    faces = np.zeros((len(LIBRARY_EMOTIONS), *((size, size) if kept else (0, 0)), 3), np.uint8)
    face_points = np.zeros((len(LIBRARY_EMOTIONS), NUM_LANDMARKS if kept else 0, 2), np.float32)
    mouth_faces = np.zeros((len(LIBRARY_EMOTIONS), *((MOUTH_EXEMPLARS, size, size) if kept else (0, 0, 0)), 3),
                           np.uint8)
    mouth_face_points = np.zeros((len(LIBRARY_EMOTIONS), *((MOUTH_EXEMPLARS, NUM_LANDMARKS) if kept else (0, 0)), 2),
                                 np.float32)
    speech_sum, rest_gaps, used = np.zeros((NUM_LANDMARKS, 2)), [], []
    for person, clips_of in people.items():
        neutral = measure_clip(clips_of["neutral"], template, size, max_frames, (person, "neutral"))
        speech = speech_basis(neutral)
        rest = clip_posture(neutral, speech)
        lips_apart = lips_apart_of_jaw(neutral)
        speech_sum += speech
        rest_gaps.append(rest.gap)
        used.append(Path(clips_of["neutral"]).name)
        for emotion, path in clips_of.items():
            if emotion == "neutral":
                continue
            report(f"{person}: {emotion}")
            clip = measure_clip(path, template, size, max_frames, (person, emotion), mouths)
            posture = clip_posture(clip, speech)
            row = LIBRARY_EMOTIONS.index(emotion)
            gap_change = posture.gap - rest.gap
            geometry[row] += posture.shape - rest.shape - speech * gap_change
            opening[row] += gap_change
            parting[row] += lips_apart(clip) if emotion in PARTED else 0.0
            speech_scale[row] += np.clip(posture.spread / max(rest.spread, 1e-6), *SPEECH_SCALE_RANGE)
            shading[row] += log_ratio(posture.luminance, rest.luminance, skin)
            if mouths:
                interiors[row] = _mouth_exemplar(clip)
                faces[row], face_points[row] = _face_exemplar(clip, rest.shape, posture.shape - rest.shape)
                mouth_faces[row], mouth_face_points[row] = _mouth_exemplars(clip, rest.shape, posture.shape - rest.shape)
            count[row] += 1
            used.append(Path(path).name)
    measured = count > 0
    divisor = np.maximum(count, 1)
    return ExpressionLibrary(
        template=template, speech=speech_sum / len(people), rest_gap=float(np.mean(rest_gaps)),
        geometry=geometry / divisor[:, None, None], opening=opening / divisor, parting=parting / divisor,
        speech_scale=np.where(measured, speech_scale / divisor, 1.0),
        shading=((shading / divisor[:, None, None])[:, None] * masks[None]).astype(np.float32),
        sources=tuple(used), measured=measured, mouths=interiors, faces=faces, face_points=face_points,
        mouth_faces=mouth_faces, mouth_face_points=mouth_face_points, personal=len(people) == 1 and mouths)
