"""Work on files the app uploads: a photo animated into a clip (``POST /animate``) and a reference
clip made into a style (``POST /style``).

Bodies are streamed to a temporary file in chunks, up to ``MAX_UPLOAD`` bytes (the app's other
requests keep their small limit), and at most ``MAX_UPLOADS`` at once (503 with Retry-After past
that), so uploads never hold the server's memory. The work runs on the server's one job thread,
so a long job never takes the event loop and two jobs never compete with the live streams for
more than one core.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from ..errors import InvalidRequest
from ..expression.library import ExpressionLibrary
from ..expression.styles import Style, extract_style, free_style_path, save_style, styles_dir
from ..io.files import writable_folder
from ..runtime.animate import read_photo, write_clip

MAX_UPLOAD = 64 << 20  # a minute of 720p video, or any photo
MAX_UPLOADS = 2  # bodies received at once; more wait for a retry (each may be 64 MB on disk)
MAX_SECONDS = 10.0  # longest clip ``/animate`` makes
RETRY_AFTER = 5  # seconds a refused upload is told to wait


class UploadSlots:
    """Counts the uploads being received; ``receive`` refuses one past ``MAX_UPLOADS`` with 503."""

    def __init__(self, limit: int = MAX_UPLOADS):
        self.limit, self.active = limit, 0

    @contextlib.asynccontextmanager
    async def receive(self, request: web.Request, filename: str = "upload") -> AsyncIterator[Path]:
        """The request's body streamed into a temporary file (deleted afterwards); 413 past
        ``MAX_UPLOAD`` bytes, 503 with Retry-After while ``limit`` others are being received."""
        if self.active >= self.limit:
            raise web.HTTPServiceUnavailable(text=f"{self.limit} uploads are being received: try again shortly",
                                             headers={"Retry-After": str(RETRY_AFTER)})
        too_large = web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD, actual_size=request.content_length or 0,
                                                  text=f"uploads are limited to {MAX_UPLOAD >> 20} MB")
        if (request.content_length or 0) > MAX_UPLOAD:
            raise too_large
        with tempfile.TemporaryDirectory(prefix="livemotion-upload-") as folder:
            path = Path(folder) / (re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name)[-80:].lstrip(".") or "upload")
            self.active += 1  # only while it is being received: the work on it is the job thread's
            try:
                size = 0
                with path.open("wb") as file:
                    async for chunk in request.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > MAX_UPLOAD:
                            raise too_large
                        file.write(chunk)
            finally:
                self.active -= 1
            yield path


def animated_clip(photo: Path, emotion: str, seconds: float, intensity: float, offset: bool,
                  library: ExpressionLibrary) -> bytes:
    """The photo (an image file) animated into an H.264 MP4 at 30 fps (``runtime.animate``)."""
    if not 0.5 <= seconds <= MAX_SECONDS:
        raise InvalidRequest(f"seconds must be between 0.5 and {MAX_SECONDS:g}, got {seconds}")
    if not 0.0 <= intensity <= 1.0:
        raise InvalidRequest(f"intensity must be between 0 and 1, got {intensity}")
    image = read_photo(photo.read_bytes(), "the uploaded photo")
    with tempfile.TemporaryDirectory(prefix="livemotion-") as folder:
        out = Path(folder) / "clip.mp4"
        write_clip(image, out, emotion, seconds, 30.0, intensity, offset, library)
        return out.read_bytes()


def check_style_target(name: str, overwrite: bool) -> None:
    """Before an upload is received and measured: the name is allowed and free, the folder writable."""
    free_style_path(name, overwrite)
    writable_folder(styles_dir())


def uploaded_style(clip: Path, name: str, overwrite: bool) -> Style:
    """The style the uploaded clip shows (against its own calmest second), stored as ``name``
    (``check_style_target`` was asked before the upload was received)."""
    style = extract_style(clip, name)
    save_style(style, overwrite)
    return style
