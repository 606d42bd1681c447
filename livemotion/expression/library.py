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
  of the emotion clip's gap above that line (kept for the emotions in ``measure.PARTED``).
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
import zipfile
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InvalidRequest
from ..face.alignment import crop_placement, engine_points, lattice_coordinates
from ..face.canonical import inner_lip_gap, jaw_opening
from ..face.flow import pinned_flow
from ..face.masks import disc_kernel
from ..face.mesh import (
    CHIN_BOSS,
    EYES,
    FACE_OVAL,
    GLABELLA,
    INNER_BROW,
    MOUTH_CORNER,
    NOSE_WING,
    NUM_LANDMARKS,
    OUTER_BROW,
    OUTER_LIP_CONTOUR,
    UPPER_LID,
    both,
)
from ..io.files import write_whole

LIBRARY_VERSION = 1
GRID = 64  # side of the shading lattice over the template's aligned crop (a step of 1/15 IOD)
# The warp that places that lattice on a face: the kernel the shipped library was measured with, so
# that `build-library` on the same clips remakes it (the live engine's is narrower).
LATTICE_WARP = {"sigma": 0.035, "refinements": 2}  # sigma: a share of the crop's side
SHADING_REGIONS = ("forehead", "glabella", "eyes", "nasolabial", "chin")  # where the library keeps creases
# The emotions a library describes (neutral is the reference, so it has no entry), and the words
# that label a clip with each; the file name carries the label (MEAD: mead_W009_happy.mp4).
EMOTION_WORDS = {
    "happy": ("happy",), "sad": ("sad",), "angry": ("angry", "furious"), "surprised": ("surprise",),
    "fearful": ("fear",), "disgusted": ("disgust",), "contemptuous": ("contempt",),
}
LIBRARY_EMOTIONS = tuple(EMOTION_WORDS)
# IODs the edited lips may open wider than a take's frame before it fades, and over which it fades
# (``ExpressionLibrary.mouth_exemplars``): W011's articulation r with her takes' mouths 0.25 -> 0.49
# (happy), W009's anger as read before.
_MOUTH_STRETCH = 0.05
# How much wider than in neutral talk a person's syllables must open in an emotion (``speech_scale``)
# for ``--mouth auto`` to show their takes' mouth in it. On the MEAD people the takes' mouth keeps the
# syllables in the order of this scale (the edit's openings then lie over the takes' own open mouths):
# W009's anger (2.0) and fear (1.8) and W011's surprise (2.0) and fear (1.7) lose least; 1.5 and under
# lose more (docs/calibration.md).
WIDE_SPEECH = 1.6
# Where a profile's emotions show the person's own mouth from their takes: never (the warp's mouth),
# in the emotions they speak wide, or in every emotion (``ExpressionLibrary.shows_takes_mouth``)
TAKES_MOUTH = ("warp", "auto", "take")


@dataclass(frozen=True)
class ExpressionLibrary:
    """What each emotion does to a face, on a template face (see the module's text). ``E`` = len(emotions)."""

    template: np.ndarray  # (NUM_LANDMARKS, 2) neutral face, canonical units (mean over people; a profile: the person's)
    speech: np.ndarray  # (NUM_LANDMARKS, 2) canonical motion per unit of inner-lip gap while talking
    rest_gap: float  # inner-lip gap of a neutral face at rest (lips together), canonical units
    geometry: np.ndarray  # (E, NUM_LANDMARKS, 2) posture change per emotion, mouth opening factored out
    opening: np.ndarray  # (E,) change of the resting inner-lip gap per emotion, canonical units
    shading: np.ndarray  # (E, len(SHADING_REGIONS), GRID, GRID) float32 log luminance ratio, template lattice
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
    # (measured for the emotions in ``measure.PARTED``, zero for the others)
    speech_scale: np.ndarray = field(default_factory=lambda: np.ones(len(LIBRARY_EMOTIONS)))
    # (E,) how much wider speech opens the lips in each emotion than in neutral talk (1: as wide;
    # anger is often shouted, sadness muttered); the edit scales the live syllables by it
    mouth_faces: np.ndarray = field(default_factory=lambda: np.zeros((len(LIBRARY_EMOTIONS), 0, 0, 0, 3), np.uint8))
    # (E, K, S, S, 3) uint8 the person's face at K mouth openings of each emotion's take, as aligned
    # crops, black away from the mouth (all zero: none); profiles only
    mouth_face_points: np.ndarray = field(default_factory=lambda: np.zeros((len(LIBRARY_EMOTIONS), 0, 0, 2),
                                                                           np.float32))
    # (E, K, NUM_LANDMARKS, 2) float32 their landmarks, crop pixels

    @property
    def emotions(self) -> tuple[str, ...]:
        """The name of each row: LIBRARY_EMOTIONS, then the styles."""
        return LIBRARY_EMOTIONS + self.styles

    def emotion_index(self, emotion: str) -> int:
        """The row of ``emotion`` (a library emotion or a style); ``InvalidRequest`` naming the known ones otherwise."""
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

    def mouth_exemplars(self, row: int, points: np.ndarray) -> list[tuple[int, float]]:
        """[(frame, share)]: the frames (of ``mouth_faces[row]``) of the person's take of emotion
        ``row`` whose jaws are dropped just less and just more than that of the face
        ``points`` (NUM_LANDMARKS, 2 crop pixels), shared by how near each is, so that the teeth part
        smoothly as the jaw drops (the lips' gap is no guide: a shout bares the teeth with the jaw
        nearly shut); beyond the take's range, its last frame. Their shares fall to 0 as the lips
        close below the take's least open lips (a take's mouth squeezed shut would still show its
        teeth, so lips the speaker closes are the live ones), and a frame's as the edited lips open
        more than ``_MOUTH_STRETCH`` wider than its own (a closed mouth stretched open smears; an
        open one squeezed shows clenched, bared teeth, which is what a shout looks like). Frames of
        no share are left out; none when the library keeps none (the shipped one; a profile made
        before them)."""
        if not self.keeps_mouth_frames or not self.measured[row] or not self.mouth_faces[row].any():
            return []
        kept = self.mouth_face_points[row]
        gaps, jaws, jaw = inner_lip_gap(kept), jaw_opening(kept), float(jaw_opening(points))
        order = np.argsort(jaws)
        above = int(np.searchsorted(jaws[order], jaw))
        if above in (0, len(order)):
            chosen = [(int(order[min(above, len(order) - 1)]), 1.0)]
        else:
            lower, upper = int(order[above - 1]), int(order[above])
            share = float((jaw - jaws[lower]) / max(jaws[upper] - jaws[lower], 1e-6))
            chosen = [(lower, 1.0 - share), (upper, share)]
        gap = float(inner_lip_gap(points))
        closing = float(np.clip(gap / max(gaps.min(), 1e-6), 0.0, 1.0))
        stretch = _MOUTH_STRETCH * crop_placement(self.mouth_faces.shape[2])[0]  # IODs -> crop pixels
        shown = [(k, closing * share * float(np.clip(2.0 - (gap - gaps[k]) / stretch, 0.0, 1.0))) for k, share in chosen]
        return [(k, share) for k, share in shown if share > 0.0]

    def shows_takes_mouth(self, row: int, mode: str) -> bool:
        """Whether ``mode`` (``TAKES_MOUTH``) shows the takes' mouth in emotion ``row``: "take" in every
        emotion, "auto" where the person speaks it with syllables at least ``WIDE_SPEECH`` times as wide
        as in neutral talk (a shout, a gasp), "warp" in none."""
        return mode == "take" or (mode == "auto" and bool(self.speech_scale[row] >= WIDE_SPEECH))

    def takes_mouth_emotions(self, mode: str = "auto") -> tuple[str, ...]:
        """The emotions measured on the person whose takes' mouth ``mode`` shows (``shows_takes_mouth``),
        where the library keeps those frames."""
        if not self.keeps_mouth_frames:
            return ()
        return tuple(emotion for row, emotion in enumerate(LIBRARY_EMOTIONS)
                     if self.measured[row] and self.shows_takes_mouth(row, mode))

    @property
    def keeps_mouth_frames(self) -> bool:
        """Whether the library keeps frames of the person's mouth from their takes (``mouth_faces``:
        profiles made since them), which ``run --mouth take`` shows."""
        return self.mouth_faces.shape[1] > 0

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
            speech_scale=self.speech_scale.astype(np.float32),
            shading=self.shading.astype(np.float16),
            emotions=np.array(LIBRARY_EMOTIONS), regions=np.array(SHADING_REGIONS), sources=np.array(self.sources),
            measured=self.measured, mouths=self.mouths, faces=self.faces, face_points=self.face_points,
            mouth_faces=self.mouth_faces, mouth_face_points=self.mouth_face_points, personal=self.personal)
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
        speech_scale = np.where(missing, fallback.speech_scale, self.speech_scale)
        shading = self.shading.copy()
        shading[missing] = carry_lattice(fallback.shading[missing], fallback.template, self.template, size)
        return replace(self, geometry=geometry, opening=opening, parting=parting, speech_scale=speech_scale,
                       shading=shading,
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
    if path.exists() and not path.is_file():  # a folder, a FIFO, a device: reading it could block forever
        raise InvalidRequest(f"{path} is not an expression library (not a regular file): {rebuild}")
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
            if "speech_scale" in data:  # libraries made since speech's scale (older ones: speech as in neutral)
                library = replace(library, speech_scale=data["speech_scale"].astype(np.float64))
            if "mouth_faces" in data:  # profiles made since the mouth exemplars (older ones: the warp's mouth)
                library = replace(library, mouth_faces=data["mouth_faces"].astype(np.uint8),
                                  mouth_face_points=data["mouth_face_points"].astype(np.float32))
    except FileNotFoundError:
        raise InvalidRequest(f"no expression library at {path}: build one with `livemotion build-library`") from None
    except InvalidRequest:
        raise
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise InvalidRequest(f"{path} is not an expression library ({error}): {rebuild}") from None
    shapes_ok = (library.template.shape == (NUM_LANDMARKS, 2)
                 and library.geometry.shape == (len(LIBRARY_EMOTIONS), NUM_LANDMARKS, 2)
                 and library.shading.shape == (len(LIBRARY_EMOTIONS), len(SHADING_REGIONS), GRID, GRID)
                 and library.measured.shape == (len(LIBRARY_EMOTIONS),) == library.parting.shape
                 == library.speech_scale.shape
                 and library.mouths.shape[0] == len(LIBRARY_EMOTIONS)
                 and library.faces.shape[0] == len(LIBRARY_EMOTIONS) == library.face_points.shape[0]
                 and library.mouth_faces.shape[:2] == library.mouth_face_points.shape[:2]
                 and library.mouth_faces.shape[0] == len(LIBRARY_EMOTIONS))
    if not shapes_ok:
        raise InvalidRequest(f"{path} is not an expression library of this livemotion version "
                             f"(its arrays have other shapes): {rebuild}")
    numbers = (library.template, library.speech, library.geometry, library.opening, library.parting,
               library.speech_scale, library.shading, library.face_points, library.mouth_face_points,
               np.array([library.rest_gap]))
    if not all(np.isfinite(values).all() for values in numbers):
        raise InvalidRequest(f"{path} is not an expression library (it holds NaN or infinite values): {rebuild}")
    return library


@lru_cache(maxsize=1)
def _shipped_library() -> ExpressionLibrary:
    with resources.as_file(resources.files("livemotion.expression") / "expressions.npz") as path:
        return load_library(path)


# ---- the template's lattice ----------------------------------------------------------------------

def template_to_crop(points: np.ndarray, size: int) -> np.ndarray:
    """Canonical points placed in a ``size`` crop the way ``face.alignment.align`` places a level face."""
    scale, offset = crop_placement(size)
    return points * scale + offset


def template_lattice(template: np.ndarray, size: int = 256) -> tuple[np.ndarray, float]:
    """The template's landmarks in lattice units (NUM_LANDMARKS, 2), and one IOD in lattice units."""
    to_lattice = (GRID - 1) / (size - 1)
    return template_to_crop(template, size) * to_lattice, crop_placement(size)[0] * to_lattice


def region_masks(template: np.ndarray, size: int = 256) -> np.ndarray:
    """(len(SHADING_REGIONS), GRID, GRID) float32 soft masks of the skin regions on the template lattice.

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


def lattice_positions(source_points: np.ndarray, target_points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(GRID, GRID) x and y, crop pixels: where each lattice point of the target face lies on the
    source face (both (N, 2) engine points in a ``size`` crop), by the flow of ``LATTICE_WARP``."""
    with torch.inference_mode():
        flow = pinned_flow(torch.as_tensor(source_points[None], dtype=torch.float32),
                           torch.as_tensor(target_points[None], dtype=torch.float32), size, GRID,
                           LATTICE_WARP["sigma"] * size, int(LATTICE_WARP["refinements"]))[0].numpy()
    crop_x, crop_y = lattice_coordinates(size, GRID)
    return crop_x + flow[0], crop_y + flow[1]


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
    crop_x, crop_y = lattice_positions(engine_points(template_to_crop(from_template, size)),
                                       engine_points(template_to_crop(to_template, size)), size)
    return sample_lattice(values, crop_x, crop_y, size)
