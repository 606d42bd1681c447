"""Work on files the app uploads: a photo animated into a clip (``POST /animate``) and a reference
clip made into a style (``POST /style``).

Bodies are read in chunks up to ``MAX_UPLOAD`` bytes (the app's other requests keep their small
limit). The work runs on the server's one job thread, so a long job never takes the event loop
and two jobs never compete with the live streams for more than one core.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from aiohttp import web

from ..errors import InvalidRequest
from ..expression.library import ExpressionLibrary
from ..expression.styles import Style, extract_style, free_style_path, save_style
from ..runtime.animate import read_photo, write_clip

MAX_UPLOAD = 64 << 20  # a minute of 720p video, or any photo
MAX_SECONDS = 10.0  # longest clip ``/animate`` makes


async def read_upload(request: web.Request) -> bytes:
    """The request's body, or 413 when it is larger than ``MAX_UPLOAD``."""
    too_large = web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD, actual_size=request.content_length or 0,
                                              text=f"uploads are limited to {MAX_UPLOAD >> 20} MB")
    if (request.content_length or 0) > MAX_UPLOAD:
        raise too_large
    data = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        data += chunk
        if len(data) > MAX_UPLOAD:
            raise too_large
    return bytes(data)


def animated_clip(photo: bytes, emotion: str, seconds: float, intensity: float, offset: bool,
                  library: ExpressionLibrary) -> bytes:
    """The photo (image file bytes) animated into an H.264 MP4 at 30 fps (``runtime.animate``)."""
    if not 0.5 <= seconds <= MAX_SECONDS:
        raise InvalidRequest(f"seconds must be between 0.5 and {MAX_SECONDS:g}, got {seconds}")
    if not 0.0 <= intensity <= 1.0:
        raise InvalidRequest(f"intensity must be between 0 and 1, got {intensity}")
    image = read_photo(photo, "the uploaded photo")
    with tempfile.TemporaryDirectory(prefix="livemotion-") as folder:
        out = Path(folder) / "clip.mp4"
        write_clip(image, out, emotion, seconds, 30.0, intensity, offset, library)
        return out.read_bytes()


def uploaded_style(clip: bytes, filename: str, name: str, overwrite: bool) -> Style:
    """The style the uploaded clip shows (against its own calmest second), stored as ``name``."""
    free_style_path(name, overwrite)  # before the slow part
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name)[-80:].lstrip(".") or "upload.mp4"
    with tempfile.TemporaryDirectory(prefix="livemotion-") as folder:
        path = Path(folder) / safe
        path.write_bytes(clip)
        style = extract_style(path, name)
    save_style(style, overwrite)
    return style
