"""Frame sinks: a video file (H.264 through PyAV), a y4m stream on stdout for ffmpeg, or the
virtual camera (``vcam``).

``open_sink(spec, size, fps)`` checks the destination before any frame is processed, so an
unwritable path fails in the first second, not after a long run. Files are written under a
temporary name and renamed when complete; a run that fails ``abort``s instead, so an earlier file
of the same name stays as it was, and a partial file left by a process killed hard is removed by
the next run into the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import av
import numpy as np

from ..errors import SinkError
from ..types import Frame
from .vcam import VirtualCameraSink

# Container format, codec and encoder options per file type: H.264 where it fits, VP9 for WebM.
_Format = tuple[str, str, dict[str, object]]
_H264: dict[str, object] = {"crf": "18", "preset": "veryfast", "tune": "zerolatency"}
_FORMATS: dict[str, _Format] = {
    ".mp4": ("mp4", "libx264", _H264), ".mkv": ("matroska", "libx264", _H264), ".mov": ("mov", "libx264", _H264),
    ".avi": ("avi", "libx264", _H264), ".webm": ("webm", "libvpx-vp9", {"crf": "30", "b": "0"}),
    ".y4m": ("yuv4mpegpipe", "rawvideo", {}),
}
# A live run's file is written while the frames come: x264's superfast preset encodes a 720p frame
# in 5.6 ms against veryfast's 8.1 on the 2-core VM (1080p: 12.8 against 19.1) for a file ~30 %
# larger; a file made from a file keeps veryfast.
_LIVE_OPTIONS: dict[str, dict[str, object]] = {"libx264": {"preset": "superfast"}}
_FINE_TIME_BASE = Fraction(1, 90_000)  # keeps any source's timestamps exact to 11 us


class FrameSink(Protocol):
    """Where output frames go: a file, the y4m pipe, the virtual camera."""

    def write(self, frame: Frame) -> None:
        """Write one frame; ``SinkError`` says what went wrong."""

    def close(self) -> None:
        """Finish: a file is complete and renamed into place."""

    def abort(self) -> None:
        """Give up after a failure: nothing is renamed into place, and an earlier file stays as it was."""


def _write_failed(target: object, error: OSError) -> SinkError:
    """The one line for an output that cannot take more (a full disk, a closed pipe's sibling errors)."""
    if error.errno == errno.ENOSPC:
        return SinkError(f"cannot write {target}: no space left on the device. Free some space or pick another path; "
                         "an earlier file of that name is kept as it was.")
    return SinkError(f"cannot write {target}: {error.strerror or error}. An earlier file of that name is kept as it was.")


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
        self._broken = False
        self._target = target if isinstance(target, str) else "standard output"

    def write(self, frame: Frame) -> None:
        image = frame.image
        if any(self._pad):
            image = np.pad(image, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        # Keep the source's timestamps; nudge forward only if a source repeats one.
        pts = max(round(frame.pts / self._time_base), self._last_pts + 1)
        video_frame.pts, video_frame.time_base = pts, self._time_base
        self._last_pts = pts
        try:
            for packet in self._stream.encode(video_frame):
                self._container.mux(packet)
        except BrokenPipeError:  # the reader of a pipe left: nothing more can be written, nor flushed
            self._broken = True
            raise
        except OSError as error:  # a full disk or a device that went away
            self._broken = True
            raise _write_failed(self._target, error) from None

    def close(self) -> None:
        if self._broken:
            self.abort()
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except BrokenPipeError:
            self._broken = True
            raise
        except OSError as error:
            self._broken = True
            self.abort()
            raise _write_failed(self._target, error) from None

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the close's own flush fails the same way a write did
            self._container.close()


def _check_writable_file(path: str) -> tuple[Path, _Format]:
    """The target and its format, or ``SinkError`` before anything is created."""
    target = Path(path)
    if target.is_dir():
        raise SinkError(f"cannot write {path}: it is a directory. Give a file name such as {target / 'out.mp4'}.")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise SinkError(f"cannot write {path}: the folder {parent} does not exist. Create it or pick another path.")
    suffix = target.suffix.lower()
    if suffix not in _FORMATS:
        raise SinkError(
            f"cannot write {path}: unknown video type {suffix or '(none)'}. Use one of "
            f"{', '.join(sorted(_FORMATS))}, or - for a y4m stream on stdout."
        )
    return target, _FORMATS[suffix]


_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.partial$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the partial files (``.NAME.PID.partial``) that processes killed hard left in ``folder``;
    those of running processes stay. The removed paths."""
    removed = []
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            found = _PARTIAL.match(path.name)
            if found and not _process_alive(int(found["pid"])):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


class _FileSink:
    """A video file written under a temporary name beside it and renamed when closed, so a run
    that is killed hard, or fails, leaves any previous file at that path intact."""

    def __init__(self, path: str, size: tuple[int, int], fps: float, live: bool = False):
        target, (container_format, codec, options) = _check_writable_file(path)
        if live:
            options = {**options, **_LIVE_OPTIONS.get(codec, {})}
        self.path = target
        remove_stale_partials(target.parent if str(target.parent) else Path("."))
        self._partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:  # a real open, not os.access: root passes access checks that the filesystem still refuses
            self._partial.open("wb").close()
        except OSError as error:
            raise SinkError(f"cannot write {path}: {error.strerror}. Pick a path in a folder you can write to.") from None
        self._encoder = _PyAVSink(str(self._partial), container_format, codec, size, fps, dict(options))

    def write(self, frame: Frame) -> None:
        self._encoder.write(frame)

    def close(self) -> None:
        try:
            self._encoder.close()
            self._partial.replace(self.path)
        except OSError as error:
            if isinstance(error, SinkError):
                raise
            raise _write_failed(self.path, error) from None
        finally:
            self._partial.unlink(missing_ok=True)

    def abort(self) -> None:
        try:
            self._encoder.abort()
        finally:
            self._partial.unlink(missing_ok=True)


def refuse_overwriting_source(sink: str, source: str) -> None:
    """``SinkError`` when the sink names the source file (any path that resolves to it)."""
    sink_path, source_path = Path(sink), Path(source)
    if not source_path.is_file() or sink.partition(":")[0] in _SINKS:
        return
    same = sink_path.exists() and os.path.samefile(sink_path, source_path)
    if same or sink_path.resolve() == source_path.resolve():
        raise SinkError(f"--sink {sink} is the source file itself: writing it would destroy the input. "
                        "Pick another output name.")


def _stdout_sink(_: str, size: tuple[int, int], fps: float) -> FrameSink:
    # Raw y4m on stdout, e.g. `livemotion run --sink - | ffplay -` or `| ffmpeg -i - ...`.
    if sys.stdout is None:  # Python starts without one when its descriptor is closed (`>&-`)
        raise SinkError("cannot write to standard output: it is closed. Pipe it into a player "
                        "(`--sink - | ffplay -`) or give a file name.")
    return _PyAVSink(sys.stdout.buffer, "yuv4mpegpipe", "rawvideo", size, fps, {})


def _virtual_camera_sink(spec: str, size: tuple[int, int], fps: float) -> FrameSink:
    return VirtualCameraSink(size, fps, device=spec.partition(":")[2] or None)


_SINKS: dict[str, Callable[[str, tuple[int, int], float], FrameSink]] = {
    "-": _stdout_sink,
    "vcam": _virtual_camera_sink,
}


def open_sink(spec: str, size: tuple[int, int], fps: float, live: bool = False) -> FrameSink:
    """Open the sink a user named: ``-`` (y4m on stdout), ``vcam`` / ``vcam:DEVICE`` (virtual camera)
    or a file path (.mp4/.mkv/.mov/.avi/.webm/.y4m); ``live``: the frames come in real time, so a
    file is encoded faster (``_LIVE_OPTIONS``)."""
    opener = _SINKS.get(spec.partition(":")[0])
    return opener(spec, size, fps) if opener is not None else _FileSink(spec, size, fps, live)
