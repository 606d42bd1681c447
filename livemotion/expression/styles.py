"""Reference styles (NED's reference-driven editing): an emotion the way one clip shows it.

``extract_style`` measures a clip's face against a neutral face of the same person (a clip of
them at rest, else the clip's own calmest second), over sliding windows (1 s long, a quarter
second apart). Each window gives a posture (``library``'s speech-free face) and a change of the
mouth's resting opening; the style is their geometric median, as NED takes the geometric median
of its style codes over sliding windows: a blink or a syllable in one window does not move it,
and a clip that varies keeps its typical moment. The shading (the expression ratio image) is
the window's nearest that median. A style lives in ``styles_dir()`` as NAME.npz; ``attach_styles``
adds every stored style to a library as extra rows, so ``--emotion NAME``, the control API's
emotion and a region's source can name it like any emotion.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InvalidRequest
from ..face.mesh import NUM_LANDMARKS
from ..io.files import FolderIndex, data_dir, private_folder, write_whole
from . import au
from .controller import NeutralBaseline, estimate_aus
from .library import (
    GRID,
    SHADING_REGIONS,
    ExpressionLibrary,
    carry_lattice,
    load_library,
    region_masks,
    skin_mask,
    template_lattice,
)
from .measure import ClipMeasure, clip_posture, log_ratio, measure_clip, speech_basis
from .regions import SOURCES

STYLE_VERSION = 1
WINDOW = 25  # frames in a window: a second of a 25 fps clip, several syllables
STRIDE = 6  # frames between windows
MAX_FRAMES = 300
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
_NAME_RULE = "1-40 letters, digits, '-' or '_', starting with a letter; not an emotion's name"


@dataclass(frozen=True)
class Style:
    """One emotion as one clip shows it, measured like a library row (``library.ExpressionLibrary``)."""

    name: str
    template: np.ndarray  # (NUM_LANDMARKS, 2) the neutral face it was measured against, canonical units
    geometry: np.ndarray  # (NUM_LANDMARKS, 2) posture change, mouth opening factored out
    opening: float  # change of the resting inner-lip gap, canonical units
    shading: np.ndarray  # (len(SHADING_REGIONS), GRID, GRID) log luminance ratio on ``template``'s lattice
    source: str  # the clip's file name
    windows: int  # sliding windows the median was taken over

    def save(self, path: str | Path) -> None:
        """Write the style to ``path``, whole or not at all, user-only."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, version=STYLE_VERSION, name=self.name, template=self.template.astype(np.float32),
                            geometry=self.geometry.astype(np.float32), opening=self.opening,
                            shading=self.shading.astype(np.float16), regions=np.array(SHADING_REGIONS), source=self.source,
                            windows=self.windows)
        write_whole(path, buffer.getvalue(), private=True)


def styles_dir() -> Path:
    """``$LIVEMOTION_DATA_DIR/styles``, else the user data directory's (beside the profiles)."""
    return data_dir("styles")


def check_style_name(name: str) -> str:
    """``name`` if a style may be called so (not an emotion or a region source), else ``InvalidRequest``."""
    if not _NAME.match(name) or name in (*au.EMOTIONS, *SOURCES):
        raise InvalidRequest(f"style name {name!r} is not allowed: use {_NAME_RULE}")
    return name


def load_style(path: str | Path) -> Style:
    """The style in ``path``, or one line saying why it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            style = Style(str(data["name"]), data["template"].astype(np.float64), data["geometry"].astype(np.float64),
                          float(data["opening"]), data["shading"].astype(np.float32), str(data["source"]),
                          int(data["windows"]))
            version, regions = int(data["version"]), tuple(data["regions"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise InvalidRequest(f"{path} is not a livemotion style ({error}): make it with `livemotion style CLIP "
                             "--name NAME`") from None
    if version != STYLE_VERSION or regions != SHADING_REGIONS or style.geometry.shape != (NUM_LANDMARKS, 2) \
            or style.shading.shape != (len(SHADING_REGIONS), GRID, GRID):
        raise InvalidRequest(f"{path} is a style of another livemotion version: make it anew with `livemotion style`")
    return style


def _style_or_none(path: Path) -> Style | None:
    try:
        return load_style(path)
    except InvalidRequest:
        return None


_STYLES = FolderIndex(_style_or_none)


def list_styles() -> list[Style]:
    """The stored styles, by name; files that are not styles are left out. Each file is read
    once, and again only when it changes (``FolderIndex``)."""
    return _STYLES(styles_dir())


def free_style_path(name: str, overwrite: bool = False) -> Path:
    """Where style ``name`` is stored; ``InvalidRequest`` if the name is not allowed, or taken and
    not to be replaced (checked again before the slow measuring, so nothing is measured in vain)."""
    path = styles_dir() / f"{check_style_name(name)}.npz"
    if path.exists() and not overwrite:
        raise InvalidRequest(f"style {name!r} exists: choose another name, or replace it (--force)")
    return path


def save_style(style: Style, overwrite: bool = False) -> Path:
    """Store ``style`` under its name (``overwrite`` to replace one); its path."""
    path = free_style_path(style.name, overwrite)
    private_folder(path.parent)
    style.save(path)
    return path


def delete_style(name: str) -> Path:
    """Remove style ``name``; its path, or ``InvalidRequest`` if there is none."""
    path = styles_dir() / f"{check_style_name(name)}.npz"
    if not path.exists():
        raise InvalidRequest(f"no style {name!r}: `livemotion styles` lists them")
    path.unlink()
    return path


def attach_styles(library: ExpressionLibrary, styles: list[Style] | None = None, size: int = 256) -> ExpressionLibrary:
    """``library`` with ``styles`` (default: every stored one) as extra rows after its emotions.

    Geometry and opening are relative motions in canonical units and carry over as they are; the
    shading is resampled from the style's neutral face onto the library's template.
    """
    styles = list_styles() if styles is None else styles
    if not styles:
        return library
    shading = [carry_lattice(s.shading, s.template, library.template, size) for s in styles]
    def none(rows: np.ndarray) -> np.ndarray:  # a style keeps no mouth interior and no face exemplar,
        return np.zeros((len(styles), *rows.shape[1:]), rows.dtype)  # nor a parting (it needs a neutral take)

    return replace(
        library, geometry=np.concatenate([library.geometry, [s.geometry for s in styles]]),
        opening=np.concatenate([library.opening, [s.opening for s in styles]]),
        parting=np.concatenate([library.parting, none(library.parting)]),
        speech_scale=np.concatenate([library.speech_scale, np.ones(len(styles))]),  # nor speech's scale
        shading=np.concatenate([library.shading, np.stack(shading)]).astype(np.float32),
        measured=np.concatenate([library.measured, np.zeros(len(styles), bool)]),
        mouths=np.concatenate([library.mouths, none(library.mouths)]),
        faces=np.concatenate([library.faces, none(library.faces)]),
        face_points=np.concatenate([library.face_points, none(library.face_points)]),
        mouth_faces=np.concatenate([library.mouth_faces, none(library.mouth_faces)]),
        mouth_face_points=np.concatenate([library.mouth_face_points, none(library.mouth_face_points)]),
        styles=library.styles + tuple(s.name for s in styles))


def geometric_median(points: np.ndarray, iterations: int = 100) -> np.ndarray:
    """(D,) the point minimising the sum of Euclidean distances to ``points`` (N, D) (Weiszfeld)."""
    median = points.mean(axis=0)
    for _ in range(iterations):
        distance = np.maximum(np.linalg.norm(points - median, axis=1), 1e-12)
        moved = (points / distance[:, None]).sum(axis=0) / (1.0 / distance).sum()
        if np.linalg.norm(moved - median) < 1e-9:
            return moved
        median = moved
    return median


def _window(clip: ClipMeasure, start: int) -> ClipMeasure:
    end = start + WINDOW
    return replace(clip, canonical=clip.canonical[start:end], luminance=clip.luminance[start:end])


def _starts(frames: int) -> range:
    return range(0, max(frames - WINDOW, 0) + 1, STRIDE)


def _calmest_window(clip: ClipMeasure) -> ClipMeasure:
    """The window whose face shows the least emotion (AU reading against a typical calm face)."""

    typical = NeutralBaseline().features
    fields = au.fields(clip.canonical.mean(axis=0))
    strength = np.array([estimate_aus(au.features(face), typical, fields).sum() for face in clip.canonical])
    start = min(_starts(len(strength)), key=lambda s: float(strength[s:s + WINDOW].mean()))
    return _window(clip, start)


def extract_style(clip: str | Path, name: str, neutral: str | Path | None = None, size: int = 256,
                  progress: Callable[[str], None] | None = None) -> Style:
    """The style ``clip`` shows, measured against ``neutral`` (a clip of the same person at rest;
    None: the clip's own calmest window, weaker when the clip never rests)."""
    report = progress or (lambda _: None)
    check_style_name(name)
    label = ("reference", "neutral")
    report(f"{Path(neutral or clip).name}: finding the neutral face")
    first = measure_clip(neutral or clip, None, size, MAX_FRAMES, label)
    calm = first if neutral else _calmest_window(first)
    template = calm.canonical.mean(axis=0)
    report(f"{Path(clip).name}: measuring the expression")
    expressive = measure_clip(clip, template, size, MAX_FRAMES, label)
    if len(expressive.canonical) < WINDOW:
        raise InvalidRequest(f"{clip}: a face was found in only {len(expressive.canonical)} frames; a style needs "
                             f"{WINDOW} or more (about a second)")
    if neutral:
        rest_clip = measure_clip(neutral, template, size, MAX_FRAMES, label)
        speech = speech_basis(rest_clip)
    else:  # the clip's calm second, measured again on the template's lattice for its shading
        rest_clip = _calmest_window(expressive)
        speech = load_library().speech
    rest = clip_posture(rest_clip, speech)
    windows = [clip_posture(_window(expressive, start), speech) for start in _starts(len(expressive.canonical))]
    geometry = np.array([w.shape - rest.shape - speech * (w.gap - rest.gap) for w in windows])
    opening = np.array([w.gap - rest.gap for w in windows])
    # Opening is weighed like the landmarks' motion: one number against 478 points, scaled to count.
    joint = np.concatenate([geometry.reshape(len(windows), -1), opening[:, None] * np.sqrt(NUM_LANDMARKS)], axis=1)
    median = geometric_median(joint)
    typical = windows[int(np.argmin(np.linalg.norm(joint - median, axis=1)))]
    skin = skin_mask(*template_lattice(template, size))
    shading = log_ratio(typical.luminance, rest.luminance, skin)[None] * region_masks(template, size)
    return Style(name, template, median[:-1].reshape(NUM_LANDMARKS, 2), float(median[-1] / np.sqrt(NUM_LANDMARKS)),
                 shading.astype(np.float32), Path(clip).name, len(windows))


