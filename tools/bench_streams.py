#!/usr/bin/env python3
"""Many calls on one machine: N simultaneous WebRTC clients through one `livemotion serve`.

    tools/bench_streams.py [--streams 1,2,4,8] [--frames 90] [--size 480x480] [--json OUT] [--png OUT]

For each N, batched (`--batch-window 4`: streams' frames within 4 ms share one engine call, the
default on a GPU) and unbatched (`--batch-window 0`, the default on a CPU) in the same run: a
fresh server on 127.0.0.1, N aiortc clients sending the demo face at 30 fps (filter mode,
emotion happy), each until ``--frames`` frames came back. Per mode and N: fps per stream (frames
back / time from first to last), round-trip p50/p95 over all streams, and the engine time per
frame from the server's stats. N grows until a mode falls under 25 fps per stream. Loopback
only.
"""

from __future__ import annotations

import livemotion  # noqa: F401  (first: it sets the BLAS thread count before numpy loads OpenBLAS)

# isort: split
import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

from livemotion.contrib.webrtc_probe import probe, wait_for_port
from livemotion.io.demo import demo_frame
from livemotion.server.app import keep_ice_on_loopback

sys.path.insert(0, str(Path(__file__).parent))
from bench_webrtc import free_port  # noqa: E402  (a sibling script)

TARGET_FPS = 25.0


async def one_run(streams: int, frames: int, size: tuple[int, int], batch_ms: float) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "livemotion", "serve", "--port", str(port), "--fresh",
                               "--emotion", "happy", "--batch-window", str(batch_ms)], stderr=subprocess.DEVNULL)
    faces = [demo_frame(i, *size) for i in range(60)]
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_port(port)
        results = []

        async def client() -> None:
            arrivals: list[float] = []
            got = await probe(url, lambda i: faces[i % len(faces)], frames, timeout=180,
                              on_frame=lambda _: arrivals.append(time.perf_counter()))
            results.append((got.latencies(), arrivals))

        await asyncio.gather(*(client() for _ in range(streams)))
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws") as control:
            await control.send_json({"type": "subscribe", "stats": True})
            stats: dict = {}
            while stats.get("type") != "stats":
                stats = json.loads((await control.receive(timeout=5)).data)
    finally:
        server.terminate()
        server.wait(timeout=20)
    latencies = np.concatenate([lat[15:] for lat, _ in results])  # after ramp-up
    fps = [(len(arr) - 1) / (arr[-1] - arr[0]) for _, arr in results if len(arr) > 1]
    engine = stats.get("stages", {}).get("engine", {})
    return {"streams": streams, "fps_per_stream_min": float(min(fps)), "fps_per_stream_mean": float(np.mean(fps)),
            "rtt_p50_ms": float(np.percentile(latencies, 50)), "rtt_p95_ms": float(np.percentile(latencies, 95)),
            "engine_p50_ms": engine.get("p50")}


async def run(args: argparse.Namespace) -> dict:
    keep_ice_on_loopback()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    report: dict = {"size": args.size, "frames": args.frames, "batched": [], "unbatched": []}
    for n in (int(v) for v in args.streams.split(",")):
        for mode, batch_ms in (("batched", 4.0), ("unbatched", 0.0)):
            result = await one_run(n, args.frames, size, batch_ms)  # type: ignore[arg-type]
            report[mode].append(result)
            print(f"{mode:<9} N={n:<2} fps/stream min {result['fps_per_stream_min']:5.1f} mean "
                  f"{result['fps_per_stream_mean']:5.1f}  rtt p50 {result['rtt_p50_ms']:6.1f} p95 "
                  f"{result['rtt_p95_ms']:6.1f} ms  engine p50 {result['engine_p50_ms']} ms", flush=True)
        if all(report[m][-1]["fps_per_stream_min"] < TARGET_FPS for m in ("batched", "unbatched")):
            break
    for mode in ("batched", "unbatched"):
        held = [r["streams"] for r in report[mode] if r["fps_per_stream_min"] >= TARGET_FPS]
        report[f"{mode}_largest_n_at_{TARGET_FPS:g}fps"] = max(held, default=0)
    return report


def plot(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for mode in ("batched", "unbatched"):
        ns = [r["streams"] for r in report[mode]]
        axes[0].plot(ns, [r["fps_per_stream_min"] for r in report[mode]], marker="o", label=mode)
        axes[1].plot(ns, [r["rtt_p50_ms"] for r in report[mode]], marker="o", label=mode)
    axes[0].axhline(TARGET_FPS, color="grey", linestyle=":")
    axes[0].set(xlabel="streams", ylabel="fps per stream (slowest)", title=f"{report['size']} demo face")
    axes[1].set(xlabel="streams", ylabel="round trip p50, ms")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1,2,4,8", help="N values to try, growing (default 1,2,4,8)")
    parser.add_argument("--frames", type=int, default=90, help="frames back per stream (default 90)")
    parser.add_argument("--size", default="480x480", help="frame size sent (default 480x480)")
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--png", help="write the plot here")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(f"largest N holding {TARGET_FPS:g} fps per stream: batched {report['batched_largest_n_at_25fps']}, "
          f"unbatched {report['unbatched_largest_n_at_25fps']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.png:
        plot(report, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
