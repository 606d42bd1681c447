"""Small files written whole or not at all (libraries, profiles, settings)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_whole(path: str | Path, data: bytes, private: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, renamed over it: a reader (or a
    crash) never sees half a file. ``private``: readable by the user only; else the umask's default."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
