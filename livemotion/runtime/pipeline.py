"""The pipeline: source -> tracker -> smoothing -> editor (expression control, engine, compositor) -> sink.

``build_pipeline`` wires the stages (every command, the server, the tools and the tests use it);
``Pipeline.process`` turns one input ``Frame`` into one output ``Frame``; ``run`` drives a
source through it into a sink. A frame whose face cannot be edited (none, lost, or an editor
failure) passes through unchanged: the output never goes black or freezes because of us.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..engines.backends import EngineBackend, create_backend
from ..errors import InvalidRequest
from ..expression.controller import DriveSource, ExpressionController, ExpressionRequest, RequestSource, Schedule
from ..expression.library import ExpressionLibrary
from ..face.smoothing import TrackSmoother
from ..face.tracking import FaceTracker
from ..io.preview import Preview
from ..io.sinks import FrameSink
from ..io.sources import FrameSource
from ..render.editor import ExpressionEditor
from ..render.mouth import LearnedMouth
from ..render.overlay import draw_overlay
from ..types import FaceTrack, Frame, TrackResult
from .stats import PipelineStats

log = logging.getLogger(__name__)


class _Steering(Protocol):
    """What may change while frames flow: the expression, where it comes from, who draws the mouth.
    Each call replaces one whole value, read once per frame."""

    def set_request(self, request: ExpressionRequest) -> None:
        """Edit towards ``request`` from the next frame on."""

    def set_schedule(self, schedule: Schedule | None) -> None:
        """Take requests from ``schedule`` over time (None: the request)."""

    def set_driver(self, driver: DriveSource | None) -> None:
        """Regions whose source is "drive" follow ``driver`` (None: no driving face)."""

    def set_library(self, library: ExpressionLibrary) -> None:
        """Take the emotions from ``library`` from the next frame on."""

    def set_takes_mouth(self, mode: str) -> None:
        """Where the person's own mouth from their takes shows (``TAKES_MOUTH``), where the library keeps them."""

    def reset_neutral(self) -> None:
        """Learn the person's neutral face anew."""


class FrameEditor(_Steering, Protocol):
    """Changes the face in a frame. ``timings`` receives its own stage times in ms.

    ``render.editor.ExpressionEditor`` is the one the CLI and the server use.
    """

    def edit(self, frame: Frame, track: FaceTrack, timings: dict[str, float]) -> np.ndarray:
        """``frame``'s picture with the face of ``track`` edited; stage times go into ``timings``."""


class StreamControl(_Steering, Protocol):
    """What the control API may change on a running stream (``server.control.Controls``): the
    steering, and bypass."""

    def set_bypass(self, bypass: bool) -> None:
        """Pass frames through unedited (still tracked) while ``bypass``."""


@dataclass(frozen=True, slots=True)
class Processed:
    """What ``Pipeline.process`` made of one frame."""

    output: Frame
    track: TrackResult
    timings: dict[str, float]  # stage -> ms, in pipeline order


class Pipeline:
    """One stream's stages. Landmarks are smoothed (One-Euro, face-size units); when the face is
    lost the last track is held for ``hold_frames`` frames with falling confidence, so the edit
    fades out instead of snapping off, then frames pass through untouched."""

    def __init__(self, tracker: FaceTracker, editor: FrameEditor | None = None, overlay: bool = False,
                 smoother: TrackSmoother | None = None, hold_frames: int = 4, owns_tracker: bool = False):
        self.tracker, self.editor, self.overlay = tracker, editor, overlay
        self._owns_tracker = owns_tracker  # ``close`` closes it (``build_pipeline`` made it)
        self.smoother = smoother or TrackSmoother()
        self.hold_frames = hold_frames
        self.bypass = False  # True: every frame passes through unedited (still tracked, for stats)
        self._last: FaceTrack | None = None
        self._lost = 0
        self._warned = False

    def _stabilize(self, track: TrackResult, t: float) -> TrackResult:
        if isinstance(track, FaceTrack):
            self._last, self._lost = self.smoother(track, t), 0
            return self._last
        self._lost += 1
        if self._last is not None and self._lost <= self.hold_frames:
            fading = self._last.confidence * (1 - self._lost / (self.hold_frames + 1))
            return replace(self._last, confidence=fading)
        self._last = None
        self.smoother.reset()
        return track

    # ---- StreamControl ---------------------------------------------------------------------------
    def set_request(self, request: ExpressionRequest) -> None:
        """Edit towards ``request`` from the next frame on."""
        if self.editor is not None:
            self.editor.set_request(request)

    def set_bypass(self, bypass: bool) -> None:
        """Pass frames through unedited (still tracked) while ``bypass``."""
        self.bypass = bypass

    def set_schedule(self, schedule: Schedule | None) -> None:
        """Take requests from ``schedule`` over time (None: the request)."""
        if self.editor is not None:
            self.editor.set_schedule(schedule)

    def set_driver(self, driver: DriveSource | None) -> None:
        """Regions whose source is "drive" follow ``driver`` (None: no driving face)."""
        if self.editor is not None:
            self.editor.set_driver(driver)

    def set_library(self, library: ExpressionLibrary) -> None:
        """Take the emotions from ``library`` from the next frame on."""
        if self.editor is not None:
            self.editor.set_library(library)

    def set_takes_mouth(self, mode: str) -> None:
        """Where the person's own mouth from their takes shows (``TAKES_MOUTH``), where the library keeps them."""
        if self.editor is not None:
            self.editor.set_takes_mouth(mode)

    def reset_neutral(self) -> None:
        """Learn the person's neutral face anew."""
        if self.editor is not None:
            self.editor.reset_neutral()

    def close(self) -> None:
        """Free the tracker if this pipeline made it (a shared one is its owner's to close)."""
        if self._owns_tracker:
            self.tracker.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(self, frame: Frame) -> Processed:
        """Track, smooth and edit one frame. The output is the input's picture when there is no
        face, the stream is bypassed, or the editor fails (logged once): never a black frame."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        track = self._stabilize(self.tracker.track(frame.image), float(frame.pts))
        timings["track"] = (time.perf_counter() - start) * 1e3
        image = frame.image
        if self.editor is not None and not self.bypass and isinstance(track, FaceTrack):
            try:
                image = self.editor.edit(frame, track, timings)
            except Exception:  # live video must keep flowing: show the raw frame, report once
                if not self._warned:
                    log.exception("editing failed; passing frames through unchanged")
                    self._warned = True
                image = frame.image
        if self.overlay:
            start = time.perf_counter()
            image = draw_overlay(image, track)
            timings["overlay"] = (time.perf_counter() - start) * 1e3
        return Processed(frame.with_image(image), track, timings)


def build_pipeline(request: ExpressionRequest | None = None, *, library: ExpressionLibrary | None = None,
                   edit: bool = True, backend: EngineBackend | str = "auto", engine: str = "warp",
                   device: str = "cpu", fp16: bool = False, tracker: FaceTracker | None = None, max_faces: int = 2,
                   static_images: bool = False, schedule: RequestSource | None = None,
                   driver: DriveSource | None = None, overlay: bool = False, fade_step: float = 0.25,
                   transition: float = 0.5, mouth_model: str | Path | None = None,
                   takes_mouth: str = "auto") -> Pipeline:
    """One stream's stages, wired: tracker -> smoothing -> controller -> engine -> compositor.

    ``request`` (default: none yet, the face passes through) and ``schedule`` say what to show,
    from ``library`` (default: the shipped one); their emotion names are checked against it here,
    before any frame. ``edit=False``: tracking only. ``backend`` is a backend name (created here
    for ``engine`` on ``device``) or an instance to share between streams. ``tracker``: a tracker
    to share (else one is made, ``max_faces``, ``static_images`` for unrelated stills, and closed
    with the pipeline). ``fade_step`` and ``transition``: the controller's fade and onset (1.0
    and 0.0 for a still, where there is no earlier frame to fade from). ``mouth_model``: a trained
    mouth generator redraws the mouth (``render.mouth``; None: the warp's mouth), on ONNX Runtime
    or TensorRT when the engine runs there, else on torch on the CPU. ``takes_mouth``: where a
    calibration profile's takes show the person's own mouth, teeth and all (``TAKES_MOUTH``: "auto",
    in the emotions they speak wide; "take" needs a ``library`` that keeps them).
    """
    editor = None
    if edit:
        controller = ExpressionController(request, library=library, fade_step=fade_step, transition=transition)
        controller.request.target(controller.fitted)  # names only the library's emotions and styles
        if isinstance(schedule, Schedule):
            schedule.check(controller.fitted)
        engine_backend = create_backend(backend, engine, device=device, fp16=fp16) if isinstance(backend, str) \
            else backend
        # the mouth generator on ONNX Runtime or TensorRT where the engine runs there, else on torch (CPU)
        mouth = None if mouth_model is None else LearnedMouth(
            mouth_model, engine_backend.name if engine_backend.name in ("onnxruntime", "tensorrt") else "torch")
        if takes_mouth == "take" and (library is None or not library.keeps_mouth_frames):
            raise InvalidRequest("--mouth take shows your own mouth from your calibration takes: use --profile NAME "
                                 "with a profile made by this version (`livemotion calibrate` again if yours is older)")
        editor = ExpressionEditor(engine_backend, controller, schedule=schedule, driver=driver, mouth=mouth,
                                  takes_mouth=takes_mouth)
    owns_tracker = tracker is None
    tracker = tracker or FaceTracker(max_faces=max_faces, static_images=static_images)
    return Pipeline(tracker, editor, overlay=overlay, owns_tracker=owns_tracker)


def deliver(frame: Frame, processed: Processed, sink: FrameSink, stats: PipelineStats,
            preview: Preview | None) -> None:
    """Write one processed frame and account for it: sink and end-to-end (capture to written) times."""
    start = time.perf_counter()
    sink.write(processed.output)
    processed.timings["sink"] = (time.perf_counter() - start) * 1e3
    processed.timings["total"] = (time.perf_counter() - frame.captured_at) * 1e3
    stats.frame_out(processed.timings, isinstance(processed.track, FaceTrack))
    if preview is not None:
        preview.offer(frame, processed.output.image, processed.track)


def finish(source: FrameSource, sink: FrameSink, stats: PipelineStats, started: float,
           preview: Preview | None, failure: BaseException | None = None) -> None:
    """End a run, however it ended, and close the source. A run that completed, or was stopped
    (Ctrl-C, SIGTERM, a reader that left the pipe), closes the sink: a playable file, and the
    preview. A run that failed aborts the sink: an earlier file of that name stays as it was."""
    stats.wall_seconds = time.perf_counter() - started
    try:
        if failure is None or isinstance(failure, (KeyboardInterrupt, BrokenPipeError)):
            sink.close()
            if preview is not None:
                preview.write()
        else:
            sink.abort()
    finally:
        source.close()


def run(source: FrameSource, pipeline: Pipeline, sink: FrameSink, max_frames: int | None = None,
        preview: Preview | None = None, on_frame: Callable[[], None] | None = None) -> PipelineStats:
    """Process every frame of ``source`` into ``sink`` (at most ``max_frames``), in order, and return the timings.

    This is the offline runner (files): nothing is dropped. ``live.LiveRunner`` is the real-time one.
    ``on_frame`` is called after each frame is written (a progress bar).
    """
    stats = PipelineStats()
    started = time.perf_counter()
    failure: BaseException | None = None
    try:
        for frame in source:
            if max_frames is not None and stats.frames >= max_frames:
                break
            stats.frame_in()
            deliver(frame, pipeline.process(frame), sink, stats, preview)
            if on_frame is not None:
                on_frame()
    except BaseException as error:
        failure = error
        raise
    finally:
        finish(source, sink, stats, started, preview, failure)
    return stats
