"""Virtual-camera sink: the filtered video as a camera that Zoom, Meet, Teams and OBS can pick.

pyvirtualcam drives the platform's device: v4l2loopback on Linux, OBS Virtual Camera on Windows
and macOS. The sink negotiates the pixel format (frames go out in the device's native format
when it is one we can produce directly, I420 or NV12, else as RGB for pyvirtualcam to convert),
paces output at the source rate, and turns "no device" into the exact set-up steps.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import cv2
import numpy as np

from ..errors import SinkError
from ..types import Frame

SETUP = {
    "linux": "no v4l2loopback device: install it (Debian/Ubuntu: sudo apt install v4l2loopback-dkms) and create one "
             "with: sudo modprobe v4l2loopback exclusive_caps=1 card_label=livemotion video_nr=10 "
             "(then use --sink vcam:/dev/video10)",
    "darwin": "no OBS Virtual Camera: install OBS Studio 30+, click Start Virtual Camera once, then stop it and quit OBS",
    "win32": "no OBS Virtual Camera: install OBS Studio 30+, click Start Virtual Camera once, then stop it and quit OBS",
}


def _rgb_to_i420(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)


def _rgb_to_nv12(image: np.ndarray) -> np.ndarray:
    i420 = _rgb_to_i420(image)
    h, w = image.shape[:2]
    y, u, v = i420[:h], i420[h:h + h // 4].reshape(-1), i420[h + h // 4:].reshape(-1)
    uv = np.empty(u.size * 2, np.uint8)
    uv[0::2], uv[1::2] = u, v
    return np.concatenate([y.reshape(-1), uv])


class FramePacer:
    """Releases at most ``fps`` frames a second: waits for the next slot, never makes up for lateness."""

    def __init__(self, fps: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval, self.clock, self.sleep = 1.0 / fps, clock, sleep
        self._next: float | None = None

    def wait(self) -> None:
        """Sleep until the next frame is due at the source's rate."""
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


class VirtualCameraSink:
    """``write(frame)`` sends one frame to the virtual camera, paced at ``fps``.

    ``camera_factory`` is ``pyvirtualcam.Camera`` except in tests, where a stand-in device
    takes its place (these build machines have no V4L2 support).
    """

    def __init__(self, size: tuple[int, int], fps: float, device: str | None = None,
                 camera_factory: Callable | None = None, pace: bool = True):
        import pyvirtualcam

        factory = camera_factory or pyvirtualcam.Camera
        width, height = size
        if width % 2 or height % 2:
            raise SinkError(f"a virtual camera needs an even frame size, the source is {width}x{height}.")
        self._pyvirtualcam = pyvirtualcam
        try:
            probe = factory(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB, device=device)
        except RuntimeError as error:
            raise SinkError(self._explain(error, device)) from None
        native = probe.native_fmt
        self._convert: Callable[[np.ndarray], np.ndarray] | None = None
        if native in (pyvirtualcam.PixelFormat.I420, pyvirtualcam.PixelFormat.NV12):
            probe.close()  # reopen taking the native format: no second conversion inside pyvirtualcam
            self.camera = factory(width, height, fps, fmt=native, device=device)
            self._convert = _rgb_to_i420 if native == pyvirtualcam.PixelFormat.I420 else _rgb_to_nv12
        else:
            self.camera = probe
        self.format = self.camera.fmt
        self._pacer = FramePacer(fps) if pace else None

    @staticmethod
    def _explain(error: RuntimeError, device: str | None) -> str:
        text = str(error)
        if "busy" in text.lower() or "already" in text.lower():
            return f"the virtual camera {device or ''} is in use by another program ({text}): close it or pick another."
        platform = "linux" if sys.platform.startswith("linux") else sys.platform
        return f"cannot open a virtual camera: {SETUP.get(platform, text)}."

    @property
    def device(self) -> str:
        """The device livemotion writes to, as the call apps list it."""
        return self.camera.device

    def write(self, frame: Frame) -> None:
        """Send one frame to the virtual camera in its native pixel format, paced."""
        image = frame.image if self._convert is None else self._convert(frame.image)
        if self._pacer is not None:
            self._pacer.wait()
        self.camera.send(image)

    def close(self) -> None:
        """Release the device."""
        self.camera.close()

    def abort(self) -> None:
        """Release the device (a camera keeps nothing to undo)."""
        self.camera.close()
