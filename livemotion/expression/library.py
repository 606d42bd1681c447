"""The expression library: what each emotion does to a face, measured on real people.

For every person in the labelled clips, each emotion is compared with that person's *own*
neutral clip, in the canonical face frame (``controller.canonical_landmarks``: eyes level,
inter-ocular distance 1):

- **geometry**: the landmark motion of the emotion's *posture*. Every clip is speech, so each
  frame is modelled as posture + speech basis x inner-lip gap, the speech basis being how that
  person's face moves per unit of mouth opening while talking neutrally. The posture is the face
  at the clip's least open moments (10th percentile of the gap): the expression without the
  syllables. The emotion's change of mouth opening is kept apart (``opening``), so the runtime
  can set the posture and keep the speaker's articulation.
- **parting**: how much further apart the lips are while talking than the jaw explains (lips
  pulled back from the teeth: a snarl, a grin). Against the person's own neutral talking, where
  the inner-lip gap follows the jaw (nose base to chin) along a straight line, it is the median
  of the emotion clip's gap above that line (kept for the emotions in ``_PARTED``).
- **shading**: expression ratio images (Liu, Shan & Zhang 2001). The luminance of the
  expressive face divided by the same person's neutral face, both warped to one template face
  on a lattice over the aligned crop, on skin only, the lighting's slow variation removed, split
  into regions (forehead, between the brows, around the eyes, nasolabial folds, chin).

People are averaged after each is measured against themselves, so the library describes the
emotion, not the people. ``build_library`` makes one from clips; ``load_library`` reads one
(the shipped file by default).
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InvalidRequest, SourceError
from ..face.mesh import (
    CHIN,
    CHIN_BOSS,
    EYES,
    FACE_OVAL,
    GLABELLA,
    INNER_BROW,
    LOWER_INNER_LIP,
    MOUTH_CORNER,
    NOSE_BASE,
    NOSE_WING,
    NUM_LANDMARKS,
    OUTER_BROW,
    OUTER_LIP_CONTOUR,
    UPPER_INNER_LIP,
    UPPER_LID,
    both,
)
from ..io.files import write_whole
from ..render.alignment import Alignment, align, crop_placement, engine_points, lattice_coordinates
from ..render.compositing import MOUTH_PATCH, disc_kernel, mouth_patch
from ..types import FaceTrack

LIBRARY_VERSION = 1
GRID = 64  # side of the shading lattice over the template's aligned crop (a step of 1/15 IOD)
# The warp that places that lattice on a face: the kernel the shipped library was measured with, so
# that `build-library` on the same clips remakes it (the live engine's is narrower).
_LATTICE_WARP = {"grid": GRID, "sigma": 0.035, "refinements": 2}
REGIONS = ("forehead", "glabella", "eyes", "nasolabial", "chin")
# The emotions a library describes (neutral is the reference, so it has no entry), and the words
# that label a clip with each; the file name carries the label (MEAD: mead_W009_happy.mp4).
EMOTION_WORDS = {
    "happy": ("happy",), "sad": ("sad",), "angry": ("angry", "furious"), "surprised": ("surprise",),
    "fearful": ("fear",), "disgusted": ("disgust",), "contemptuous": ("contempt",),
}
LIBRARY_EMOTIONS = tuple(EMOTION_WORDS)
_WORD_ENDINGS = "(?:d|ed|ful|ness|uous)?"  # surprise-d, disgust-ed, fear-ful, sad-ness, contempt-uous
_POSTURE_QUANTILE = 10  # percentile of the inner-lip gap taken as a clip's posture (speech at its least open)
# Emotions whose lips' parting the library keeps, by what the judge said on the 28 talking clips
# (README, "Quality"): angry's read more angry on 22 of them and less on 1. Happy's read *less*
# happy (13 down, 9 up; on profiles too, with the person's own teeth); surprised, fearful, sad and
# disgusted moved the judge by under 0.02 while costing articulation.
_PARTED = ("angry",)
_EXEMPLAR_QUANTILE = 60  # how strong a frame of a take a profile shows (percentile of the emotion's motion)
_SHADING_LIMIT = 0.35  # largest |log ratio|: a crease darkens skin by up to ~30 %, not more


@dataclass(frozen=True)
class ExpressionLibrary:
    template: np.ndarray  # (NUM_LANDMARKS, 2) neutral face, canonical units (mean over people; a profile: the person's)
    speech: np.ndarray  # (NUM_LANDMARKS, 2) canonical motion per unit of inner-lip gap while talking
    rest_gap: float  # inner-lip gap of a neutral face at rest (lips together), canonical units
    geometry: np.ndarray  # (E, NUM_LANDMARKS, 2) posture change per emotion, mouth opening factored out
    opening: np.ndarray  # (E,) change of the resting inner-lip gap per emotion, canonical units
    shading: np.ndarray  # (E, len(REGIONS), GRID, GRID) float32 log luminance ratio, template lattice
    sources: tuple[str, ...]  # the clips it was built from
    measured: np.ndarray = field(default_factory=lambda: np.ones(len(LIBRARY_EMOTIONS), bool))  # (E,) from its own clips
    mouths: np.ndarray = field(default_factory=lambda: np.zeros((len(LIBRARY_EMOTIONS), 0, 0, 3), np.uint8))
    # (E, *MOUTH_PATCH, 3) uint8 the person's mouth interior at each emotion (all zero: none); profiles only
    faces: np.ndarray = field(default_factory=lambda: np.zeros((len(LIBRARY_EMOTIONS), 0, 0, 3), np.uint8))
    # (E, S, S, 3) uint8 the person's face showing each emotion clearly, as an aligned crop (all zero: none); profiles
    face_points: np.ndarray = field(default_factory=lambda: np.zeros((len(LIBRARY_EMOTIONS), 0, 2), np.float32))
    # (E, NUM_LANDMARKS, 2) float32 its landmarks, crop pixels
    personal: bool = False  # one person measured against themselves: ``template`` is their own neutral face
    styles: tuple[str, ...] = ()  # rows after LIBRARY_EMOTIONS: reference styles (``styles.Style``), by name
    parting: np.ndarray = field(default_factory=lambda: np.zeros(len(LIBRARY_EMOTIONS)))
    # (E,) how much further apart the lips are while talking than the jaw explains, canonical units
    # (measured for the emotions in ``_PARTED``, zero for the others)

    @property
    def emotions(self) -> tuple[str, ...]:
        """The name of each row: LIBRARY_EMOTIONS, then the styles."""
        return LIBRARY_EMOTIONS + self.styles

    def emotion_index(self, emotion: str) -> int:
        if emotion not in self.emotions:
            styles = f"; styles: {', '.join(self.styles)}" if self.styles else ""
            raise InvalidRequest(f"unknown emotion {emotion!r}: use one of neutral, {', '.join(LIBRARY_EMOTIONS)}"
                                 f"{styles} (`livemotion style` makes a style)")
        return self.emotions.index(emotion)

    def mouth_interior(self, row: int) -> np.ndarray | None:
        """The person's own mouth interior for emotion ``row``, or None when the library has none."""
        if self.mouths.shape[1] == 0 or not self.measured[row] or not self.mouths[row].any():
            return None
        return self.mouths[row]

    def face_exemplar(self, row: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(aligned crop, its landmarks in crop pixels): the person's own face at emotion ``row``,
        or None when the library has none (the shipped one; an emotion the person skipped)."""
        if self.faces.shape[1] == 0 or not self.measured[row] or not self.faces[row].any():
            return None
        return self.faces[row], self.face_points[row]

    def save(self, path: str | Path, private: bool = False) -> None:
        """Write to ``path`` whole or not at all; ``private``: readable by the user only (calibration
        profiles), else the umask's default. Styles are kept apart (``styles``) and not written."""
        if self.styles:
            raise InvalidRequest("a library with styles attached is not written: save the library itself")
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, version=LIBRARY_VERSION, template=self.template.astype(np.float32),
            speech=self.speech.astype(np.float32), rest_gap=self.rest_gap, geometry=self.geometry.astype(np.float32),
            opening=self.opening.astype(np.float32), parting=self.parting.astype(np.float32),
            shading=self.shading.astype(np.float16),
            emotions=np.array(LIBRARY_EMOTIONS), regions=np.array(REGIONS), sources=np.array(self.sources),
            measured=self.measured, mouths=self.mouths, faces=self.faces, face_points=self.face_points,
            personal=self.personal)
        write_whole(path, buffer.getvalue(), private)

    def with_fallback(self, fallback: ExpressionLibrary, size: int = 256) -> ExpressionLibrary:
        """This library with the emotions it did not measure taken from ``fallback`` (the shipped one).

        Geometry and mouth opening are relative motions in canonical units, so they carry over
        as they are; shading is resampled from the fallback's template lattice onto this one's.
        """
        missing = ~self.measured
        if not missing.any():
            return self
        geometry, opening, parting = self.geometry.copy(), self.opening.copy(), self.parting.copy()
        geometry[missing], opening[missing] = fallback.geometry[missing], fallback.opening[missing]
        parting[missing] = fallback.parting[missing]
        shading = self.shading.copy()
        shading[missing] = carry_lattice(fallback.shading[missing], fallback.template, self.template, size)
        return replace(self, geometry=geometry, opening=opening, parting=parting, shading=shading,
                       sources=self.sources + tuple(f"{s} (fallback)" for s in fallback.sources))


def load_library(path: str | Path | None = None) -> ExpressionLibrary:
    """The library in ``path``, or the one shipped with livemotion (``path`` None).

    Anything that is not a library of this version (another file, a damaged one, one of another
    version) is refused with one line that says how to make a good one.
    """
    if path is None:
        return _shipped_library()
    path = Path(path)
    rebuild = "rebuild it with `livemotion build-library CLIPS... --out FILE` (or `livemotion calibrate`)"
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["version"]) != LIBRARY_VERSION or tuple(data["emotions"]) != LIBRARY_EMOTIONS:
                raise InvalidRequest(f"{path} is a library of another livemotion version: {rebuild}")
            library = ExpressionLibrary(
                template=data["template"].astype(np.float64), speech=data["speech"].astype(np.float64),
                rest_gap=float(data["rest_gap"]), geometry=data["geometry"].astype(np.float64),
                opening=data["opening"].astype(np.float64), shading=data["shading"].astype(np.float32),
                sources=tuple(str(s) for s in data["sources"]))
            if "measured" in data:  # written by a builder that knows calibration profiles
                library = replace(library, measured=data["measured"].astype(bool),
                                  mouths=data["mouths"].astype(np.uint8), personal=bool(data["personal"]))
            if "faces" in data:  # profiles made since the face exemplars
                library = replace(library, faces=data["faces"].astype(np.uint8),
                                  face_points=data["face_points"].astype(np.float32))
            if "parting" in data:  # libraries made since the lips' parting (older ones: none)
                library = replace(library, parting=data["parting"].astype(np.float64))
    except FileNotFoundError:
        raise InvalidRequest(f"no expression library at {path}: build one with `livemotion build-library`") from None
    except InvalidRequest:
        raise
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise InvalidRequest(f"{path} is not an expression library ({error}): {rebuild}") from None
    shapes_ok = (library.template.shape == (NUM_LANDMARKS, 2)
                 and library.geometry.shape == (len(LIBRARY_EMOTIONS), NUM_LANDMARKS, 2)
                 and library.shading.shape == (len(LIBRARY_EMOTIONS), len(REGIONS), GRID, GRID)
                 and library.measured.shape == (len(LIBRARY_EMOTIONS),) == library.parting.shape
                 and library.mouths.shape[0] == len(LIBRARY_EMOTIONS)
                 and library.faces.shape[0] == len(LIBRARY_EMOTIONS) == library.face_points.shape[0])
    if not shapes_ok:
        raise InvalidRequest(f"{path} is not an expression library of this livemotion version "
                             f"(its arrays have other shapes): {rebuild}")
    return library


@lru_cache(maxsize=1)
def _shipped_library() -> ExpressionLibrary:
    with resources.as_file(resources.files("livemotion.expression") / "expressions.npz") as path:
        return load_library(path)


# ---- the template's lattice ----------------------------------------------------------------------

def template_to_crop(points: np.ndarray, size: int) -> np.ndarray:
    """Canonical points placed in a ``size`` crop the way ``render.alignment.align`` places a level face."""
    scale, offset = crop_placement(size)
    return points * scale + offset


def template_lattice(template: np.ndarray, size: int = 256) -> tuple[np.ndarray, float]:
    """The template's landmarks in lattice units (NUM_LANDMARKS, 2), and one IOD in lattice units."""
    to_lattice = (GRID - 1) / (size - 1)
    return template_to_crop(template, size) * to_lattice, crop_placement(size)[0] * to_lattice


def region_masks(template: np.ndarray, size: int = 256) -> np.ndarray:
    """(len(REGIONS), GRID, GRID) float32 soft masks of the skin regions on the template lattice.

    Each region is a Gaussian blob around anatomical anchors; all are restricted to skin (inside
    the face, away from the eyes, the brows' hair and the lips) and never sum above 1.
    """
    lattice, unit = template_lattice(template, size)
    yy, xx = np.mgrid[0:GRID, 0:GRID].astype(np.float32)

    def blob(anchors: np.ndarray, radius: float) -> np.ndarray:
        d2 = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in np.atleast_2d(anchors)], axis=0)
        return np.exp(-0.5 * d2 / (radius * unit) ** 2)

    brows = lattice[list(both(INNER_BROW) + both(OUTER_BROW))]
    brow_line = brows[:, 1].min()
    forehead = np.stack([np.linspace(brows[:, 0].min(), brows[:, 0].max(), 7), np.full(7, brow_line - 0.35 * unit)], 1)
    glabella = np.vstack([lattice[GLABELLA], 0.5 * (lattice[INNER_BROW[0][0]] + lattice[INNER_BROW[1][0]])])
    eye_surround = []
    for side in (0, 1):
        lid = lattice[list(UPPER_LID[side])]
        outer = lid[np.argmax(np.abs(lid[:, 0] - lattice[GLABELLA, 0]))]
        eye_surround += [outer + (np.sign(outer[0] - lattice[GLABELLA, 0]) * 0.12 * unit, 0.0),
                         lid.mean(axis=0) + (0.0, 0.3 * unit)]
    nasolabial = []
    for side in (0, 1):
        wing, corner = lattice[NOSE_WING[side][-1]], lattice[MOUTH_CORNER[side][0]]
        away = np.sign(corner[0] - lattice[GLABELLA, 0]) * 0.08 * unit
        nasolabial += [wing + t * (corner - wing) + (away, 0.0) for t in (0.0, 0.35, 0.7, 1.0)]
    masks = np.stack([blob(forehead, 0.22), blob(glabella, 0.14), blob(np.array(eye_surround), 0.14),
                      blob(np.array(nasolabial), 0.1), blob(lattice[[CHIN_BOSS]], 0.22)])
    masks /= np.maximum(masks.sum(axis=0, keepdims=True), 1.0)
    return masks * skin_mask(lattice, unit)


def skin_mask(lattice: np.ndarray, unit: float) -> np.ndarray:
    """(GRID, GRID) float32: the face's skin, with eyes, brows' hair and lips cut out, feathered."""
    skin = np.zeros((GRID, GRID), np.uint8)
    cv2.fillConvexPoly(skin, cv2.convexHull(np.round(lattice[list(FACE_OVAL)]).astype(np.int32)), 1)
    holes = np.zeros_like(skin)
    for ids in (both(UPPER_LID) + EYES, both(INNER_BROW) + both(OUTER_BROW)):
        for side_points in _by_side(lattice, ids):
            cv2.fillConvexPoly(holes, cv2.convexHull(np.round(side_points).astype(np.int32)), 1)
    cv2.fillPoly(holes, [np.round(lattice[list(OUTER_LIP_CONTOUR)]).astype(np.int32)], 1)
    margin = max(1, int(round(0.06 * unit)))
    holes = cv2.dilate(holes, disc_kernel(margin))
    skin = cv2.erode(skin, np.ones((3, 3), np.uint8)) * (1 - holes)
    return cv2.GaussianBlur(skin.astype(np.float32), (0, 0), 1.0)


def _by_side(lattice: np.ndarray, ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    points = lattice[list(ids)]
    middle = lattice[GLABELLA, 0]
    return points[points[:, 0] < middle], points[points[:, 0] >= middle]


def inner_lip_gap(canonical: np.ndarray) -> np.ndarray:
    """The mouth opening on the midline, canonical units: (..., NUM_LANDMARKS, 2) -> (...)."""
    return canonical[..., LOWER_INNER_LIP, 1] - canonical[..., UPPER_INNER_LIP, 1]


# ---- building ------------------------------------------------------------------------------------

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
    from ..engines import create_engine
    from ..face.tracking import FaceTracker
    from ..io.sources import FileSource
    from .controller import canonical_landmarks

    label = label or clip_label(path)
    if label is None:
        raise InvalidRequest(f"{path}: the file name names no emotion ({', '.join(('neutral', *LIBRARY_EMOTIONS))})")
    engine = create_engine("warp", size=size, **_LATTICE_WARP)
    template_points = None if template is None else engine_points(template_to_crop(template, size))
    canonical, luminance, patches, faces, face_points = [], [], [], [], []
    source = FileSource(str(path))
    try:
        with FaceTracker(max_faces=1) as tracker:
            for frame in source:
                if frame.index >= max_frames:
                    break
                track = tracker.track(frame.image)
                if not isinstance(track, FaceTrack):
                    continue
                canonical.append(canonical_landmarks(track))
                crop = align(track, size)
                if template_points is not None:
                    luminance.append(_lattice_luminance(frame.image, track, crop, template_points, engine))
                if mouths:
                    patches.append(mouth_patch(frame.image, track.landmarks))
                    faces.append(cv2.warpAffine(frame.image, crop.to_crop, (size, size), flags=cv2.INTER_LANCZOS4))
                    face_points.append(crop.points_to_crop(track.landmarks[:, :2]).astype(np.float32))
    finally:
        source.close()
    if len(canonical) < 10:
        raise SourceError(f"{path}: a face was found in only {len(canonical)} frames; a library clip needs 10 or more")
    lattice_luminance = np.stack(luminance) if luminance else np.zeros((0, GRID, GRID), np.float32)
    mouth_patches = np.stack(patches) if patches else np.zeros((0, *MOUTH_PATCH, 3), np.uint8)
    crops = np.stack(faces) if faces else np.zeros((0, size, size, 3), np.uint8)
    crop_points = np.stack(face_points) if face_points else np.zeros((0, NUM_LANDMARKS, 2), np.float32)
    return ClipMeasure(str(path), label[0], label[1], np.stack(canonical), lattice_luminance, mouth_patches, crops,
                       crop_points)


def _lattice_positions(engine: torch.nn.Module, source_points: np.ndarray, target_points: np.ndarray,
                       size: int) -> tuple[np.ndarray, np.ndarray]:
    """(GRID, GRID) x and y, crop pixels: where each lattice point of the target face lies on the source face."""
    with torch.inference_mode():
        flow = engine(torch.as_tensor(source_points[None], dtype=torch.float32),
                      torch.as_tensor(target_points[None], dtype=torch.float32))[0].numpy()
    crop_x, crop_y = lattice_coordinates(size, GRID)
    return crop_x + flow[0], crop_y + flow[1]


def _lattice_luminance(image: np.ndarray, track: FaceTrack, alignment: Alignment, template_points: np.ndarray,
                       engine: torch.nn.Module) -> np.ndarray:
    """The face's luminance carried onto the template lattice (backward flow template -> this face)."""
    size = alignment.size
    face_points = engine_points(alignment.points_to_crop(track.landmarks[:, :2]))
    crop_x, crop_y = _lattice_positions(engine, face_points, template_points, size)
    to_frame = cv2.invertAffineTransform(alignment.to_crop)
    frame_x = to_frame[0, 0] * crop_x + to_frame[0, 1] * crop_y + to_frame[0, 2]
    frame_y = to_frame[1, 0] * crop_x + to_frame[1, 1] * crop_y + to_frame[1, 2]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    step = abs(to_frame[0, 0]) * (size - 1) / (GRID - 1)  # frame pixels per lattice step
    grey = cv2.GaussianBlur(grey, (0, 0), max(0.5, 0.5 * step))  # no aliasing when sampling coarser than the frame
    return cv2.remap(grey, frame_x.astype(np.float32), frame_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


def sample_lattice(values: np.ndarray, crop_x: np.ndarray, crop_y: np.ndarray, size: int) -> np.ndarray:
    """(..., g, g) values on a lattice spanning a ``size`` crop corner to corner, read (bilinear) at
    crop-pixel positions ``crop_x``, ``crop_y`` (H, W): (..., H, W), 0 off the lattice."""
    scale = (values.shape[-1] - 1) / (size - 1)
    map_x, map_y = (crop_x * scale).astype(np.float32), (crop_y * scale).astype(np.float32)
    flat = values.reshape(-1, *values.shape[-2:])
    read = [cv2.remap(np.ascontiguousarray(v, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0) for v in flat]
    return np.stack(read).reshape(*values.shape[:-2], *crop_x.shape)


def carry_lattice(values: np.ndarray, from_template: np.ndarray, to_template: np.ndarray, size: int) -> np.ndarray:
    """(..., GRID, GRID) values on ``from_template``'s lattice, resampled onto ``to_template``'s."""
    from ..engines import create_engine

    engine = create_engine("warp", size=size, **_LATTICE_WARP)
    crop_x, crop_y = _lattice_positions(engine, engine_points(template_to_crop(from_template, size)),
                                        engine_points(template_to_crop(to_template, size)), size)
    return sample_lattice(values, crop_x, crop_y, size)


@dataclass(frozen=True)
class Posture:
    shape: np.ndarray  # (NUM_LANDMARKS, 2)
    gap: float
    luminance: np.ndarray  # (GRID, GRID)


def clip_posture(clip: ClipMeasure, speech: np.ndarray) -> Posture:
    """A clip's face with speech factored out: frame = posture + speech * (gap - posture gap)."""
    gaps = inner_lip_gap(clip.canonical)
    gap = float(np.percentile(gaps, _POSTURE_QUANTILE))
    shape = np.mean(clip.canonical - speech[None] * (gaps - gap)[:, None, None], axis=0)
    closest = clip.luminance[gaps <= np.percentile(gaps, 30)]  # shading at the least articulated frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # lattice points off the frame in every frame stay NaN
        return Posture(shape, gap, np.nanmedian(closest, axis=0))


def jaw_opening(canonical: np.ndarray) -> np.ndarray:
    """Nose base to chin, canonical units: (..., NUM_LANDMARKS, 2) -> (...). The jaw's drop, which
    the lips follow while talking; they part beyond it when pulled back from the teeth."""
    return canonical[..., CHIN, 1] - canonical[..., NOSE_BASE, 1]


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


def _face_exemplar(clip: ClipMeasure, rest: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clip's aligned face and its landmarks where the expression shows clearly: of the frames
    whose mouth is no more open than the clip's median (the expression, not a shout), the one whose
    face above the lips has moved from the neutral ``rest`` along the emotion's ``motion`` by the
    ``_EXEMPLAR_QUANTILE``-th percentile of that amount. Not the frame with the least open mouth:
    an actor often relaxes the whole face between sentences, and then the take's creases are gone."""
    above = rest[:, 1] < rest[list(OUTER_LIP_CONTOUR), 1].min()
    direction = motion[above]
    amount = np.einsum("fnd,nd->f", clip.canonical[:, above] - rest[above], direction)
    gaps = inner_lip_gap(clip.canonical)
    candidates = np.nonzero(gaps <= np.median(gaps))[0]
    wanted = np.percentile(amount[candidates], _EXEMPLAR_QUANTILE)
    row = int(candidates[np.argmin(np.abs(amount[candidates] - wanted))])
    return clip.faces[row], clip.face_points[row]


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
    shading = np.zeros((len(LIBRARY_EMOTIONS), GRID, GRID), np.float32)
    kept = len(LIBRARY_EMOTIONS) if mouths else 0  # exemplars of the person's own face: profiles only
    interiors = np.zeros((len(LIBRARY_EMOTIONS), *(MOUTH_PATCH if kept else (0, 0)), 3), np.uint8)
    faces = np.zeros((len(LIBRARY_EMOTIONS), *((size, size) if kept else (0, 0)), 3), np.uint8)
    face_points = np.zeros((len(LIBRARY_EMOTIONS), NUM_LANDMARKS if kept else 0, 2), np.float32)
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
            parting[row] += lips_apart(clip) if emotion in _PARTED else 0.0
            shading[row] += log_ratio(posture.luminance, rest.luminance, skin)
            if mouths:
                interiors[row] = _mouth_exemplar(clip)
                faces[row], face_points[row] = _face_exemplar(clip, rest.shape, posture.shape - rest.shape)
            count[row] += 1
            used.append(Path(path).name)
    measured = count > 0
    divisor = np.maximum(count, 1)
    return ExpressionLibrary(
        template=template, speech=speech_sum / len(people), rest_gap=float(np.mean(rest_gaps)),
        geometry=geometry / divisor[:, None, None], opening=opening / divisor, parting=parting / divisor,
        shading=((shading / divisor[:, None, None])[:, None] * masks[None]).astype(np.float32),
        sources=tuple(used), measured=measured, mouths=interiors, faces=faces, face_points=face_points,
        personal=len(people) == 1 and mouths)
