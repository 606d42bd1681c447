"""The pipeline: source -> tracker -> editor (expression control, engine, compositor) -> sink.

``Pipeline.process`` turns one input ``Frame`` into one output ``Frame``; ``run`` drives a
source through it into a sink. A frame whose face cannot be edited (none, lost, or an editor
failure) passes through unchanged: the output never goes black or freezes because of us.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .overlay import draw_overlay
from .preview import PreviewSheet
from .sinks import FrameSink
from .sources import FrameSource
from .stats import RunStats
from .tracking import FaceTracker
from .types import FaceTrack, Frame, TrackResult

log = logging.getLogger(__name__)


class FrameEditor(Protocol):
    """Changes the face in a frame. ``timings`` receives its own stage times in ms."""

    def edit(self, frame: Frame, track: FaceTrack, timings: dict[str, float]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Processed:
    output: Frame
    track: TrackResult
    timings: dict[str, float]  # stage -> ms, in pipeline order


class Pipeline:
    def __init__(self, tracker: FaceTracker, editor: FrameEditor | None = None, overlay: bool = False):
        self.tracker, self.editor, self.overlay = tracker, editor, overlay
        self._warned = False

    def process(self, frame: Frame) -> Processed:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        track = self.tracker.track(frame.image)
        timings["track"] = (time.perf_counter() - start) * 1e3
        image = frame.image
        if self.editor is not None and isinstance(track, FaceTrack):
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


def run(source: FrameSource, pipeline: Pipeline, sink: FrameSink, max_frames: int | None = None,
        preview: PreviewSheet | None = None) -> RunStats:
    """Process ``source`` into ``sink`` (at most ``max_frames``) and return the timings."""
    stats = RunStats()
    started = time.perf_counter()
    try:
        for frame in source:
            if max_frames is not None and stats.frames >= max_frames:
                break
            processed = pipeline.process(frame)
            start = time.perf_counter()
            sink.write(processed.output)
            processed.timings["sink"] = (time.perf_counter() - start) * 1e3
            processed.timings["total"] = (time.perf_counter() - frame.captured_at) * 1e3
            stats.add(processed.timings, isinstance(processed.track, FaceTrack))
            if preview is not None:
                preview.offer(frame.index, frame.image, processed.output.image)
    finally:
        stats.wall_seconds = time.perf_counter() - started
        sink.close()
        source.close()
        if preview is not None:
            preview.write()
    return stats
