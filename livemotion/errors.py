"""The errors users see: one line that says what went wrong and what to do.

Every error is a ``LivemotionError`` and also the built-in it matches (as PyAV's ``av.error``
does), so callers can catch either: a source or sink problem is an ``OSError``, a bad request a
``ValueError``, a backend that cannot run here a ``RuntimeError``. The CLI prints ``str(error)``
on one line and exits with status 2; no traceback.
"""

from __future__ import annotations


class LivemotionError(Exception):
    """A problem with the user's input or environment, phrased as advice."""

    def __str__(self) -> str:
        # OSError formats (errno, strerror) pairs its own way; always show the advice as given
        return str(self.args[0]) if self.args else ""


class SourceError(LivemotionError, OSError):
    """A source cannot be opened or read: missing, damaged or unsupported file, no camera."""


class SinkError(LivemotionError, OSError):
    """A sink cannot be written: unwritable path, unknown file type, no virtual camera."""


class InvalidRequest(LivemotionError, ValueError):
    """An option, expression request, schedule or control message that is not valid."""


class BackendUnavailable(LivemotionError, RuntimeError):
    """An engine backend or device that cannot run here (missing package, no GPU)."""


class EngineBuildError(LivemotionError, RuntimeError):
    """An engine could not be exported or built (ONNX export, TensorRT plan)."""
