"""Per-stage timing statistics (milliseconds) collected while a pipeline runs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class StageSummary:
    p50: float
    p95: float
    p99: float
    mean: float


@dataclass
class RunStats:
    """Timings of every processed frame; ``summary()`` gives percentiles per stage."""

    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    frames: int = 0
    faces: int = 0  # frames where a face was edited (others passed through)
    wall_seconds: float = 0.0

    def add(self, timings: dict[str, float], had_face: bool) -> None:
        for stage, ms in timings.items():
            self.stage_ms.setdefault(stage, []).append(ms)
        self.frames += 1
        self.faces += int(had_face)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> dict[str, StageSummary]:
        out = {}
        for stage, samples in self.stage_ms.items():
            values = np.asarray(samples)
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            out[stage] = StageSummary(float(p50), float(p95), float(p99), float(values.mean()))
        return out

    def report(self) -> str:
        lines = [f"{self.frames} frames in {self.wall_seconds:.2f} s = {self.fps:.1f} fps; "
                 f"face tracked in {self.faces}, no face in {self.frames - self.faces}",
                 f"{'stage':<10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}"]
        for stage, s in self.summary().items():
            lines.append(f"{stage:<10} {s.p50:8.2f} {s.p95:8.2f} {s.p99:8.2f} {s.mean:8.2f}")
        return "\n".join(lines)
