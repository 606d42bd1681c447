#!/usr/bin/env python3
"""WebRTC round-trip latency through `livemotion serve`, filter on vs bypassed, in one run.

    tools/bench_webrtc.py [--frames 150] [--rounds 2] [--emotion happy] [--json OUT]

Starts the server on 127.0.0.1 in its own process, then an aiortc client sends the demo face at
640x480@30 (VP8), each frame numbered in a corner block code, and times every frame back from
hand-off to the sender until decoded on return. Rounds alternate bypass and filter so drift on a
shared machine hits both. Loopback only (ICE is limited to 127.0.0.1 on both sides).
"""

from __future__ import annotations

import livemotion  # noqa: F401  (first: it sets the BLAS thread count before numpy loads OpenBLAS)

# isort: split
import argparse
import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np

from livemotion.contrib.webrtc_probe import probe, wait_for_port
from livemotion.io.demo import demo_frame
from livemotion.server.app import keep_ice_on_loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run(args) -> dict:
    keep_ice_on_loopback()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "livemotion", "serve", "--port", str(port)])
    frames = [demo_frame(i) for i in range(90)]
    url = f"http://127.0.0.1:{port}"
    results: dict[str, list[float]] = {"bypass": [], "filter": []}
    try:
        await wait_for_port(port)
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws") as control:
            for _ in range(args.rounds):
                for mode in ("bypass", "filter"):
                    message = {"type": "set", "bypass": mode == "bypass", "emotion": args.emotion}
                    await control.send_json(message)
                    await control.receive()
                    got = await probe(url, lambda i: frames[i % len(frames)], args.frames, timeout=120)
                    results[mode] += got.latencies()[30:].tolist()  # after ramp-up and the emotion onset
    finally:
        server.terminate()
        server.wait(timeout=20)
    summary = {mode: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "frames": len(v)}
               for mode, v in results.items()}
    summary["added_p50_ms"] = summary["filter"]["p50"] - summary["bypass"]["p50"]
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150, help="frames per round and mode (default 150)")
    parser.add_argument("--rounds", type=int, default=2, help="bypass/filter rounds (default 2)")
    parser.add_argument("--emotion", default="happy", help="emotion while filtering (default happy)")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    summary = asyncio.run(run(args))
    for mode in ("bypass", "filter"):
        s = summary[mode]
        print(f"{mode:<7} round trip p50 {s['p50']:6.1f} ms  p95 {s['p95']:6.1f} ms  ({s['frames']} frames)")
    print(f"the filter adds {summary['added_p50_ms']:.1f} ms at p50 (target: at most one frame, 33 ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
