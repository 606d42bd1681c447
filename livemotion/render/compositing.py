"""Compositing: the engine's coarse flow and shading applied to the original frame, once, at its own resolution.

The engine returns a smooth backward flow on a lattice over the face's aligned crop
(``engines.warp``). Here that lattice is carried to the face's region of the full frame
(bilinear: the field is smooth), turned from crop pixels into frame pixels, and the original
pixels are resampled there once (Lanczos, the sharpest of OpenCV's kernels). Nothing is cut out, warped and warped back, so a face
of any size keeps its detail. Pixels the face mask does not reach keep their original bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..face.alignment import Alignment
from ..face.masks import disc_kernel
from ..face.mesh import EYE_CORNERS, FACE_OVAL, LOWER_LID, OUTER_LIP_CONTOUR, UPPER_LID

_CAVITY = np.array([60.0, 28.0, 30.0])  # RGB of a shadowed mouth interior, the brightest a filled cavity gets
_SUBPIXEL_BITS = 4  # polygons are drawn to 1/16 pixel
_EDGE_SLACK = 0.15  # share of a pixel by which the carried and the drawn mouth may differ at an edge they share
_LANCZOS_UP_TO_IOD = 120.0  # eyes this far apart (frame pixels) or closer: the face is resampled with Lanczos
_STILL_PX, _STILL_GAIN = 0.01, 1e-4  # flow (frame pixels) and log gain below which a pixel keeps its bytes
# Share of the lattice by which the live lips reach past their contour: the lips' skin edge moves
# with every syllable, and a take's closed lips there would blur it.
_LIPS_MARGIN = 0.03
_EXEMPLAR_DETAIL = 0.015  # IODs: finer detail than a Gaussian of this sigma stays the live face's
_EXEMPLAR_STEP = 0.75  # the exemplar's blur in coarse-grid pixels, at least: the grid is as coarse as that allows
# Each eye's opening as a polygon: outer corner, upper lid, inner corner, lower lid back.
EYE_OPENINGS = tuple((outer, *upper, inner, *lower[::-1])
                     for (outer, inner), upper, lower in zip(EYE_CORNERS, UPPER_LID, LOWER_LID))
_EYE_INNER_CORNER = 1 + len(UPPER_LID[0])  # index of the inner corner in an ``EYE_OPENINGS`` polygon
_CARRY_STEPS = 4  # fixed-point steps that find where the warp shows a point (``_carried``)
# A lid edge's lashes and shadow reach this share of the iris radius into the opening: the live eye
# is shown that far inside its tracked outline, so a raised lid leaves no old lash line behind.
_LASH_DEPTH = 0.3
# An opening whose live area is below these shares of the eye's width squared is a blink (or closing
# into one; open eyes measure 0.12-0.37, 0.16-0.28 typically, on the 28 talking clips): it is
# left to the warp, which stretches the lid, not filled white.
_BLINK_FROM, _BLINK_SPAN = 0.08, 0.05
# Only an eye the edit widens gets its eyeball redrawn, fully from this growth of its opening's area:
# where the lids narrow it (sad, happy, angry), the warp's narrowed eye reads as the emotion.
_WIDENED = 0.1
# The eye's white is copied from pixels within this share of its brighter quarter's brightness
# (lashes, lid shadow and the iris's rim left out), and shaded to this share right under a lid.
_WHITE_BRIGHT, _LID_SHADE = 0.8, 0.8
_WHITE_ABOVE_IRIS = 0.5  # iris radii of white a raised lid may show above the iris: about the widest eyes open
_SEAM = 0.15  # iris radii over which the live eyeball blends into the fill
_LID_FOLD = 1.0  # iris radii of lid skin above a lifted lid that fold into its rise (``_lift_lid``)
# An eye is redrawn fully where its white is this much brighter than the skin around it, not at
# all where it is no brighter (a ramp, so a face near the line does not flicker between the two).
_WHITE_CONTRAST = 0.15
@dataclass(frozen=True)
class Exemplar:
    """The person's own expressive face (a calibration frame, as an aligned crop) to show in part of
    the edited face: brows and their furrows, forehead lines, the skin around the eyes, cheeks,
    nasolabial folds and chin (Zhang et al.'s per-region exemplars, 2006), all on the lattice of
    ``FaceLayers``."""

    image: np.ndarray  # (S, S, 3) uint8 the exemplar's aligned crop (``face.alignment.align``, same size)
    flow: np.ndarray  # (G, G, 2) float32 backward flow, crop pixels: where each edited-face point is on it
    weight: np.ndarray  # (G, G) float32 0..1 how much of it shows (the region, feathered, times intensity)


@dataclass(frozen=True)
class FaceLayers:
    """What the compositor applies to one face, all on the engine's ``grid`` x ``grid`` lattice over the crop."""

    flow: np.ndarray  # (G, G, 2) float32 backward flow, crop pixels
    mask: np.ndarray  # (G, G) float32 0..1: where the edit may change pixels (the face, feathered)
    log_gain: np.ndarray | None  # (G, G) float32 log of the luminance ratio to multiply in (shading), or None
    exemplar: Exemplar | None = None
    mouth_exemplars: tuple[Exemplar, ...] = ()  # the mouth from the take's frames as open as the edited one


@dataclass(frozen=True)
class MouthChange:
    """The inner-lip contour before and after the edit (frame pixels), when the edit opens or closes the mouth."""

    source: np.ndarray  # (C, 2) ``face.mesh.INNER_LIP_CONTOUR`` as tracked
    target: np.ndarray  # (C, 2) where the edit puts it
    source_outer: np.ndarray  # (D, 2) ``face.mesh.OUTER_LIP_CONTOUR`` as tracked: where the lips' colour is read
    interior: np.ndarray | None = None  # (*MOUTH_PATCH, 3) uint8 the person's own mouth interior to show in a new opening
    interior_to_frame: np.ndarray | None = None  # (2, 3) affine: the interior patch -> frame pixels (target mouth)


@dataclass(frozen=True)
class EyeChange:
    """An eye whose lids the edit moves (frame pixels, openings in ``EYE_OPENINGS`` order)."""

    opening: np.ndarray  # (P, 2) as tracked
    target: np.ndarray  # (P, 2) where the edit asks for it (the warp delivers part of a lid's own motion)
    iris_centre: np.ndarray  # (2,) as tracked
    iris_radius: float
    strength: float = 1.0  # 0..1 how fully the eye may be redrawn (less on a turned head)


def pixel_box(points: np.ndarray, before: int, after: int, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) the pixels around ``points`` (P, 2), ``before`` more to the left and top and
    ``after`` to the right and bottom, inside an image of ``shape``; None when nothing is left."""
    x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int) - before, 0)
    x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + after, (shape[1], shape[0]))
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None


def lattice_mask(lattice_points: np.ndarray, grid: int, feather: float = 0.05) -> np.ndarray:
    """(grid, grid) float32: 1 inside the hull of the face oval, falling off over ``feather`` * grid outside.

    Args:
        lattice_points: (NUM_LANDMARKS, 2) landmarks in lattice units (crop pixels * (grid - 1) / (size - 1)).
    """
    mask = np.zeros((grid, grid), np.float32)
    hull = cv2.convexHull(np.round(lattice_points[list(FACE_OVAL)]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    radius = max(1, int(round(feather * grid)))
    mask = cv2.dilate(mask, disc_kernel(radius))
    mask = cv2.GaussianBlur(mask, (0, 0), 0.5 * radius)
    # the Gaussian's far tail would let a whisper of flow reach the background: cut it at 2 %
    return np.clip((mask - 0.02) / 0.98, 0.0, 1.0)


def exemplar_mask(lattice_points: np.ndarray, grid: int, upper: float, lower: float,
                  feather: float = 0.025) -> np.ndarray:
    """(grid, grid) float32 0..1: where a person's own expressive face (``Exemplar``) may show: the
    face inside its outline but outside the lips, at ``upper`` above the upper eyelids (brows,
    glabella, forehead) and ``lower`` below them (the eyes, the skin around them, cheeks,
    nasolabial folds, chin), feathered by a Gaussian of ``feather`` * grid. ``lattice_points`` as
    for ``lattice_mask``.

    The lips stay live because they carry the speech (the warp shapes them, and ``MouthChange``
    fills what they uncover). The eyes are the take's: its lids, lashes and the look of the eye
    between them are where the judge reads sadness, surprise and fear on a real face
    (``tools/eval_regions.py``), and the flow that lays the take's landmarks onto the live face,
    irises and lids among them, puts its irises where the live ones look and closes its lids
    where the live ones blink.
    """
    mask = np.zeros((grid, grid), np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lattice_points[list(FACE_OVAL)]).astype(np.int32)), 1.0)
    inset = max(1, int(round(feather * grid)))  # most of the feathering inside the outline: the take's hair barely shows
    mask = cv2.erode(mask, disc_kernel(inset))
    lids = max(0, int(np.floor(lattice_points[[i for lid in UPPER_LID for i in lid], 1].min())))
    mask[lids:] *= lower
    mask[:lids] *= upper
    mask = cv2.GaussianBlur(mask * (1.0 - _lips_kept(lattice_points, grid)), (0, 0), feather * grid)
    return np.clip((mask - 0.01) / 0.99, 0.0, 1.0)  # the Gaussian's far tail cut, as in ``lattice_mask``


def mouth_exemplar_mask(lattice_points: np.ndarray, grid: int, strength: float, feather: float = 0.025) -> np.ndarray:
    """(grid, grid) float32 0..1: where a frame of the person's take as open as the edited mouth
    shows (``FaceLayers.mouth_exemplars``): the lips and the margin ``exemplar_mask`` leaves live
    around them, at ``strength``, feathered alike, so that the two meet without a seam."""
    mask = cv2.GaussianBlur(_lips_kept(lattice_points, grid), (0, 0), feather * grid) * strength
    return np.clip((mask - 0.01) / 0.99, 0.0, 1.0)


def _lips_kept(lattice_points: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid) float32 1 on the lips and ``_LIPS_MARGIN`` * grid around them, else 0."""
    lips = np.zeros((grid, grid), np.float32)
    cv2.fillPoly(lips, [np.round(lattice_points[list(OUTER_LIP_CONTOUR)]).astype(np.int32)], 1.0)
    return cv2.dilate(lips, disc_kernel(max(1, int(round(_LIPS_MARGIN * grid)))))


def resampling_kernel(interocular: float) -> int:
    """The OpenCV kernel that resamples a face whose eyes are ``interocular`` pixels apart: Lanczos
    (8x8) up to ``_LANCZOS_UP_TO_IOD``, bicubic (4x4, a quarter of the cost) above. Measured on
    real clips with eyes 79-86 px apart, bicubic keeps 0.96-0.99 of the detail Lanczos keeps
    (Laplacian variance of the face box, `tools/eval_quality.py`); a larger face spreads the same
    detail over more pixels, so it loses less, and it is where the cost is: 10 ms a frame at 1080p."""
    return cv2.INTER_LANCZOS4 if interocular <= _LANCZOS_UP_TO_IOD else cv2.INTER_CUBIC


def warp_face(frame: np.ndarray, layers: FaceLayers, alignment: Alignment, mouth: MouthChange | None = None,
              eyes: tuple[EyeChange, ...] = ()) -> np.ndarray:
    """A copy of ``frame`` (H, W, 3 uint8) with ``layers`` applied to the face ``alignment`` describes.

    Only the region the mask reaches is touched; there each output pixel is the original frame
    sampled once at (pixel + flow), times exp(log_gain) on skin; where ``mouth`` opens or
    closes the lips, the uncovered mouth is filled (see ``_fill_mouth``), and each of ``eyes``
    shows its own eyeball, the iris round and whole, inside the edited lids (see ``_fill_eye``).
    """
    out = frame.copy()
    grid = layers.flow.shape[0]
    height, width = frame.shape[:2]
    to_lattice = alignment.to_crop * ((grid - 1) / (alignment.size - 1))  # frame pixels -> lattice units
    rows, cols = np.nonzero(layers.mask > 1e-3)
    if len(rows) == 0:
        return out
    from_lattice = cv2.invertAffineTransform(to_lattice)
    corners = np.array([[cols.min() - 1, rows.min() - 1], [cols.max() + 1, rows.min() - 1],
                        [cols.min() - 1, rows.max() + 1], [cols.max() + 1, rows.max() + 1]], np.float64)
    footprint = corners @ from_lattice[:, :2].T + from_lattice[:, 2]
    x0, y0 = np.maximum(np.floor(footprint.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(footprint.max(axis=0)).astype(int) + 1, (width, height))
    if x1 <= x0 or y1 <= y0:
        return out
    roi_to_lattice = to_lattice.copy()
    roi_to_lattice[:, 2] += to_lattice[:, :2] @ (x0, y0)
    # Crop-pixel displacements become frame-pixel ones (the crop's inverse linear part) and fade
    # with the mask on the lattice already: both are linear, so they commute with the upsampling.
    to_frame = cv2.invertAffineTransform(alignment.to_crop)[:, :2].astype(np.float32)
    flow = (layers.flow @ to_frame.T) * layers.mask[..., None]
    gain = layers.log_gain * layers.mask if layers.log_gain is not None else np.zeros_like(layers.mask)
    stack = np.dstack([flow, layers.mask, gain]).astype(np.float32)
    upsampled = cv2.warpAffine(stack, roi_to_lattice, (int(x1 - x0), int(y1 - y0)),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    map_x = upsampled[..., 0] + np.arange(x0, x1, dtype=np.float32)[None, :]
    map_y = upsampled[..., 1] + np.arange(y0, y1, dtype=np.float32)[:, None]
    warped = cv2.remap(frame, map_x, map_y, resampling_kernel(alignment.interocular), borderMode=cv2.BORDER_REFLECT)
    # Where the flow is below what resampling can show (OpenCV's maps have 1/32-pixel steps) and
    # nothing shades, the original bytes stay: a region kept live is exact, not just close.
    # (One OpenCV range test over the four channels and a masked copy: the numpy forms cost ~10 ms
    # a frame at 720p, per-channel OpenCV ops 1.2 ms, this 0.4 ms.)
    still = cv2.inRange(upsampled, (-_STILL_PX, -_STILL_PX, -np.inf, -_STILL_GAIN),
                        (_STILL_PX, _STILL_PX, np.inf, _STILL_GAIN))
    warped = cv2.copyTo(frame[y0:y1, x0:x1], still, warped)
    if mouth is not None:
        _fill_mouth(frame, warped, mouth, (x0, y0), map_x, map_y)
    for eye in eyes:
        _fill_eye(frame, warped, eye, (x0, y0), map_x, map_y)
    if layers.exemplar is not None:
        colour = _blend_exemplar(warped, (layers.exemplar,), alignment, roi_to_lattice, (x0, y0))
        if layers.mouth_exemplars and colour is not None:  # in the same light as the face around it
            _blend_exemplar(warped, layers.mouth_exemplars, alignment, roi_to_lattice, (x0, y0), colour, live_detail=False)
    if layers.log_gain is not None:  # on the rows it shades only: a gain of 0 changes no byte
        shaded = np.flatnonzero(cv2.reduce(cv2.absdiff(upsampled[..., 3], 0), 1, cv2.REDUCE_MAX) > 0)
        if len(shaded):
            band = slice(int(shaded[0]), int(shaded[-1]) + 1)
            ratio = cv2.exp(np.ascontiguousarray(upsampled[band, :, 3]))
            warped[band] = cv2.multiply(warped[band], cv2.merge([ratio, ratio, ratio]), dtype=cv2.CV_8U)  # saturating, rounded
    out[y0:y1, x0:x1] = cv2.copyTo(warped, (upsampled[..., 2] > 0).view(np.uint8), out[y0:y1, x0:x1])
    return out


def _blend_exemplar(warped: np.ndarray, exemplars: tuple[Exemplar, ...], alignment: Alignment,
                    roi_to_lattice: np.ndarray, origin: tuple[int, int], colour: np.ndarray | None = None,
                    live_detail: bool = True) -> np.ndarray | None:
    """Blend the exemplars (usually one; several are mixed by their weights), each carried onto the
    edited face by its flow, into ``warped`` (the region at ``origin``) where their weights say;
    their colour is scaled to the live face's there (or by ``colour``, (3,) the scale found for the
    face around them: a mouth's own mean would dim its teeth to a dark live mouth's), so the light
    is the live one's and only the expression's shapes and creases come from them. Returns the
    colour scale used (None: nothing shown). Detail finer than ``_EXEMPLAR_DETAIL`` (skin texture,
    a pixel or two) stays the live face's: an exemplar is one frame of a compressed take, often
    softer than the live video. Not so with ``live_detail`` False (a mouth: the live lips' edges and
    the dark of their opening would show through the take's teeth as a second mouth): the
    exemplars' own pixels show.

    Only that smooth difference is added, so where the face is large it is worked out on a
    coarser grid (a quarter of the pixels for a face of 720p webcam size) and upsampled; the live
    face's own pixels are never resampled here.
    """
    sigma = _EXEMPLAR_DETAIL * alignment.interocular
    step = int(np.clip(sigma // _EXEMPLAR_STEP, 1, 4)) if live_detail else 1  # frame pixels per coarse-grid pixel
    height, width = warped.shape[:2]
    small = (-(-width // step), -(-height // step))  # (w, h), rounded up: the last coarse pixel may overhang
    to_small = np.diag([1.0 / step, 1.0 / step, 1.0])[:2]
    to_small[:, 2] = 0.5 / step - 0.5  # pixel centres: coarse pixel u covers frame pixels step*u .. step*u + step - 1
    small_to_lattice = roi_to_lattice @ np.vstack([cv2.invertAffineTransform(to_small), (0.0, 0.0, 1.0)])
    # Only the box of the coarse grid the exemplars reach (a lattice cell beyond their weights, which
    # bilinear sampling can carry that far) is worked: all of the face for a face, little for a mouth.
    rows, cols = np.nonzero(np.sum([e.weight for e in exemplars], axis=0) > 1e-3)
    if len(rows) == 0:
        return None
    corners = np.array([(x, y) for x in (cols.min() - 1, cols.max() + 1) for y in (rows.min() - 1, rows.max() + 1)], float)
    lattice_to_small = cv2.invertAffineTransform(small_to_lattice)
    reached = corners @ lattice_to_small[:, :2].T + lattice_to_small[:, 2]
    bx0, by0 = np.maximum(np.floor(reached.min(axis=0)).astype(int) - 1, 0)
    bx1, by1 = np.minimum(np.ceil(reached.max(axis=0)).astype(int) + 2, small)
    if bx1 <= bx0 or by1 <= by0:
        return None
    box_to_lattice = small_to_lattice @ np.array([[1.0, 0.0, bx0], [0.0, 1.0, by0], [0.0, 0.0, 1.0]])
    coarse = [cv2.warpAffine(np.dstack([e.flow, e.weight]).astype(np.float32), box_to_lattice, (bx1 - bx0, by1 - by0),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0) for e in exemplars]
    weight = np.sum([c[..., 2] for c in coarse], axis=0)
    shown = weight > 0.5  # where the colour is compared
    rows, cols = np.nonzero(weight > 1e-3)  # work on the exemplars' rows and columns only
    if len(rows) == 0 or (colour is None and not shown.any()):
        return None
    band, across = slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)
    if live_detail:  # a face's whole rows, as the coarse grid spans them (the blur reaches across)
        across = slice(0, bx1 - bx0)
    fy0, fx0 = (by0 + band.start) * step, (bx0 + across.start) * step  # in the region, frame pixels
    region = warped[fy0: min((by0 + band.stop) * step, height), fx0: min((bx0 + across.stop) * step, width)]
    live = cv2.resize(region, (across.stop - across.start, band.stop - band.start),
                      interpolation=cv2.INTER_AREA).astype(np.float32)
    x0, y0 = origin
    xs, ys = np.meshgrid(x0 + step * np.arange(bx0 + across.start, bx0 + across.stop, dtype=np.float32) + 0.5 * (step - 1),
                         y0 + step * np.arange(by0 + band.start, by0 + band.stop, dtype=np.float32) + 0.5 * (step - 1))
    to_crop = alignment.to_crop.astype(np.float32)
    crop_x = to_crop[0, 0] * xs + to_crop[0, 1] * ys + to_crop[0, 2]
    crop_y = to_crop[1, 0] * xs + to_crop[1, 1] * ys + to_crop[1, 2]
    weight, shown = weight[band, across], shown[band, across]
    layers = [layer[band, across] for layer in coarse]
    drawn = [cv2.remap(exemplar.image, crop_x + layer[..., 0], crop_y + layer[..., 1], cv2.INTER_CUBIC,
                       borderMode=cv2.BORDER_REPLICATE).astype(np.float32) for exemplar, layer in zip(exemplars, layers)]
    seen = drawn[0] if len(drawn) == 1 else sum(  # the exemplars mixed by their weights
        layer[..., 2:3] / np.maximum(weight, 1e-6)[..., None] * image for layer, image in zip(layers, drawn))
    if colour is None:  # (OpenCV's masked means: numpy's boolean indexing copies the pixels first, 10x the cost)
        where = shown.view(np.uint8)
        colour = (np.array(cv2.mean(live, where)[:3]) / np.maximum(np.array(cv2.mean(seen, where)[:3]), 1.0)).astype(np.float32)
    change = seen * colour - live
    change = weight[..., None] * (cv2.GaussianBlur(change, (0, 0), sigma / step) if live_detail else change)
    change = cv2.resize(change, (change.shape[1] * step, change.shape[0] * step), interpolation=cv2.INTER_LINEAR)
    region[:] = cv2.add(region, change[: region.shape[0], : region.shape[1]], dtype=cv2.CV_8U)  # saturating, rounded
    return colour


def _filled(size: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """(H, W) uint8 255 inside ``polygon`` (P, 2) pixel coordinates, edges anti-aliased and drawn to
    1/16 pixel: a mouth's edge that a flow moved by a fraction of a pixel is drawn where it went."""
    mask = np.zeros(size, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * (1 << _SUBPIXEL_BITS)).astype(np.int32)], 255, cv2.LINE_AA,
                 _SUBPIXEL_BITS)
    return mask


def _fill_mouth(frame: np.ndarray, warped: np.ndarray, mouth: MouthChange, origin: tuple[int, int],
                map_x: np.ndarray, map_y: np.ndarray) -> None:
    """Where the edit opens the lips further than the speaker did, the person's own mouth interior
    shows when the library has one for this expression (``mouth.interior``: a calibration
    profile's frame of that emotion, teeth included), else a dark mouth cavity (the person's own
    darkest mouth tone when their mouth was open, else a dark red-brown); where it closes them
    over what was open (a grin's teeth), the lips' own colour covers it.
    Changes ``warped`` (the region at ``origin``) in place.

    The opening is compared in the output: the target inner-lip polygon against the source
    mouth carried through the same flow, so every pixel knows what it would otherwise show.
    Only the mouth's box is touched.
    """
    x0, y0 = origin
    found = pixel_box(np.vstack([mouth.source_outer, mouth.target]) - (x0, y0), 4, 5, warped.shape)
    if found is None:
        return
    bx0, by0, bx1, by1 = found
    box = (slice(by0, by1), slice(bx0, bx1))
    shift = np.array([x0 + bx0, y0 + by0], np.float64)
    # the source mouth, drawn in frame coordinates over the part of the frame the box samples
    sx, sy = map_x[box], map_y[box]
    fx0, fy0 = int(max(np.floor(sx.min()) - 2, 0)), int(max(np.floor(sy.min()) - 2, 0))
    fx1, fy1 = int(min(np.ceil(sx.max()) + 3, frame.shape[1])), int(min(np.ceil(sy.max()) + 3, frame.shape[0]))
    mouth_in = _filled((fy1 - fy0, fx1 - fx0), mouth.source - (fx0, fy0))
    # Both outlines get the same soft edge, so that where the edit leaves an edge of the mouth where
    # it was they cancel exactly instead of leaving a one-pixel rim of fill along it.
    mouth_in_moved = cv2.GaussianBlur(cv2.remap(mouth_in, sx - fx0, sy - fy0, cv2.INTER_LINEAR).astype(np.float32)
                                      / 255.0, (0, 0), 1.0)
    mouth_out = _filled((by1 - by0, bx1 - bx0), mouth.target - shift)
    mouth_out_f = cv2.GaussianBlur(mouth_out.astype(np.float32) / 255.0, (0, 0), 1.0)
    # what a resampled edge differs from a drawn one by (a fraction of a pixel) is no change
    difference = mouth_out_f - mouth_in_moved
    opened = np.clip((difference - _EDGE_SLACK) / (1.0 - _EDGE_SLACK), 0.0, 1.0)
    closed = np.clip((-difference - _EDGE_SLACK) / (1.0 - _EDGE_SLACK), 0.0, 1.0)
    if opened.max() < 0.05 and closed.max() < 0.05:
        return
    region = frame[fy0:fy1, fx0:fx1]
    result = warped[box].astype(np.float32)
    if opened.max() >= 0.05:
        if mouth.interior is not None and mouth.interior_to_frame is not None:
            to_box = mouth.interior_to_frame.copy()
            to_box[:, 2] -= shift
            fill = cv2.warpAffine(mouth.interior, to_box, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        else:
            inside = region[mouth_in > 127]
            cavity = np.percentile(inside, 10, axis=0) if len(inside) > 30 else _CAVITY
            fill = np.minimum(cavity, _CAVITY)  # never brighter than a shadowed mouth
        result += opened[..., None] * (fill - result)
    if closed.max() >= 0.05:
        lips = _filled((fy1 - fy0, fx1 - fx0), mouth.source_outer - (fx0, fy0))
        lip_pixels = region[(lips > 127) & (mouth_in <= 127)]
        if len(lip_pixels):
            result += closed[..., None] * (np.median(lip_pixels, axis=0) - result)
    warped[box] = np.clip(np.rint(result), 0, 255).astype(np.uint8)


def _carried(points: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """(P, 2) where the warp shows ``points`` (P, 2 frame pixels): the output pixels whose backward
    map (``map_x``, ``map_y``: the region at ``origin``) reaches them, by fixed-point steps (the
    flow is smooth, so a few suffice)."""
    shown = points.astype(np.float32).copy()
    for _ in range(_CARRY_STEPS):
        at = (shown - np.asarray(origin, np.float32)).reshape(1, -1, 2)
        reached = np.stack([cv2.remap(m, at[..., 0], at[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
                            for m in (map_x, map_y)], axis=1)
        shown += points - reached
    return shown.astype(np.float64)


def _fill_eye(frame: np.ndarray, warped: np.ndarray, eye: EyeChange, origin: tuple[int, int],
              map_x: np.ndarray, map_y: np.ndarray) -> None:
    """Redraw a widened eye in ``warped`` (the region at ``origin``, made through the backward maps
    ``map_x``, ``map_y``), in place. A smooth warp stretches the eye with its lids: the iris grows
    tall and no white shows above it, and it delivers only part of a lid's own motion. Here the
    upper lid is lifted from where the warp put it (its tracked points carried through the maps,
    ``_carried``) to where the edit asks (``_lift_lid``), and inside the lids the eyeball is the
    live one moved with the eye's corners only: the iris stays round and the gaze is the live one.
    What the raised lid uncovers is filled: the iris's hidden part with the iris's own colour, the
    rest with the eye's white as the live eye shows it in that column (``_eye_white``). White above
    the iris is how people see surprise and fear.

    Blinks, eyes not widened by their upper lids and eyes that show no white are left to the warp
    (``_eye_widened``, ``_white_contrast``).
    """
    source = eye.opening
    delivered = _carried(source, map_x, map_y, origin)
    corners = [0, _EYE_INNER_CORNER]
    shift = delivered[corners].mean(axis=0) - source[corners].mean(axis=0)
    asked = delivered.copy()
    upper = slice(1, _EYE_INNER_CORNER)
    # the lid rises where the edit asks, but never further above the iris than eyes open
    highest = eye.iris_centre[1] + shift[1] - (1.0 + _WHITE_ABOVE_IRIS) * eye.iris_radius
    raised = np.maximum(eye.target[upper, 1], highest)
    asked[upper, 1] = np.minimum(raised, delivered[upper, 1])
    # A lower lid the edit lowers is left to the warp: people widen their eyes with the upper lids,
    # and a white band under the iris reads as a stare with the lower lashes drawn inside the eye.
    lower = slice(_EYE_INNER_CORNER + 1, None)
    asked[lower] = np.where(asked[lower, 1:] > source[lower, 1:] + shift[1], source[lower] + shift, asked[lower])
    strength = eye.strength * _eye_widened(source, asked)
    if strength <= 0.0:
        return
    fold = _LID_FOLD * eye.iris_radius
    x0, y0 = origin
    found = pixel_box(np.vstack([source + shift, asked, asked[upper] - (0.0, fold + 1.0)]) - (x0, y0), 2, 3,
                       warped.shape)
    if found is None:
        return
    bx0, by0, bx1, by1 = found
    box_origin = np.array([x0 + bx0, y0 + by0], np.float64)
    size = (int(by1 - by0), int(bx1 - bx0))
    xs = (np.arange(size[1], dtype=np.float32) + box_origin[0] - shift[0])[None, :].repeat(size[0], axis=0)
    ys = (np.arange(size[0], dtype=np.float32) + box_origin[1] - shift[1])[:, None].repeat(size[1], axis=1)
    live = cv2.remap(frame, xs, ys, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    opening = _filled(size, source + shift - box_origin)
    cx, cy = eye.iris_centre  # (in frame pixels before the shift: ``xs``, ``ys``)
    distance = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    depth = max(1, int(round(_LASH_DEPTH * eye.iris_radius)))
    lash_band = disc_kernel(depth)
    inner = cv2.erode(opening, lash_band) > 127
    around = cv2.dilate(np.maximum(opening, _filled(size, asked - box_origin)), disc_kernel(1)) == 0
    brightness = live.sum(axis=2)
    strength *= _white_contrast(brightness, inner & (distance > 1.2 * eye.iris_radius), around)
    if strength <= 0.0:
        return
    target = delivered + strength * (asked - delivered)
    edited = _filled(size, target - box_origin)
    uncovered = ((edited > 127) & (opening <= 127)).view(np.uint8)
    near = cv2.dilate(uncovered, lash_band)
    shown = np.where(near > 0, 0, opening).astype(np.uint8)  # the old lid edge goes where a lid was raised
    visible = shown > 127
    iris = np.clip(eye.iris_radius + 0.5 - distance, 0.0, 1.0)
    iris_seen, white_seen = visible & (iris > 0.5), visible & (distance > 1.2 * eye.iris_radius)
    white = _eye_white(live, brightness, white_seen, eye.iris_radius)
    if white is None:  # too little of the white shows to copy it
        return
    # the lid shades the eyeball just under it
    under_lid = cv2.distanceTransform((edited > 127).view(np.uint8), cv2.DIST_L2, 3)
    white = white * (_LID_SHADE + (1.0 - _LID_SHADE) * np.clip(under_lid / (0.5 * eye.iris_radius), 0.0, 1.0))[..., None]
    # the iris's hidden part in its own median colour (a mirror image would copy its catchlights)
    iris_colour = np.median(live[iris_seen], axis=0) if iris_seen.any() else live[visible].min(axis=0)
    fill = iris[..., None] * iris_colour + (1.0 - iris[..., None]) * white
    # the masks above are whole pixels: a soft seam keeps them from stepping a pixel between frames
    kept = cv2.GaussianBlur(shown.astype(np.float32) / 255.0, (0, 0), max(0.5, _SEAM * eye.iris_radius))[..., None]
    eyeball = kept * live + (1.0 - kept) * fill
    region = _lift_lid(warped[by0:by1, bx0:bx1], delivered[: _EYE_INNER_CORNER + 1] - box_origin,
                       target[: _EYE_INNER_CORNER + 1] - box_origin, fold, depth).astype(np.float32)
    weight = strength * edited[..., None].astype(np.float32) / 255.0
    warped[by0:by1, bx0:bx1] = np.clip(np.rint(region + weight * (eyeball - region)), 0, 255).astype(np.uint8)


def _lift_lid(region: np.ndarray, delivered: np.ndarray, lifted: np.ndarray, fold: float, lashes: float) -> np.ndarray:
    """``region`` (H, W, 3) with its upper lid moved up from ``delivered`` to ``lifted`` (each (L, 2),
    the lid's edge from corner to corner, region pixels): in each column the lid skin from ``fold``
    pixels above the lifted lid down to the delivered edge and the ``lashes`` pixels of lashes under
    it is squeezed into the rows above the lifted edge, as lid skin folds into its crease when the
    lid rises. Other rows are returned as they are (the rows the lid left are the eyeball's)."""
    columns = np.arange(region.shape[1], dtype=np.float32)
    was = np.interp(columns, *delivered[np.argsort(delivered[:, 0])].T)
    now = np.minimum(np.interp(columns, *lifted[np.argsort(lifted[:, 0])].T), was)
    top = now - fold
    rows = np.arange(region.shape[0], dtype=np.float32)[:, None]
    squeezed = top + (rows - top) * np.where(now < was, was + lashes - top, fold) / fold
    source_rows = np.where((rows > top) & (rows <= now), squeezed, rows).astype(np.float32)
    source_columns = np.broadcast_to(columns, region.shape[:2]).astype(np.float32)
    return cv2.remap(region, source_columns, source_rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _eye_widened(source: np.ndarray, target: np.ndarray) -> float:
    """0..1 how fully an eye is redrawn: an open eye (``source``, not a blink: ``_BLINK_FROM``)
    that the edit (``target``, both (P, 2) openings) widens (``_WIDENED``)."""
    live_area = cv2.contourArea(source.astype(np.float32))
    edited_area = cv2.contourArea(target.astype(np.float32))
    width_squared = float(np.sum((source[0] - source[_EYE_INNER_CORNER]) ** 2))
    if live_area < 1.0 or width_squared < 1.0:
        return 0.0
    opened = np.clip((live_area / width_squared - _BLINK_FROM) / _BLINK_SPAN, 0.0, 1.0)
    widened = np.clip((edited_area / live_area - 1.0) / _WIDENED, 0.0, 1.0)
    return float(opened * widened)


def _white_contrast(brightness: np.ndarray, white_seen: np.ndarray, skin_seen: np.ndarray) -> float:
    """0..1 how fully an eye may be redrawn by its white (``white_seen``, (H, W) bool, of the eye's
    ``brightness``, (H, W) the sum of its channels): fully where its brighter quarter is
    ``_WHITE_CONTRAST`` brighter than the skin around the eye (``skin_seen``), not at all where it
    is no brighter, as in narrow eyes whose opening shows lashes and iris only (copying their dark
    pixels up would draw a band)."""
    seen = brightness[white_seen]
    if seen.size < 4 or not skin_seen.any():
        return 0.0
    contrast = float(np.percentile(seen, 75)) / max(float(np.median(brightness[skin_seen])), 1.0)
    return float(np.clip((contrast - 1.0) / _WHITE_CONTRAST, 0.0, 1.0))


def _eye_white(live: np.ndarray, brightness: np.ndarray, white_seen: np.ndarray, iris_radius: float) -> np.ndarray | None:
    """(H, W, 3) float32 the eye's white to fill with, per column of ``live`` (H, W, 3): the mean of
    that column's bright live white pixels (``white_seen``, (H, W) bool; bright: ``brightness``, the
    channels' sum, within ``_WHITE_BRIGHT`` of the brighter quarter's), so the eyeball keeps its own shading from corner to
    corner; columns without (the iris's) take it from their neighbours. None when less than two
    columns show any."""
    seen = brightness[white_seen]
    if seen.size < 4:
        return None
    bright = white_seen & (brightness >= _WHITE_BRIGHT * float(np.percentile(seen, 75)))
    columns = np.nonzero(bright.any(axis=0))[0]
    if len(columns) < 2:
        return None
    chosen = bright[:, columns, None]
    per_column = (live[:, columns] * chosen).sum(axis=0) / chosen.sum(axis=0)  # (C, 3)
    across = np.arange(live.shape[1])
    white = np.stack([np.interp(across, columns, per_column[:, channel]) for channel in range(3)], axis=1)
    white = cv2.GaussianBlur(white[None].astype(np.float32), (0, 0), sigmaX=max(0.5, 0.3 * iris_radius), sigmaY=0.1)
    return np.broadcast_to(white, live.shape)
