"""Mimic (ICface's driving): another face's expression, measured against that face's own neutral,
shown on the edited face.

``Driver`` wraps a second source (a webcam, a video file). Each time the editor asks
(``request_at``, the same call a ``Schedule`` answers), it reads the driver's next frame, tracks
it, and measures its landmark motion in the canonical face frame against its own neutral: the
mean of its first ``learn_frames`` frames, then kept fixed (the driving person starts calm, as in
a calibration; a neutral that kept adapting would let a held smile fade into it). The driver's
speech is taken out (the library's speech basis times its change of mouth opening). The request
neutralises the edited face's own expression (its AUs go to 0, ICface's neutralise-then-apply)
and adds the driver's motion; the edited face keeps its own speech: its mouth opening is left
alone (``mouth_posture=False``) and facing inner lips move together.
"""

from __future__ import annotations

import numpy as np

from ..errors import SourceError
from ..face.smoothing import CausalWindow
from ..face.tracking import FaceTracker
from ..io.sources import FrameSource
from ..types import FaceTrack, Frame
from .controller import ExpressionRequest, canonical_landmarks
from .library import inner_lip_gap, load_library


class Driver:
    """The driving face's expression over time, one frame of ``source`` per request.

    File sources loop (a short clip drives a long one); when the driving face is not found, the
    last reading is held, so the edited face does not snap back to itself.
    """

    def __init__(self, source: FrameSource, gain: float = 1.0, learn_frames: int = 15,
                 neutral: FrameSource | None = None):
        self.source, self.gain, self.learn_frames = source, gain, learn_frames
        self._frames = iter(source)
        self._tracker = FaceTracker(max_faces=1)
        self._neutral: list[np.ndarray] = []  # the driver's canonical landmarks over its first frames
        if neutral is not None:  # the driver's neutral from a clip of its own (a recorded driver starts expressive)
            self._learn_from(neutral)
        self._motion = CausalWindow(3)  # landmark jitter is not expression
        self._speech = load_library().speech
        self._request = ExpressionRequest(active=True, mouth_posture=False)

    def _next_frame(self) -> Frame:
        try:
            return next(self._frames)
        except StopIteration:
            self._frames = iter(self.source)  # files loop; a camera that stopped raises below
            try:
                return next(self._frames)
            except StopIteration:
                raise SourceError(f"the driving source {self.source.name} gives no frames") from None

    def request_at(self, seconds: float) -> ExpressionRequest:
        frame = self._next_frame()
        track = self._tracker.track(frame.image)
        if not isinstance(track, FaceTrack):
            return self._request  # the driver looked away: hold the last expression
        canonical = canonical_landmarks(track)
        if len(self._neutral) < self.learn_frames:  # still learning the driver's calm face
            self._neutral.append(canonical)
            return self._request
        neutral = np.mean(self._neutral, axis=0)
        change = canonical - neutral
        change = change - self._speech * float(inner_lip_gap(canonical) - inner_lip_gap(neutral))  # not its speech
        motion = self._motion(self.gain * change)
        self._request = ExpressionRequest("neutral", 1.0, active=True, mouth_posture=False, motion=motion)
        return self._request

    def _learn_from(self, neutral: FrameSource) -> None:
        with FaceTracker(max_faces=1) as tracker:
            for frame in neutral:
                track = tracker.track(frame.image)
                if isinstance(track, FaceTrack):
                    self._neutral.append(canonical_landmarks(track))
        neutral.close()
        if len(self._neutral) < self.learn_frames:
            raise SourceError(f"the driver's neutral clip {neutral.name} shows a face in only {len(self._neutral)} "
                              f"frames; it needs {self.learn_frames}")

    def close(self) -> None:
        self._tracker.close()
        self.source.close()
