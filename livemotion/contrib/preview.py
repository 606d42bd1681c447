"""Side-by-side preview sheet: input | output for a few frames spread over the run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import SinkError


class PreviewSheet:
    """Keeps ``count`` (input, output) pairs spread over ``total`` frames, then writes one PNG.

    When the length is unknown (webcam), one pair is kept every ``every`` frames.
    """

    def __init__(self, path: str, count: int = 4, total: int | None = None, every: int = 30):
        parent = Path(path).parent
        if not parent.is_dir():
            raise SinkError(f"cannot write preview {path}: the folder {parent} does not exist.")
        self.path = path
        if total:
            self._picks = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
        else:
            self._picks = {i * every for i in range(count)}
        self._rows: list[np.ndarray] = []

    def offer(self, index: int, source: np.ndarray, output: np.ndarray) -> None:
        if index in self._picks:
            self._rows.append(np.hstack([source, np.full((source.shape[0], 8, 3), 255, np.uint8), output]))

    def write(self) -> None:
        if not self._rows:
            return
        width = max(row.shape[1] for row in self._rows)
        rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in self._rows]
        sheet = np.vstack(rows)
        if not cv2.imwrite(self.path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
            raise SinkError(f"cannot write preview {self.path}: use a .png path in a writable folder.")
