"""Small files written whole or not at all (libraries, profiles, settings), and where the user's own live."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs


def data_dir(kind: str) -> Path:
    """Where the user's own ``kind`` (profiles, styles) live: ``$LIVEMOTION_DATA_DIR/kind``, else
    the platform's user data directory's (e.g. ``~/.local/share/livemotion/kind``)."""
    base = os.environ.get("LIVEMOTION_DATA_DIR") or platformdirs.user_data_dir("livemotion", appauthor=False)
    return Path(base) / kind


def private_folder(folder: Path) -> Path:
    """``folder``, created if need be, open to the user only (a person's face data is in it)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


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
