"""Real-time running: capture, processing and output in their own threads, joined by
one-frame mailboxes. A slow stage never builds a queue: the newest frame replaces an unread
one (counted as dropped), so delay cannot accumulate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..io.preview import Preview
from ..io.sinks import FrameSink
from ..io.sources import FrameSource
from ..types import Frame
from .mailbox import LatestSlot
from .pipeline import Pipeline, Processed, deliver, finish
from .stats import PipelineStats


def paced(source: FrameSource, speed: float = 1.0, hold: Callable[[], bool] | None = None) -> Iterator[Frame]:
    """Frames of a file or demo source released at their own timestamps, as a camera would;
    each frame's capture time is the moment it is released.

    ``hold`` is called before each frame and may block (a broadcast nobody watches); when it
    returns True it did, and the clock restarts, so the paused time is not caught up in a burst.
    """
    start = time.perf_counter()
    first = None
    for frame in source:
        if hold is not None and hold():
            start, first = time.perf_counter(), None
        first = frame.pts if first is None else first
        due = start + float(frame.pts - first) / speed
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield Frame(frame.image, frame.index, frame.pts, time.perf_counter())


class LiveRunner:
    """Runs ``source -> pipeline -> sink`` in three threads with latest-frame hand-off.

    ``pace`` releases file/demo frames in real time (a webcam paces itself). ``run`` returns the
    stats when the source ends, ``max_frames`` have been read, or ``stop()`` is called (Ctrl-C in
    the calling thread also stops it cleanly); the sink and the source are always closed.
    """

    def __init__(self, source: FrameSource, pipeline: Pipeline, sink: FrameSink, pace: bool = False,
                 max_frames: int | None = None, stats: PipelineStats | None = None,
                 preview: Preview | None = None, slow_stage: Callable[[Frame], None] | None = None):
        self.source, self.pipeline, self.sink, self.preview = source, pipeline, sink, preview
        self.pace, self.max_frames = pace, max_frames
        self.stats = stats or PipelineStats()
        self._slow_stage = slow_stage  # test hook: extra work inside the processing stage
        self._frames: LatestSlot[Frame] = LatestSlot()
        self._results: LatestSlot[tuple[Frame, Processed]] = LatestSlot()
        self._stop = threading.Event()
        self._errors: list[BaseException] = []

    def stop(self) -> None:
        """Ask the threads to end; ``run`` returns after the sink is closed."""
        self._stop.set()

    def _guarded(self, work: Callable[[], None], done: LatestSlot[Any]) -> Callable[[], None]:
        def body() -> None:
            try:
                work()
            except BaseException as error:  # handed to run(), which re-raises it in the caller
                self._errors.append(error)
                self._stop.set()
            finally:
                done.close()

        return body

    def _capture(self) -> None:
        frames = paced(self.source) if self.pace else iter(self.source)
        for count, frame in enumerate(frames):
            if self._stop.is_set() or (self.max_frames is not None and count >= self.max_frames):
                break
            self.stats.frame_in()
            self._frames.put(frame)

    def _process(self) -> None:
        while (frame := self._frames.get()) is not None:
            if self._slow_stage is not None:
                self._slow_stage(frame)
            self._results.put((frame, self.pipeline.process(frame)))

    def _output(self) -> None:
        while (item := self._results.get()) is not None:
            self.stats.dropped = self._frames.dropped + self._results.dropped
            deliver(*item, self.sink, self.stats, self.preview)

    def run(self, on_status: Callable[[PipelineStats], None] | None = None, status_every: float = 0.5) -> PipelineStats:
        """Capture, process and write until the source ends, ``max_frames``, ``stop`` or Ctrl-C; the stats. ``on_status``
        is called twice a second."""
        done = LatestSlot[None]()  # closed when the output thread has written its last frame
        threads = [
            threading.Thread(target=self._guarded(self._capture, self._frames), name="livemotion-capture", daemon=True),
            threading.Thread(target=self._guarded(self._process, self._results), name="livemotion-process", daemon=True),
            threading.Thread(target=self._guarded(self._output, done), name="livemotion-output", daemon=True),
        ]
        started = time.perf_counter()
        interrupted: BaseException | None = None
        try:
            for thread in threads:
                thread.start()
            while not done.closed:
                done.get(timeout=status_every)
                if on_status is not None:
                    on_status(self.stats)
        except BaseException as error:  # Ctrl-C or a signal, in the caller's thread
            interrupted = error
            raise
        finally:  # the source ended, a stage failed, or Ctrl-C: stop the threads, then close up
            self._stop.set()
            for thread in threads:
                thread.join(timeout=5)
            self.stats.dropped = self._frames.dropped + self._results.dropped
            finish(self.source, self.sink, self.stats, started, self.preview,
                   interrupted or (self._errors[0] if self._errors else None))
        if self._errors:
            raise self._errors[0]
        return self.stats
