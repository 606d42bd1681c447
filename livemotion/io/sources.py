"""Frame sources: a video file, a webcam, or the built-in demo clip.

``open_source(spec)`` picks one from a user-facing spec string:
``demo`` / ``demo:WxH``, ``webcam`` / ``webcam:N`` / ``/dev/videoN``, or a path PyAV can read.
Every source yields ``Frame`` records carrying their index and timestamps.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np

from ..errors import InvalidRequest, SourceError
from ..types import Frame
from .demo import demo_frame

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """Where frames come from: iterate for ``Frame`` records in order; ``size``, ``fps`` and ``frame_count`` (None:
    unknown) describe them."""

    name: str
    fps: float
    size: tuple[int, int]  # (width, height)
    frame_count: int | None  # None when unknown (webcam, some files)

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:
        """Release the device or file."""


class DemoSource:
    """The astronaut clip made by ``livemotion.demo``; ``frames`` long, ``fps`` frames a second;
    ``neutral``: her grin closed first (``demo.neutral_portrait``)."""

    def __init__(self, size: tuple[int, int] = (640, 480), fps: float = 30.0, frames: int = 180, neutral: bool = False):
        self.name, self.size, self.fps, self.frames, self.neutral = "demo", size, fps, frames, neutral
        self.frame_count: int | None = frames

    def __iter__(self) -> Iterator[Frame]:
        for index in range(self.frames):
            image = demo_frame(index, *self.size, fps=self.fps, neutral=self.neutral)
            yield Frame(image, index, Fraction(index) / Fraction(self.fps), time.perf_counter())

    def close(self) -> None:
        """Nothing to release."""
        pass


class MemorySource:
    """Frames already decoded into memory (benchmarks, tests): no decoding cost while measuring."""

    def __init__(self, images: list[np.ndarray], fps: float = 30.0, name: str = "memory"):
        self.name, self.fps, self._images = name, fps, images
        self.size = (images[0].shape[1], images[0].shape[0])
        self.frame_count: int | None = len(images)

    def __iter__(self) -> Iterator[Frame]:
        for index, image in enumerate(self._images):
            yield Frame(image, index, Fraction(index) / Fraction(self.fps), time.perf_counter())

    def close(self) -> None:
        """Nothing to release."""
        pass


class FileSource:
    """Any video file FFmpeg (through PyAV) decodes; timestamps come from the container."""

    def __init__(self, path: str):
        self.name = path
        if Path(path).is_dir():
            raise SourceError(f"cannot read {path}: it is a folder. Give a video file inside it, or --source demo.")
        if not Path(path).is_file():
            raise SourceError(
                f"cannot open {path}: no such file. Check the path, or try --source demo."
            )
        try:
            self._container = av.open(path)
        except av.error.FFmpegError as error:
            raise SourceError(
                f"cannot read {path}: not a video FFmpeg understands ({_reason(error)}). "
                "Is the file complete? Re-export it as MP4 (H.264) and try again."
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{path} has no video stream: pass a video file, not audio or an image list.")
        self._stream = self._container.streams.video[0]
        if self._stream.codec_context is None:
            self._container.close()
            raise SourceError(
                f"cannot decode the video in {path}: its codec is unknown to this FFmpeg build. "
                f"Convert it first: ffmpeg -i {path} -c:v libx264 converted.mp4"
            )
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate or 30
        self.fps = float(rate)
        self.size = (self._stream.codec_context.width, self._stream.codec_context.height)
        self.frame_count: int | None = self._stream.frames or None
        duration = self._container.duration  # microseconds, from the container's header (MKV: no frame count)
        # Frames the stated duration holds at the stream's rate, where the container says no count.
        self._frames_by_duration = round(duration / 1e6 * self.fps) if duration and not self.frame_count else None
        self.damage: str | None = None  # set when the file turned out truncated or damaged while reading
        self._iterated = False

    def __iter__(self) -> Iterator[Frame]:
        """The frames from the first; iterating again starts over (a looping --drive clip)."""
        if self._iterated:
            self._container.seek(0)
        self._iterated = True
        index = 0
        skipped = 0
        time_base = self._stream.time_base or Fraction(1, 90_000)
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    skipped += 1
                    continue  # a damaged packet: skip it, keep the rest of the video
                for frame in decoded:
                    pts = frame.pts * time_base if frame.pts is not None else Fraction(index) / Fraction(self.fps)
                    yield Frame(frame.to_ndarray(format="rgb24"), index, Fraction(pts), time.perf_counter())
                    index += 1
        except av.error.DecoderNotFoundError:
            raise SourceError(
                f"cannot decode {self._stream.codec_context.name} video in {self.name}: this FFmpeg build "
                f"has no decoder for it. Convert it first: ffmpeg -i {self.name} -c:v libx264 converted.mp4"
            ) from None
        except av.error.FFmpegError as error:
            if index == 0:
                raise SourceError(
                    f"cannot read {self.name}: {_reason(error)}. Is the file complete? Re-export it and try again."
                ) from None
            # Truncated tail: the frames before it were delivered; stop here and say so.
            self.damage = f"it ended early ({_reason(error)})"
        if index == 0:
            raise SourceError(f"{self.name} contains no decodable video frames: the file is empty or damaged.")
        announced = self.frame_count or self._frames_by_duration
        if self.damage is None and announced and index < 0.98 * announced - 1:  # headers may be ~off
            self.damage = "it ended early"
        if self.damage is not None or skipped:
            expected = (f" of the {self.frame_count} it announces" if self.frame_count else
                        f" of the ~{announced} its duration holds" if announced else "")
            self.damage = (f"{self.name} is truncated or damaged: {self.damage or f'{skipped} damaged packets skipped'}; "
                           f"read {index} frames{expected}")

    def close(self) -> None:
        """Close the container."""
        self._container.close()


@dataclass(frozen=True)
class CameraOptions:
    """What to ask a camera for; None keeps the camera's own choice."""

    size: tuple[int, int] | None = None  # (width, height)
    fps: float | None = None
    mirror: bool = False  # flip left-right, as a selfie preview shows you

    @property
    def is_default(self) -> bool:
        """True when nothing was asked of the camera."""
        return self == CameraOptions()


class WebcamSource:
    """A local camera through OpenCV (V4L2 on Linux, AVFoundation on macOS, Media Foundation on Windows).

    ``camera`` asks for a resolution and frame rate (cameras offer a fixed list: what it gives is
    used, with a warning when it differs) and can mirror the picture.
    """

    def __init__(self, device: int | str, camera: CameraOptions = CameraOptions()):
        self.name = f"webcam {device}"
        self.mirror = camera.mirror
        # OpenCV logs each backend it tries; our own error below says what matters.
        previous = cv2.getLogLevel()
        cv2.setLogLevel(0)  # 0 = silent
        try:
            self._capture = cv2.VideoCapture(device)
        finally:
            cv2.setLogLevel(previous)
        if not self._capture.isOpened():
            raise SourceError(
                f"no webcam at {device!r}: none is connected, or another app holds it "
                "(on Linux `ls /dev/video*` lists cameras). Use --source webcam:N for another one, "
                "or --source demo / a video file instead."
            )
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        if camera.size is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, camera.size[0])
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, camera.size[1])
        if camera.fps is not None:
            self._capture.set(cv2.CAP_PROP_FPS, camera.fps)
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 30.0) or 30.0
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if camera.size is not None and self.size != camera.size:
            log.warning("%s gives %dx%d, not the %dx%d asked for: using what it gives", self.name, *self.size,
                        *camera.size)
        if camera.fps is not None and abs(self.fps - camera.fps) > 0.5:
            log.warning("%s runs at %.0f fps, not the %.0f asked for", self.name, self.fps, camera.fps)
        self.frame_count: int | None = None

    def __iter__(self) -> Iterator[Frame]:
        start = time.perf_counter()
        index = 0
        while True:
            ok, bgr = self._capture.read()
            captured = time.perf_counter()
            if not ok:
                if index == 0:
                    raise SourceError(f"{self.name} opened but delivers no frames: close other apps using it.")
                return  # camera closed or unplugged: end the stream cleanly
            rgb = cv2.cvtColor(cv2.flip(bgr, 1) if self.mirror else bgr, cv2.COLOR_BGR2RGB)
            yield Frame(rgb, index, Fraction(captured - start).limit_denominator(1_000_000), captured)
            index += 1

    def close(self) -> None:
        """Release the camera."""
        self._capture.release()


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


DEMO_SIZES = (64, 3840)  # smallest and largest side of the demo clip, in pixels


def _open_demo(spec: str, camera: CameraOptions) -> FrameSource:
    match = re.fullmatch(r"demo(?::(\d+)x(\d+))?", spec)
    if not match:
        raise InvalidRequest(f"bad demo source {spec!r}: use demo or demo:WIDTHxHEIGHT, e.g. demo:1280x720.")
    size = (int(match[1]), int(match[2])) if match[1] else (640, 480)
    if not all(DEMO_SIZES[0] <= side <= DEMO_SIZES[1] for side in size):
        raise InvalidRequest(f"bad demo size {size[0]}x{size[1]}: each side must be {DEMO_SIZES[0]} to {DEMO_SIZES[1]} "
                             "pixels, e.g. demo:1280x720.")
    return DemoSource(size=size)


def _open_webcam(spec: str, camera: CameraOptions) -> FrameSource:
    if spec.startswith("/dev/"):
        return WebcamSource(spec, camera)
    match = re.fullmatch(r"webcam(?::(\d+))?", spec)
    if not match:
        raise InvalidRequest(f"bad webcam source {spec!r}: use webcam, webcam:N or a device path like /dev/video0.")
    return WebcamSource(int(match[1] or 0), camera)


_OPENERS: dict[str, Callable[[str, CameraOptions], FrameSource]] = {
    "demo": _open_demo,
    "webcam": _open_webcam,
    "/dev/": _open_webcam,
}


def open_source(spec: str, camera: CameraOptions = CameraOptions()) -> FrameSource:
    """Open the source a user named: ``demo[:WxH]``, ``webcam[:N]``, ``/dev/videoN`` or a file path;
    ``camera`` (resolution, frame rate, mirror) applies to cameras only."""
    for prefix, opener in _OPENERS.items():
        if spec == prefix or spec.startswith(prefix if prefix.endswith("/") else prefix + ":"):
            if prefix == "demo" and not camera.is_default:
                raise InvalidRequest("--size, --fps and --mirror are for webcams: the demo's size is demo:WxH")
            return opener(spec, camera)
    if not camera.is_default:
        raise InvalidRequest(f"--size, --fps and --mirror are for webcams, not for the file {spec}")
    return FileSource(spec)
