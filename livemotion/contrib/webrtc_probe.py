"""A WebRTC client that sends numbered frames to ``livemotion serve`` and times what comes back.

Each sent frame carries its index as 12 black/white 16-px blocks in the top-left corner; the
filter never touches the background, so the index survives the round trip (VP8 both ways) and
every returned frame can be matched to the frame it came from. Used by the WebRTC latency
benchmark and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

BITS, BLOCK = 12, 16


async def wait_for_port(port: int, timeout: float = 60.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port`` (a server starting up)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def stamp(image: np.ndarray, index: int) -> np.ndarray:
    """``image`` with ``number`` written into its top-left corner as a binary code that survives VP8."""
    out = image.copy()
    for bit in range(BITS):
        out[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = 255 if (index >> bit) & 1 else 0
    return out


def read_stamp(image: np.ndarray) -> int:
    """The number ``stamp`` wrote into ``image``, or None where it cannot be read."""
    blocks = image[4:BLOCK - 4].reshape(BLOCK - 8, -1, 3)[:, : BITS * BLOCK].reshape(BLOCK - 8, BITS, BLOCK, 3)
    return int(sum(1 << bit for bit in range(BITS) if blocks[:, bit, 4:-4].mean() > 127))


class NumberedTrack(VideoStreamTrack):
    """Sends ``frame_source(i)`` stamped with ``i`` at 30 fps; remembers when each left."""

    def __init__(self, frame_source: Callable[[int], np.ndarray]):
        super().__init__()
        self.frame_source = frame_source
        self.sent: dict[int, tuple[float, np.ndarray]] = {}
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        """The next numbered frame, paced at the track's frame rate."""
        pts, time_base = await self.next_timestamp()
        index = self._index % (1 << BITS)
        image = stamp(self.frame_source(self._index), index)
        self.sent[index] = (time.perf_counter(), image)
        self._index += 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class Returned:
    """One frame the server sent back: its number, picture and when it arrived."""

    index: int
    latency_ms: float
    image: np.ndarray
    sent: np.ndarray


@dataclass
class ProbeResult:
    """What one probe session sent and got back."""

    returned: list[Returned] = field(default_factory=list)

    def latencies(self) -> np.ndarray:
        """Round-trip milliseconds of every frame that came back."""
        return np.array([r.latency_ms for r in self.returned])


async def probe(url: str, frame_source: Callable[[int], np.ndarray], frames: int, timeout: float = 60.0,
                on_frame: Callable[[Returned], None] | None = None) -> ProbeResult:
    """Filter mode round trip against the server at ``url`` until ``frames`` frames came back."""
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = NumberedTrack(frame_source)
    peer.addTrack(track)
    result = ProbeResult()
    done = asyncio.Event()

    async def collect(remote: MediaStreamTrack) -> None:
        while len(result.returned) < frames:
            frame = await remote.recv()
            if not isinstance(frame, av.VideoFrame):
                continue
            arrived = time.perf_counter()
            image = frame.to_ndarray(format="rgb24")
            index = read_stamp(image)
            if index in track.sent:
                sent_at, sent = track.sent[index]
                item = Returned(index, (arrived - sent_at) * 1e3, image, sent)
                result.returned.append(item)
                if on_frame is not None:
                    on_frame(item)
        done.set()

    tasks = []
    peer.on("track", lambda remote: tasks.append(asyncio.ensure_future(collect(remote))))
    try:
        await peer.setLocalDescription(await peer.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url.rstrip('/')}/offer", json={
                "sdp": peer.localDescription.sdp, "type": peer.localDescription.type, "mode": "filter"}) as response:
                if response.status != 200:
                    raise RuntimeError(f"offer refused: {response.status} {await response.text()}")
                answer = await response.json()
        await peer.setRemoteDescription(RTCSessionDescription(**answer))
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        for task in tasks:
            task.cancel()
        await peer.close()
    return result


__all__ = ["NumberedTrack", "ProbeResult", "Returned", "probe", "read_stamp", "stamp", "wait_for_port"]
