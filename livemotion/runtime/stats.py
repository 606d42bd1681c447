"""Pipeline statistics: per-stage timings (ms), end-to-end latency, fps in/out and drops.

Thread-safe and bounded: percentiles cover the last ``window`` frames, rates the last second,
so a stream can run for days. ``snapshot()`` is the plain object a server can publish.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class StageSummary:
    """One stage's milliseconds over a run: percentiles and count."""

    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, samples: Iterable[float]) -> StageSummary:
        """The summary of ``values`` (ms)."""
        values = np.asarray(samples, dtype=float)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), float(values.mean()))


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """The stats as the app and the control API's ``stats`` message show them."""

    frames_in: int
    frames_out: int
    dropped: int
    faces: int  # output frames in which a face was tracked
    fps_in: float  # over the last second
    fps_out: float
    stages: dict[str, StageSummary]  # in pipeline order; "total" = capture to written (end to end)


class PipelineStats:
    """Frames in and out, drops and per-stage times of a run, over a bounded window."""

    def __init__(self, window: int = 3000):
        self._lock = threading.Lock()
        self._stage_ms: dict[str, deque[float]] = {}
        self._window = window
        self._in_times: deque[float] = deque(maxlen=1000)
        self._out_times: deque[float] = deque(maxlen=1000)
        self.frames_in = self.frames_out = self.dropped = self.faces = 0
        self.started = time.perf_counter()
        self.wall_seconds = 0.0

    def frame_in(self) -> None:
        """Count a frame taken from the source."""
        with self._lock:
            self.frames_in += 1
            self._in_times.append(time.perf_counter())

    def frame_out(self, timings: dict[str, float], had_face: bool) -> None:
        """Count a frame written, with its stage times."""
        with self._lock:
            for stage, ms in timings.items():
                self._stage_ms.setdefault(stage, deque(maxlen=self._window)).append(ms)
            self.frames_out += 1
            self.faces += int(had_face)
            self._out_times.append(time.perf_counter())

    # kept for the synchronous runner, where every frame in is a frame out
    @property
    def frames(self) -> int:
        """Frames written."""
        return self.frames_out

    @property
    def fps(self) -> float:
        """Frames written per second of wall time."""
        return self.frames_out / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> dict[str, StageSummary]:
        """{stage: StageSummary} over the window."""
        with self._lock:
            samples = {stage: list(values) for stage, values in self._stage_ms.items()}
        return {stage: StageSummary.of(values) for stage, values in samples.items()}

    @staticmethod
    def _rate(times: deque[float], now: float) -> float:
        recent = [t for t in times if now - t <= 1.0]
        return float(len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0

    def snapshot(self) -> StatsSnapshot:
        """The stats now, for the control API."""
        now = time.perf_counter()
        with self._lock:
            fps_in, fps_out = self._rate(self._in_times, now), self._rate(self._out_times, now)
            counts = (self.frames_in, self.frames_out, self.dropped, self.faces)
        return StatsSnapshot(*counts, fps_in=fps_in, fps_out=fps_out, stages=self.summary())

    def status_line(self) -> str:
        """One line for a terminal's status: fps, drops, latency."""
        s = self.snapshot()
        stages = " ".join(f"{name} {v.p50:.1f}" for name, v in s.stages.items() if name != "total")
        total = s.stages.get("total")
        latency = f"e2e p50 {total.p50:.0f} p95 {total.p95:.0f} p99 {total.p99:.0f} ms" if total else "e2e -"
        return (f"in {s.fps_in:4.1f} fps  out {s.fps_out:4.1f} fps  dropped {s.dropped}  {latency}  "
                f"| p50 ms: {stages}")

    def report(self) -> str:
        """The end-of-run report printed on stderr."""
        lines = [f"{self.frames_out} frames out of {self.frames_in} in {self.wall_seconds:.2f} s = {self.fps:.1f} fps; "
                 f"dropped {self.dropped}; face tracked in {self.faces}, no face in {self.frames_out - self.faces}",
                 f"{'stage':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}"]
        for stage, s in self.summary().items():
            lines.append(f"{stage:<10} {s.p50:8.2f} {s.p95:8.2f} {s.p99:8.2f} {s.mean:8.2f}")
        return "\n".join(lines)
