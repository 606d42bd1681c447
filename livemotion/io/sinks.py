"""Frame sinks: a video file (H.264 through PyAV) or a y4m stream on stdout for ffmpeg.

``open_sink(spec, size, fps)`` checks the destination before any frame is processed, so an
unwritable path fails in the first second, not after a long run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import av
import numpy as np

from ..errors import SinkError
from ..types import Frame

# Codec per container: H.264 where it fits, VP9 for WebM.
_CODECS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".avi": "libx264", ".webm": "libvpx-vp9"}
_FINE_TIME_BASE = Fraction(1, 90_000)  # keeps any source's timestamps exact to 11 us


class FrameSink(Protocol):
    def write(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


class _PyAVSink:
    """Encodes frames into a container; odd sizes are padded to even (4:2:0 chroma needs it)."""

    def __init__(self, target: str | BinaryIO, container_format: str | None, codec: str,
                 size: tuple[int, int], fps: float, options: dict[str, object]):
        rate = Fraction(fps).limit_denominator(1001)
        # y4m has no timestamps, only a frame rate (taken from the time base): use 1/rate there.
        self._time_base = 1 / rate if container_format == "yuv4mpegpipe" else _FINE_TIME_BASE
        width, height = size
        self._pad = (width % 2, height % 2)
        try:
            self._container = av.open(target, mode="w", format=container_format)
        except (OSError, av.error.FFmpegError) as error:
            raise SinkError(
                f"cannot write {target}: {getattr(error, 'strerror', None) or error}. "
                "Pick a path in a folder you can write to."
            ) from None
        stream = self._container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        self._stream = stream
        self._stream.width, self._stream.height = width + self._pad[0], height + self._pad[1]
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = self._time_base
        self._stream.codec_context.time_base = self._time_base
        self._stream.options = options
        self._last_pts = -1

    def write(self, frame: Frame) -> None:
        image = frame.image
        if any(self._pad):
            image = np.pad(image, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        # Keep the source's timestamps; nudge forward only if a source repeats one.
        pts = max(round(frame.pts / self._time_base), self._last_pts + 1)
        video_frame.pts, video_frame.time_base = pts, self._time_base
        self._last_pts = pts
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


def _file_sink(path: str, size: tuple[int, int], fps: float) -> FrameSink:
    target = Path(path)
    if target.is_dir():
        raise SinkError(f"cannot write {path}: it is a directory. Give a file name such as {target / 'out.mp4'}.")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise SinkError(f"cannot write {path}: the folder {parent} does not exist. Create it or pick another path.")
    try:  # a real open, not os.access: root passes access checks that the filesystem still refuses
        with open(target, "ab"):
            pass
    except OSError as error:
        raise SinkError(f"cannot write {path}: {error.strerror}. Pick a path in a folder you can write to.") from None
    suffix = target.suffix.lower()
    if suffix == ".y4m":
        return _PyAVSink(path, "yuv4mpegpipe", "rawvideo", size, fps, {})
    if suffix not in _CODECS:
        raise SinkError(
            f"cannot write {path}: unknown video type {suffix or '(none)'}. Use one of "
            f"{', '.join(sorted(_CODECS) + ['.y4m'])}, or - for a y4m stream on stdout."
        )
    options: dict[str, object]
    if _CODECS[suffix] == "libx264":
        options = {"crf": "18", "preset": "veryfast", "tune": "zerolatency"}
    else:
        options = {"crf": "30", "b": "0"}
    return _PyAVSink(path, None, _CODECS[suffix], size, fps, options)


def _stdout_sink(_: str, size: tuple[int, int], fps: float) -> FrameSink:
    # Raw y4m on stdout, e.g. `livemotion run --sink - | ffplay -` or `| ffmpeg -i - ...`.
    return _PyAVSink(sys.stdout.buffer, "yuv4mpegpipe", "rawvideo", size, fps, {})


def _virtual_camera_sink(spec: str, size: tuple[int, int], fps: float) -> FrameSink:
    from .vcam import VirtualCameraSink

    return VirtualCameraSink(size, fps, device=spec.partition(":")[2] or None)


_SINKS: dict[str, Callable[[str, tuple[int, int], float], FrameSink]] = {
    "-": _stdout_sink,
    "vcam": _virtual_camera_sink,
}


def open_sink(spec: str, size: tuple[int, int], fps: float) -> FrameSink:
    """Open the sink a user named: ``-`` (y4m on stdout), ``vcam`` / ``vcam:DEVICE`` (virtual camera)
    or a file path (.mp4/.mkv/.mov/.avi/.webm/.y4m)."""
    return _SINKS.get(spec.partition(":")[0], _file_sink)(spec, size, fps)
