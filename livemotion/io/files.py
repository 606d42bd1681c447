"""Small files written whole or not at all (libraries, profiles, settings), and where the user's own live."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import platformdirs

from ..errors import SinkError

T = TypeVar("T")


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


def writable_folder(folder: Path) -> Path:
    """``folder``, made user-only, once a file could be created and removed in it; ``SinkError``
    naming it otherwise. Checked before slow work that ends by saving there (a profile, a style)."""
    try:
        private_folder(folder)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".livemotion-check-"):
            pass
    except OSError as error:
        raise SinkError(f"cannot save in {folder}: {error.strerror or error}. Check that the folder is yours and "
                        "writable, or point $LIVEMOTION_DATA_DIR at one that is.") from None
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


class FolderIndex(Generic[T]):
    """The files of one kind in a folder, each read once and again only when it changes.

    Listing a folder is a directory read; reading every file in it on every call is not (a profile
    is a few MB), and the control API lists profiles and styles in every reply. A file is read anew
    when its size, modification time or inode changes; files that ``read`` refuses (None) are left
    out, and so are files that vanish between the listing and the read.
    """

    def __init__(self, read: Callable[[Path], T | None], pattern: str = "*.npz"):
        self._read, self._pattern = read, pattern
        self._known: dict[Path, tuple[tuple[int, int, int], T | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, folder: Path) -> list[T]:
        """What ``read`` made of each file in ``folder`` matching the pattern, by file name."""
        found: list[T] = []
        with self._lock:
            seen = set()
            for path in sorted(folder.glob(self._pattern)):
                try:
                    status = path.stat()
                except OSError:
                    continue
                key = (status.st_mtime_ns, status.st_size, status.st_ino)
                seen.add(path)
                cached = self._known.get(path)
                if cached is None or cached[0] != key:
                    cached = self._known[path] = (key, self._read(path))
                if cached[1] is not None:
                    found.append(cached[1])
            for gone in set(self._known) - seen:
                if gone.parent == folder:
                    del self._known[gone]
        return found
