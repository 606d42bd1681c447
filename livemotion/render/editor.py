"""The editor stage: expression control -> engine (flows on a lattice) -> shading -> compositor.

``ExpressionEditor.edit`` is what ``runtime.pipeline.Pipeline`` calls for every frame with a face.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..engines.backends import EngineBackend
from ..engines.warp import FineWarpEngine
from ..errors import InvalidRequest
from ..expression.au import fold_free_target
from ..expression.controller import (
    DriveSource,
    ExpressionController,
    ExpressionPlan,
    ExpressionRequest,
    RequestSource,
)
from ..expression.library import (
    GRID,
    SHADING_REGIONS,
    TAKES_MOUTH,
    ExpressionLibrary,
    sample_lattice,
    template_to_crop,
)
from ..face.alignment import align, engine_points, lattice_coordinates, mouth_patch_transform
from ..face.flow import pinned_flow
from ..face.mesh import INNER_LIP_CONTOUR, IRIS_CENTRES, IRIS_RIMS, OUTER_LIP_CONTOUR, triangles
from ..types import FaceTrack, Frame
from .compositing import (
    EYE_OPENINGS,
    Exemplar,
    EyeChange,
    FaceLayers,
    MouthChange,
    exemplar_mask,
    lattice_mask,
    mouth_exemplar_mask,
    warp_face,
)
from .mouth import LearnedMouth

_MOUTH_CHANGE_MIN = 0.005  # canonical units: a smaller change of the opening uncovers nothing to fill
_EYE_TURN = (20.0, 30.0)  # degrees of yaw over which eyes stop being redrawn (``_eye_changes``)
_EYE_MIN_IRIS_PX = 1.5  # iris radius (frame pixels) below which an eye is left to the warp
_EYE_CHANGE_MIN_PX = 0.3  # lids moved less than this (frame pixels, besides the whole eye's move) change nothing to redraw
_EXEMPLAR_MIN = 0.02  # an emotion's weight below which its exemplar is not worth an engine call
# The shading regions above the upper eyelids and below them: the exemplar shows in each part at
# the least of its regions' shares, so a region kept live (or given another emotion) stays so.
_UPPER = [SHADING_REGIONS.index(name) for name in ("forehead", "glabella")]
_LOWER = [SHADING_REGIONS.index(name) for name in ("eyes", "nasolabial", "chin")]
LAYER_GRID = GRID  # side of the lattice the compositor gets: the library's shading resolution (1/15 IOD)


@dataclass(frozen=True)
class _ChosenExemplar:
    """The person's own face the edit shows (``ExpressionEditor._face_exemplar``)."""

    image: np.ndarray  # (S, S, 3) uint8 aligned crop of the take's frame
    points: np.ndarray  # (NUM_LANDMARKS, 2) its landmarks, crop pixels
    upper: float  # its weight above the upper eyelids
    lower: float  # and below them
    covers_shading: bool  # shown at least as strongly wherever the plan's shading reaches
    row: int  # its emotion's
    mouths: list[tuple[int, float]]  # (frame of the library's ``mouth_faces[row]``, share) as open as the edited mouth


def _takes_mouth(mode: str) -> str:
    if mode not in TAKES_MOUTH:
        raise InvalidRequest(f"the takes' mouth is shown by {', '.join(TAKES_MOUTH)}, not {mode!r}")
    return mode


def _upsample_lattice(values: np.ndarray, side: int) -> np.ndarray:
    """(B, C, g, g) lattice values -> (B, C, side, side), bilinear, corners kept (both span the crop corner to corner)."""
    grid = values.shape[-1]
    if grid == side:
        return values
    map_x, map_y = lattice_coordinates(grid, side)
    flat = values.reshape(-1, grid, grid).transpose(1, 2, 0)  # cv2 wants channels last
    up = np.stack([cv2.remap(np.ascontiguousarray(flat[..., i]), map_x, map_y, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE) for i in range(flat.shape[-1])])
    return up.reshape(*values.shape[:2], side, side)


def _followed(first: np.ndarray, then: np.ndarray, crop_size: int) -> np.ndarray:
    """(2, G, G) the backward flow ``first`` then ``then`` (both (2, G, G), crop pixels, on the same
    lattice over a ``crop_size`` crop): where each point lands after ``first``, ``then`` is read there."""
    grid = first.shape[-1]
    crop_x, crop_y = lattice_coordinates(crop_size, grid)
    scale = (grid - 1) / (crop_size - 1)  # crop pixels -> lattice units
    map_x, map_y = (crop_x + first[0]) * scale, (crop_y + first[1]) * scale
    return first + np.stack([cv2.remap(np.ascontiguousarray(then[c]), map_x, map_y, cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE) for c in (0, 1)])


class ExpressionEditor:
    """Changes the expression of the tracked face in each frame (see ``runtime.pipeline.FrameEditor``).

    ``backend`` runs the engine; one backend instance can serve the editors of many streams.
    """

    def __init__(self, backend: EngineBackend, controller: ExpressionController | None = None,
                 schedule: RequestSource | None = None, driver: DriveSource | None = None,
                 mouth: LearnedMouth | None = None, takes_mouth: str = "auto"):
        self.backend = backend
        self.mouth = mouth  # the learned mouth redraws what the warp drew there (None: the warp's mouth)
        self.takes_mouth = _takes_mouth(takes_mouth)  # where a profile's takes show their mouth (``TAKES_MOUTH``)
        self.controller = controller or ExpressionController()
        self.schedule = schedule
        self.driver = driver
        self.crop_size = backend.size
        self._schedule_origin: float | None = None  # the pts the schedule's 0 s is counted from
        self._triangles = triangles()
        self._shading: tuple[ExpressionLibrary, np.ndarray, np.ndarray] | None = None
        self._mouth_flow_cache: tuple[ExpressionLibrary, dict[int, np.ndarray]] | None = None
        self.last_plan: ExpressionPlan | None = None

    def edit(self, frame: Frame, track: FaceTrack, timings: dict[str, float]) -> np.ndarray:
        """The frame's picture with the expression edited: plan (controller), flows (engine), shading and compositing.
        ``timings`` receives each stage's milliseconds; the input picture itself when the plan moves nothing."""
        start = time.perf_counter()
        request = None
        schedule = self.schedule  # read once: the control API may replace it meanwhile
        if schedule is not None:
            if self._schedule_origin is None:
                self._schedule_origin = float(frame.pts)
            request = schedule.request_at(float(frame.pts) - self._schedule_origin)
        driver, reading = self.driver, None
        if driver is not None:  # the driving face's frame is tracked here, timed apart
            reading = driver.read(float(frame.pts))
            timings["drive"] = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
        if self.mouth is not None:
            self.mouth.observe(frame.image, track)  # its reference: the person's own mouth, unedited
        plan = self.controller.plan(track, float(frame.pts), request, reading)
        self.last_plan = plan
        timings["control"] = (time.perf_counter() - start) * 1e3
        if plan.is_identity:
            return frame.image
        start = time.perf_counter()
        alignment = align(track, self.crop_size)
        source = alignment.points_to_crop(plan.source)
        target = alignment.points_to_crop(plan.target)
        target = fold_free_target(source, target, self._triangles)
        library, template_points, shading = self._shading_for(self.controller.library)
        exemplar = self._face_exemplar(plan, library, target)
        # Where a profile's exemplar shows the person's own creases in every region the library's
        # shading would reach, at least as strongly, that shading would only be blended away under it.
        shaded = bool(np.any(plan.shading)) and not (exemplar is not None and exemplar.covers_shading)
        sources, targets = [engine_points(source)], [engine_points(target)]
        if shaded:  # a second flow carries the library's template face onto the edited one
            sources.append(template_points)
            targets.append(targets[0])
        if exemplar is not None:  # and another the person's own expressive face (a calibration profile's)
            sources.append(engine_points(exemplar.points))
            targets.append(targets[0])
        flows = self.backend(np.stack(sources).astype(np.float32), np.stack(targets).astype(np.float32))
        timings["engine"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        flows = _upsample_lattice(flows, LAYER_GRID)  # the engine's lattice is coarser than shading needs
        to_lattice = (LAYER_GRID - 1) / (self.crop_size - 1)
        log_gain = self._log_gain(flows[1], np.einsum("er,erhw->hw", plan.shading, shading)) if shaded else None
        shown: Exemplar | None = None
        shown_mouths: tuple[Exemplar, ...] = ()
        if exemplar is not None:
            face_flow = flows[1 + shaded]
            weight = exemplar_mask(target * to_lattice, LAYER_GRID, exemplar.upper, exemplar.lower)
            shown = Exemplar(exemplar.image, face_flow.transpose(1, 2, 0), weight)
            if log_gain is not None:  # the exemplar has the person's own creases: no library shading over them
                log_gain = log_gain * (1.0 - weight)
            if exemplar.mouths:
                mouth_weight = mouth_exemplar_mask(target * to_lattice, LAYER_GRID, exemplar.lower)
                onto_mouths = self._mouth_flows(library, exemplar.row)
                shown_mouths = tuple(
                    Exemplar(library.mouth_faces[exemplar.row, k],
                             _followed(face_flow, onto_mouths[k], self.crop_size).transpose(1, 2, 0), share * mouth_weight)
                    for k, share in exemplar.mouths)
        layers = FaceLayers(flows[0].transpose(1, 2, 0), lattice_mask(target * to_lattice, LAYER_GRID), log_gain, shown,
                            shown_mouths)
        timings["shading"] = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        to_frame = cv2.invertAffineTransform(alignment.to_crop)
        frame_target = target @ to_frame[:, :2].T + to_frame[:, 2]  # after the fold-free limit, in frame pixels
        out = warp_face(frame.image, layers, alignment, self._mouth_change(plan, frame_target, library),
                        self._eye_changes(plan, frame_target, track.pose.yaw))
        timings["composite"] = (time.perf_counter() - start) * 1e3
        if self.mouth is not None:
            start = time.perf_counter()
            out = self.mouth(out, track, frame_target)
            timings["mouth"] = (time.perf_counter() - start) * 1e3
        return out

    def _face_exemplar(self, plan: ExpressionPlan, library: ExpressionLibrary,
                       target: np.ndarray) -> _ChosenExemplar | None:
        """The person's own face at the emotion the edit shows most, when the library (a calibration
        profile) has one at this crop size; where ``takes_mouth`` shows the takes' mouth in that emotion,
        also the frames of its take whose jaw is as open as the edited one's (``target``: landmarks,
        crop pixels), when it keeps those."""
        row = int(np.argmax(plan.shading.sum(axis=1)))
        upper, lower = float(plan.shading[row, _UPPER].min()), float(plan.shading[row, _LOWER].min())
        found = library.face_exemplar(row) if max(upper, lower) > _EXEMPLAR_MIN else None
        if found is None or found[0].shape[0] != self.crop_size:
            return None
        covers = min(upper, lower) >= plan.shading[row].max() and not np.delete(plan.shading, row, axis=0).any()
        shown = library.shows_takes_mouth(row, self.takes_mouth) and lower > _EXEMPLAR_MIN
        mouths = library.mouth_exemplars(row, target) if shown else []
        return _ChosenExemplar(found[0], found[1], upper, lower, bool(covers), row, mouths)

    def _mouth_flows(self, library: ExpressionLibrary, row: int) -> np.ndarray:
        """(K, 2, G, G) backward flows (``LAYER_GRID``, crop pixels) from the face exemplar of emotion
        ``row`` onto each of its take's mouth frames, made on first use and kept per library: a
        frame's flow onto the edited face is then the exemplar's, followed by this (``_followed``),
        with no engine call of its own."""
        if self._mouth_flow_cache is None or self._mouth_flow_cache[0] is not library:
            self._mouth_flow_cache = library, {}
        flows = self._mouth_flow_cache[1]
        if row not in flows:  # once, so at the offline engine's finer kernel and lattice (``warp-fine``)
            sources = np.stack([engine_points(points) for points in library.mouth_face_points[row]])
            targets = np.repeat(engine_points(library.face_points[row])[None], len(sources), axis=0)
            fine = FineWarpEngine(self.crop_size)  # its kernel and corrections, on the compositor's lattice
            with torch.inference_mode():
                flows[row] = pinned_flow(torch.as_tensor(sources, dtype=torch.float32),
                                         torch.as_tensor(targets, dtype=torch.float32), self.crop_size, LAYER_GRID,
                                         fine.sigma_px, fine.refinements).numpy()
        return flows[row]

    def _shading_for(self, library: ExpressionLibrary) -> tuple[ExpressionLibrary, np.ndarray, np.ndarray]:
        """The library's template as engine points and its shading (cached per library)."""
        if self._shading is None or self._shading[0] is not library:
            points = engine_points(template_to_crop(library.template, self.crop_size))
            self._shading = library, points, library.shading
        return self._shading

    def _log_gain(self, template_flow: np.ndarray, shading: np.ndarray) -> np.ndarray:
        """(G, G) the library's shading (its own lattice over the template crop) seen through the
        template -> edited-face flow (2, G, G): where each output lattice point is on the template."""
        crop_x, crop_y = lattice_coordinates(self.crop_size, template_flow.shape[-1])
        return sample_lattice(shading, crop_x + template_flow[0], crop_y + template_flow[1], self.crop_size)

    @staticmethod
    def _eye_changes(plan: ExpressionPlan, target: np.ndarray, yaw: float = 0.0) -> tuple[EyeChange, ...]:
        """The eyes whose lids the edit moves, for the compositor (``target``: frame pixels). On a
        head turned past ``_EYE_TURN`` degrees (``yaw``) they are redrawn less and less: MediaPipe's
        iris circle of the far eye drifts, and a fill drawn to it shows as a grey bubble."""
        turned = float(np.clip((_EYE_TURN[1] - abs(yaw)) / (_EYE_TURN[1] - _EYE_TURN[0]), 0.0, 1.0))
        if turned <= 0.0:
            return ()
        changes = []
        for opening, centre, rim in zip(EYE_OPENINGS, IRIS_CENTRES, IRIS_RIMS):
            before, after = plan.source[list(opening), :2], target[list(opening)]
            if np.abs(after - before - (after - before).mean(axis=0)).max() < _EYE_CHANGE_MIN_PX:
                continue
            radius = float(np.linalg.norm(plan.source[list(rim), :2] - plan.source[centre, :2], axis=1).mean())
            if radius < _EYE_MIN_IRIS_PX:  # an eye a few pixels across: nothing a redraw could show
                continue
            changes.append(EyeChange(before, after, plan.source[centre, :2], radius, turned))
        return tuple(changes)

    @staticmethod
    def _mouth_change(plan: ExpressionPlan, target: np.ndarray, library: ExpressionLibrary) -> MouthChange | None:
        """The mouth's change for the compositor (``target``: frame pixels); a new opening shows the
        person's own mouth interior of the strongest emotion asked for, when the library (a
        calibration profile) has one."""
        if abs(plan.lip_gap_change) < _MOUTH_CHANGE_MIN:
            return None
        interior = library.mouth_interior(int(np.argmax(plan.emotions))) if plan.emotions.any() else None
        return MouthChange(plan.source[list(INNER_LIP_CONTOUR)], target[list(INNER_LIP_CONTOUR)],
                           plan.source[list(OUTER_LIP_CONTOUR)], interior,
                           None if interior is None else mouth_patch_transform(target))

    # ---- the control interface (runtime.pipeline.StreamControl) ---------------------------------
    def set_request(self, request: ExpressionRequest) -> None:
        """Edit towards ``request`` from the next frame on (replaced whole, never changed in place)."""
        self.controller.request = request

    def set_schedule(self, schedule: RequestSource | None) -> None:
        """Start ``schedule`` (a ``Schedule``) from the next frame on (None: back to the controller's
        request). A driving face is ``set_driver``'s."""
        self._schedule_origin = None
        self.schedule = schedule

    def set_driver(self, driver: DriveSource | None) -> None:
        """Read the driving face from ``driver`` from the next frame on, for the regions whose source
        is "drive" (None: no driving face; those regions show nothing)."""
        self.driver = driver

    def set_library(self, library: ExpressionLibrary) -> None:
        """Take the emotions from ``library`` from the next frame on."""
        self.controller.use_library(library)

    def set_takes_mouth(self, mode: str) -> None:
        """From the next frame on, show the person's own mouth from their takes in every emotion
        ("take"), in those they speak wide ("auto") or in none ("warp"), where the library (a profile)
        keeps them; elsewhere the warp's."""
        self.takes_mouth = _takes_mouth(mode)

    def reset_neutral(self) -> None:
        """Forget the learned neutral face and mouth and learn them anew."""
        self.controller.reset()
