"""Preview sheets written at the end of a run: ``PreviewSheet`` (input | output for a few frames
spread over the run) and ``EmotionSheet`` (the face, cropped and enlarged, input above output,
one labelled column per emotion at its apex: what ``livemotion demo`` shows)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..errors import SinkError
from ..types import Box, FaceTrack, Frame, TrackResult


class Preview(Protocol):
    """What the runners feed every written frame to, and ask to write itself at the end."""

    def offer(self, frame: Frame, output: np.ndarray, track: TrackResult) -> None:
        """Consider one processed frame (input, output and its track) for the sheet."""

    def write(self) -> None:
        """Write the sheet; ``SinkError`` if it cannot be written."""


def _writable(path: str) -> str:
    parent = Path(path).parent
    if not parent.is_dir():
        raise SinkError(f"cannot write preview {path}: the folder {parent} does not exist.")
    return path


def _save(path: str, sheet: np.ndarray) -> None:
    if not cv2.imwrite(path, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise SinkError(f"cannot write preview {path}: use a .png path in a writable folder.")


def face_tile(image: np.ndarray, box: Box | None, label: str, side: int = 150) -> np.ndarray:
    """(side + 20, side, 3): the face in ``box`` with a 20 % margin, enlarged to ``side``, a label above."""
    if box is None:
        tile = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    else:
        margin = 0.2 * (box.x1 - box.x0)
        y0, y1 = int(max(box.y0 - margin, 0)), int(box.y1 + margin)
        x0, x1 = int(max(box.x0 - margin, 0)), int(box.x1 + margin)
        crop = image[y0:y1, x0:x1]
        grow = side > max(crop.shape[:2])
        tile = cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)
    labelled = np.vstack([np.full((20, side, 3), 255, np.uint8), tile])
    cv2.putText(labelled, label[: side // 8], (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return labelled


class PreviewSheet:
    """Keeps ``count`` (input, output) pairs spread over ``total`` frames, then writes one PNG.

    When the length is unknown (webcam), one pair is kept every ``every`` frames.
    """

    def __init__(self, path: str, count: int = 4, total: int | None = None, every: int = 30):
        self.path = _writable(path)
        if total:
            self._picks = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
        else:
            self._picks = {i * every for i in range(count)}
        self._rows: list[np.ndarray] = []

    def offer(self, frame: Frame, output: np.ndarray, track: TrackResult) -> None:
        """Keep the frame if it is one of the evenly spread ones."""
        if frame.index in self._picks:
            self._rows.append(np.hstack([frame.image, np.full((frame.image.shape[0], 8, 3), 255, np.uint8), output]))

    def write(self) -> None:
        """Write input | output of the kept frames as one PNG."""
        if not self._rows:
            return
        width = max(row.shape[1] for row in self._rows)
        rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in self._rows]
        _save(self.path, np.vstack(rows))


class EmotionSheet:
    """The face at each emotion's apex: ``apexes`` maps a frame index to the emotion shown there.
    Columns in that order; the top row is the input, the bottom row the output, faces enlarged."""

    def __init__(self, path: str, apexes: dict[int, str], side: int = 200):
        self.path, self.apexes, self.side = _writable(path), apexes, side
        self._columns: list[np.ndarray] = []

    def offer(self, frame: Frame, output: np.ndarray, track: TrackResult) -> None:
        """Keep the face of the frame if it is an emotion's apex."""
        emotion = self.apexes.get(frame.index)
        if emotion is None:
            return
        box = track.box if isinstance(track, FaceTrack) else None
        self._columns.append(np.vstack([face_tile(frame.image, box, f"{emotion}: input", self.side),
                                        face_tile(output, box, f"{emotion}: output", self.side)]))

    def write(self) -> None:
        """Write the contact sheet: inputs above outputs, one column per emotion."""
        if not self._columns:
            return
        gap = np.full((self._columns[0].shape[0], 6, 3), 255, np.uint8)
        _save(self.path, np.hstack([part for column in self._columns for part in (column, gap)][:-1]))
