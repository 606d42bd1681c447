"""Video over WebRTC: one ``Stream`` (tracker + editor) per filtered source, and the aiortc tracks
that feed it and send its output.

- ``FilteredTrack``: a browser's camera, filtered and sent back to that browser.
- ``Broadcaster`` + ``BroadcastTrack``: the server's own source (``--source``), filtered once and
  sent to every viewer.
- ``DrivingTrack``: a browser's video of a driving face (mimic), handed to a ``drive.Driver``.

Every hand-over is a ``runtime.mailbox.LatestSlot``: when processing is slower than the camera,
frames are skipped, never queued, so delay cannot build up.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from functools import partial

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ..expression.drive import Driver
from ..io.sources import CameraOptions, WebcamSource, open_source
from ..runtime.live import paced
from ..runtime.mailbox import LatestSlot
from ..runtime.pipeline import Pipeline
from ..runtime.stats import PipelineStats
from ..types import FaceTrack, Frame, NoFace

log = logging.getLogger(__name__)


class Stream:
    """One pipeline fed from one video source; frames are processed on its own worker thread.

    ``Controls`` drives the pipeline itself (a ``runtime.pipeline.StreamControl``).
    """

    def __init__(self, pipeline: Pipeline, stats: PipelineStats,
                 observer: Callable[[Frame, FaceTrack | NoFace], None] | None = None):
        self.pipeline, self.stats = pipeline, stats
        self.observer = observer  # sees every camera frame, unedited, with its tracking (calibration)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livemotion-stream")
        # Frames are processed on worker threads while close() comes from the event loop: the lock
        # keeps the tracker's native graph from being closed under a frame (that crashes).
        self._lock = threading.Lock()
        self._closed = False

    def process(self, image: np.ndarray, index: int, pts: Fraction, captured: float) -> np.ndarray:
        """One received frame through the stream's pipeline: (the output frame, its track)."""
        with self._lock:
            if self._closed:
                return image  # the stream is going away: pass the frame through
            frame = Frame(image, index, pts, captured)
            processed = self.pipeline.process(frame)
        if self.observer is not None:
            self.observer(frame, processed.track)
        processed.timings["total"] = (time.perf_counter() - captured) * 1e3
        self.stats.frame_out(processed.timings, isinstance(processed.track, FaceTrack))
        return processed.output.image

    def close(self) -> None:
        """Free the stream's tracker."""
        with self._lock:  # waits for a frame in flight, at most one frame's processing
            if self._closed:
                return
            self._closed = True
            self.pipeline.tracker.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


class FilteredTrack(MediaStreamTrack):
    """The browser's camera track, filtered: a reader task keeps only the newest incoming frame."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, stream: Stream):
        super().__init__()
        self.source, self.stream = source, stream
        self._incoming: LatestSlot[av.VideoFrame] = LatestSlot()
        self._reader = asyncio.ensure_future(self._read())
        self._index = 0

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                if self._incoming.put(frame):
                    self.stream.stats.dropped += 1
                self.stream.stats.frame_in()
        except Exception:  # the browser went away: end this track too
            pass
        finally:
            self._incoming.close()

    async def recv(self) -> av.VideoFrame:
        """The latest received frame, filtered (the raw frame if processing fails)."""
        frame = await self._incoming.get_async()
        if frame is None:
            self.stop()
            raise MediaStreamError
        captured = time.perf_counter()
        image = frame.to_ndarray(format="rgb24")
        loop = asyncio.get_running_loop()
        pts = Fraction(frame.pts or 0) * (frame.time_base or Fraction(1, 90000))
        out = await loop.run_in_executor(self.stream.executor, self.stream.process, image, self._index, pts, captured)
        self._index += 1
        result = av.VideoFrame.from_ndarray(out, format="rgb24")
        result.pts, result.time_base = frame.pts, frame.time_base
        return result

    def stop(self) -> None:
        """End the track and its worker."""
        super().stop()
        self._reader.cancel()


class DrivingTrack:
    """Reads a browser's driving-face track (``start``) and pushes each frame to ``driver``, which
    measures only the newest when a stream asks; ``on_end`` runs once, when the track ends or on
    ``stop``, whether or not a track ever came."""

    def __init__(self, driver: Driver, on_end: Callable[[Driver], None]):
        self.driver, self._on_end = driver, on_end
        self._reader: asyncio.Future[None] | None = None
        self._ended = False

    @property
    def started(self) -> bool:
        """True once frames are being read."""
        return self._reader is not None

    def start(self, source: MediaStreamTrack) -> None:
        """Read the driving face's frames into its driver."""
        self._reader = asyncio.ensure_future(self._read(source))

    async def _read(self, source: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await source.recv()
                if isinstance(frame, av.VideoFrame):
                    self.driver.push(partial(frame.to_ndarray, format="rgb24"))  # converted when read
        except Exception:  # the browser went away (MediaStreamError)
            pass
        finally:
            self._end()

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end(self.driver)

    def stop(self) -> None:
        """Stop reading the driving face."""
        if self._reader is not None:
            self._reader.cancel()  # its finally ends it
        else:
            self._end()


class Broadcaster:
    """The server's own source, filtered once on a thread and offered to every viewer's slot (a
    viewer may also take the unfiltered frames: the app's "your camera" pane). Files and the demo
    loop; a camera runs until it stops."""

    def __init__(self, source_spec: str, stream: Stream, camera: CameraOptions | None = None):
        self.source_spec, self.stream, self.camera = source_spec, stream, camera or CameraOptions()
        self._viewers: dict[LatestSlot[av.VideoFrame], bool] = {}  # slot -> wants the unfiltered frames
        self._viewers_lock = threading.Condition()  # notified when viewers come and go
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livemotion-broadcast", daemon=True)
        self._thread.start()

    def subscribe(self, raw: bool = False) -> LatestSlot[av.VideoFrame]:
        """A new viewer: the published source resumes if it was paused."""
        slot: LatestSlot[av.VideoFrame] = LatestSlot()
        with self._viewers_lock:
            self._viewers[slot] = raw
            self._viewers_lock.notify_all()
        return slot

    def unsubscribe(self, slot: LatestSlot[av.VideoFrame]) -> None:
        """A viewer left: pause when nobody watches."""
        with self._viewers_lock:
            self._viewers.pop(slot, None)
        slot.close()

    @property
    def paused(self) -> bool:
        """True while nobody watches: the source is not read and nothing is filtered."""
        return not self._viewers

    def _wait_for_viewers(self) -> bool:
        """Block while nobody watches (or until closed); True when it had to wait."""
        with self._viewers_lock:
            if self._viewers:
                return False
            self._viewers_lock.wait_for(lambda: bool(self._viewers) or self._stop.is_set())
            return True

    def _run(self) -> None:
        count = 0
        try:
            while not self._stop.is_set():
                source = open_source(self.source_spec, self.camera)
                try:
                    for frame in paced(source, hold=self._wait_for_viewers):
                        if self._stop.is_set():
                            return
                        self.stream.stats.frame_in()
                        out = self.stream.process(frame.image, count, frame.pts, frame.captured_at)
                        filtered = av.VideoFrame.from_ndarray(out, format="rgb24")
                        with self._viewers_lock:
                            raw = (av.VideoFrame.from_ndarray(frame.image, format="rgb24")
                                   if any(self._viewers.values()) else None)
                            for slot, wants_raw in self._viewers.items():
                                slot.put(raw if wants_raw and raw is not None else filtered)
                        count += 1
                finally:
                    source.close()
                if isinstance(source, WebcamSource):
                    return
        except Exception:
            log.exception("the published source stopped")
        finally:
            with self._viewers_lock:
                for slot in self._viewers:
                    slot.close()

    def close(self) -> None:
        """Stop publishing; the source is closed."""
        self._stop.set()
        with self._viewers_lock:
            self._viewers_lock.notify_all()
        self._thread.join(timeout=5)


class BroadcastTrack(MediaStreamTrack):
    """One viewer of a ``Broadcaster``: the newest filtered (``raw``: unfiltered) frame each time the sender asks."""

    kind = "video"

    def __init__(self, broadcaster: Broadcaster, raw: bool = False):
        super().__init__()
        self.broadcaster = broadcaster
        self._slot = broadcaster.subscribe(raw)
        self._start = time.perf_counter()

    async def recv(self) -> av.VideoFrame:
        """The latest filtered frame of the published source."""
        frame = await self._slot.get_async()
        if frame is None:
            self.stop()
            raise MediaStreamError
        out = frame.reformat(format="yuv420p")
        out.pts, out.time_base = int((time.perf_counter() - self._start) * 90000), Fraction(1, 90000)
        return out

    def stop(self) -> None:
        """End this viewer's track."""
        super().stop()
        self.broadcaster.unsubscribe(self._slot)
