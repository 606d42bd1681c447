#!/usr/bin/env python3
"""Latency benchmark: tracker alone vs the full pipeline, per resolution and backend, in one run.

    tools/bench_latency.py [--source demo|FILE|webcam] [--frames N] [--sizes 640x480,1280x720,1920x1080]
                           [--emotion happy] [--profile NAME] [--mouth-model FILE] [--json OUT] [--png OUT]

For each size it measures, on the same frames (decoded into memory first):
  tracker   the MediaPipe tracker alone, frame after frame: the floor any filter pays
  full      tracking + smoothing + expression control + engine + compositing, frame after frame
  live      the real-time runner: frames released at 30 fps, three threads, H.264 encoding,
            latest-frame hand-off; sustained fps out, end-to-end latency (capture -> written), drops;
            with the backend users get by default (``--live-backends auto``), or each one named
``--mouth-model``: the learned mouth draws the mouth (its own stage, "mouth"; ONNX Runtime where the
engine runs there, else torch). The headline is full / tracker, the per-frame cost ratio measured in the same process. Every
stage's mean is listed with their sum beside the whole frame's time: what no stage accounts for
is printed as "unaccounted".
"""

from __future__ import annotations

import livemotion  # noqa: F401  (first: it sets the BLAS thread count before numpy loads OpenBLAS)

# isort: split
import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from livemotion.engines.backends import NUM_POINTS, create_backend, default_backend
from livemotion.expression.controller import ExpressionRequest
from livemotion.expression.library import TAKES_MOUTH, ExpressionLibrary
from livemotion.expression.profiles import load_profile
from livemotion.face.tracking import FaceTracker
from livemotion.io.sinks import open_sink
from livemotion.io.sources import MemorySource, open_source
from livemotion.runtime.live import LiveRunner
from livemotion.runtime.pipeline import Pipeline, build_pipeline
from livemotion.runtime.stats import StageSummary


def available_backends() -> list[str]:
    import importlib.util

    import torch

    found = ["torch"]
    if importlib.util.find_spec("onnxruntime"):
        found.append("onnxruntime")
    if importlib.util.find_spec("tensorrt") and torch.cuda.is_available():
        found.append("tensorrt")
    return found


def load_frames(spec: str, size: tuple[int, int], count: int) -> list[np.ndarray]:
    source = open_source(f"demo:{size[0]}x{size[1]}" if spec == "demo" else spec)
    try:
        frames = []
        for frame in source:
            image = frame.image
            if (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if image.shape[1] > size[0] else cv2.INTER_LINEAR)
            frames.append(image)
            if len(frames) == count:
                break
        return frames
    finally:
        source.close()


def pipeline_for(emotion: str, max_faces: int, backend: str = "torch", library: ExpressionLibrary | None = None,
                 mouth: dict | None = None) -> Pipeline:
    """The pipeline measured; ``mouth``: who draws the mouth (``build_pipeline``'s mouth_model, takes_mouth)."""
    return build_pipeline(ExpressionRequest(emotion, 1.0, active=True), library=library, backend=backend,
                          device="cuda" if backend == "tensorrt" else "cpu", max_faces=max_faces, **(mouth or {}))


def bench_streams(backend_name: str, streams: list[int], repeats: int = 20) -> dict[int, float]:
    """Engine cost per stream (ms) when one batched call serves N streams' faces."""

    backend = create_backend(backend_name, device="cuda" if backend_name == "tensorrt" else "cpu")
    rng = np.random.default_rng(0)
    out = {}
    for n in streams:
        source = rng.uniform(60, 196, (n, NUM_POINTS, 2)).astype(np.float32)
        target = source + rng.normal(0, 2, source.shape).astype(np.float32)
        backend(source, target)
        start = time.perf_counter()
        for _ in range(repeats):
            backend(source, target)
        out[n] = (time.perf_counter() - start) / repeats / n * 1e3
    return out


def bench_tracker(frames: list[np.ndarray], max_faces: int) -> dict:
    times = []
    with FaceTracker(max_faces=max_faces) as tracker:
        tracker.track(frames[0])
        for image in frames:
            start = time.perf_counter()
            tracker.track(image)
            times.append((time.perf_counter() - start) * 1e3)
    return asdict(StageSummary.of(times))


def bench_full(frames: list[np.ndarray], emotion: str, max_faces: int, backend: str,
               library: ExpressionLibrary | None = None, mouth: dict | None = None) -> dict:
    stages: dict[str, list[float]] = {}
    source = MemorySource(frames)
    with pipeline_for(emotion, max_faces, backend, library, mouth) as pipeline:
        for frame in source:
            start = time.perf_counter()
            processed = pipeline.process(frame)
            processed.timings["processing"] = (time.perf_counter() - start) * 1e3
            for stage, ms in processed.timings.items():
                stages.setdefault(stage, []).append(ms)
    return {stage: asdict(StageSummary.of(values)) for stage, values in stages.items()} | {"_samples": stages}


def bench_live(frames: list[np.ndarray], emotion: str, max_faces: int, library: ExpressionLibrary | None = None,
               backend: str = "auto", mouth: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory() as folder, \
            pipeline_for(emotion, max_faces, backend, library, mouth) as pipeline:
        source = MemorySource(frames, fps=30.0)
        sink = open_sink(str(Path(folder) / "live.mp4"), source.size, source.fps, live=True)
        stats = LiveRunner(source, pipeline, sink, pace=True).run()
    summary = stats.summary()
    return {"fps_out": stats.frames_out / stats.wall_seconds, "frames_in": stats.frames_in,
            "frames_out": stats.frames_out, "dropped": stats.dropped,
            "end_to_end": asdict(summary["total"]), "stages": {k: asdict(v) for k, v in summary.items()}}


def stage_accounting(full: dict) -> dict[str, float]:
    """{stage: mean ms} of one full-pipeline run, with ``stages`` (their sum), ``frame`` (the whole
    processing time) and ``unaccounted`` (frame minus stages)."""
    means = {stage: values["mean"] for stage, values in full.items()
             if not stage.startswith("_") and stage not in ("processing", "total", "sink")}
    stages = sum(means.values())
    return {**means, "stages": stages, "frame": full["processing"]["mean"],
            "unaccounted": full["processing"]["mean"] - stages}


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        backend = result["default_backend"]
        samples = result["full"][backend].pop("_samples")
        names = [n for n in samples if n != "processing"] + ["processing"]
        ax.boxplot([samples[n] for n in names], tick_labels=names, showfliers=False)
        ax.axhline(result["tracker"]["mean"], color="gray", linestyle="--", label="tracker alone (mean)")
        unaccounted = result["accounting"][backend]["unaccounted"]
        ax.set_title(f"{result['size']} ({backend}): full / tracker = {result['ratio'][backend]:.2f}, "
                     f"unaccounted {unaccounted:.1f} ms")
        ax.set_ylabel("ms per frame")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="demo", help="demo (rendered at each size), a video file, or webcam")
    parser.add_argument("--frames", type=int, default=150, help="frames per measurement (default 150)")
    parser.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="comma-separated WxH list")
    parser.add_argument("--emotion", default="happy", help="emotion applied in the full pipeline (default happy)")
    parser.add_argument("--profile", help="edit with this calibration profile (its face exemplars cost more) "
                        "instead of the shipped library")
    parser.add_argument("--mouth-model", metavar="FILE",
                        help="the learned mouth draws the mouth (a model from `livemotion train-mouth`)")
    parser.add_argument("--takes-mouth", choices=TAKES_MOUTH, default="auto",
                        help="where the --profile's takes draw the mouth, as `run --mouth` (default auto)")
    parser.add_argument("--max-faces", type=int, default=2, help="tracker max faces, as in `livemotion run`")
    parser.add_argument("--no-live", action="store_true", help="skip the threaded real-time measurement")
    parser.add_argument("--live-backends", default="auto",
                        help="backends for the live measurement, comma-separated (default auto: what users get)")
    parser.add_argument("--streams", default="1,4,16", help="batch sizes for the multi-stream engine cost")
    parser.add_argument("--json", help="write all numbers here")
    parser.add_argument("--png", help="write per-stage latency distributions here")
    args = parser.parse_args(argv)

    backends = available_backends()
    default = default_backend("cpu")
    live_backends = [default if name == "auto" else name for name in args.live_backends.split(",")]
    library = load_profile(args.profile) if args.profile else None
    mouth = {"mouth_model": args.mouth_model, "takes_mouth": "warp" if args.mouth_model else args.takes_mouth}
    results = []
    for text in args.sizes.split(","):
        width, height = (int(v) for v in text.lower().split("x"))
        frames = load_frames(args.source, (width, height), args.frames)
        result = {"size": f"{width}x{height}", "frames": len(frames), "default_backend": default,
                  "tracker": bench_tracker(frames, args.max_faces), "full": {}, "ratio": {}, "accounting": {},
                  "live": {}}
        for backend in backends:
            full = bench_full(frames, args.emotion, args.max_faces, backend, library, mouth)
            result["full"][backend] = full
            result["ratio"][backend] = full["processing"]["mean"] / result["tracker"]["mean"]
            result["accounting"][backend] = stage_accounting(full)
        if not args.no_live:
            for backend in live_backends:
                result["live"][backend] = bench_live(frames, args.emotion, args.max_faces, library, backend, mouth)
        results.append(result)

    machine = f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, {platform.python_version()}"
    print(f"machine: {machine}; source {args.source}; emotion {args.emotion}; "
          f"{'profile ' + args.profile if args.profile else 'shipped library'}; "
          f"{'learned mouth ' + args.mouth_model if args.mouth_model else 'the warp draws the mouth'}"
          f"{', --mouth ' + args.takes_mouth if args.profile and not args.mouth_model else ''}; "
          f"{args.frames} frames per run")
    print(f"default backend: {default}; live runs with: {', '.join(live_backends)}")
    print(f"{'size':<10}{'backend':<12}{'tracker ms':>11}{'full ms':>9}{'ratio':>7}{'live fps':>10}"
          f"{'e2e p50':>9}{'e2e p95':>9}{'e2e p99':>9}{'dropped':>9}")
    for r in results:
        for backend in backends:
            live = r["live"].get(backend, {})
            e2e = live.get("end_to_end", {})
            cells = [f"{r['tracker']['mean']:11.2f}", f"{r['full'][backend]['processing']['mean']:9.2f}",
                     f"{r['ratio'][backend]:7.2f}", f"{live.get('fps_out', float('nan')):10.1f}",
                     f"{e2e.get('p50', float('nan')):9.1f}", f"{e2e.get('p95', float('nan')):9.1f}",
                     f"{e2e.get('p99', float('nan')):9.1f}", f"{live.get('dropped', 0):9d}"]
            name = backend + (" *" if backend == default else "")
            print(f"{r['size']:<10}{name:<12}" + "".join(cells))
        for backend in backends:
            account = r["accounting"][backend]
            stages = ", ".join(f"{k} {v:.1f}" for k, v in account.items() if k not in ("stages", "frame", "unaccounted"))
            print(f"    {backend} mean ms per stage: {stages}; sum {account['stages']:.1f} of the frame's "
                  f"{account['frame']:.1f} (unaccounted {account['unaccounted']:.1f})")
        for backend, live in r["live"].items():
            live_stages = ", ".join(f"{k} {v['p50']:.1f}" for k, v in live["stages"].items())
            print(f"    live ({backend}) p50 ms per stage: {live_stages}")
    print("* the backend users get by default (--backend auto)")
    streams = [int(n) for n in args.streams.split(",")]
    per_stream = {backend: bench_streams(backend, streams) for backend in backends}
    print("engine cost per stream, one batched call for N streams (one flow lattice per face), ms: " + "; ".join(
        f"{b}: " + ", ".join(f"N={n} {ms:.2f}" for n, ms in costs.items()) for b, costs in per_stream.items()))
    if args.png:
        plot(results, args.png)
    for r in results:
        for full in r["full"].values():
            full.pop("_samples", None)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "results": results, "engine_per_stream_ms": per_stream},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
