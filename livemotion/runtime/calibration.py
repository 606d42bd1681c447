"""The guided calibration: live frames in, one take per step, checked, then a personal profile out.

``CalibrationSession`` is fed every frame of a live stream (``feed``) and walks through the steps:
talk normally (neutral, ~10 s), then each emotion (~3 s), each after a countdown. Every take is
written to a private temporary folder as a video file, so the profile is built by exactly the same
code as ``livemotion calibrate --neutral CLIP --clip EMOTION=CLIP`` (``expression.profiles``).
After each emotion's take the session checks that the face moved the way that emotion moves a
face (the take's landmarks against the neutral take's, projected on the shipped library's motion
for the emotion) and offers a retake; any emotion can be skipped. The takes are deleted when the
session ends; only the profile is kept.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidRequest
from ..expression.library import LIBRARY_EMOTIONS, load_library
from ..expression.profiles import calibrate_from_clips, check_name, profile_mouth_path, profile_path, save_profile
from ..face.canonical import canonical_landmarks, inner_lip_gap
from ..io.sinks import FrameSink, open_sink
from ..training.mouth import fine_tune_mouth
from ..types import FaceTrack, Frame

MADE_THRESHOLD = 0.15  # share of a typical face's change that counts as "made": a neutral take measures ~1 %,
# a smile made with the mouth corners alone (AU12) ~20 %, a full MEAD expression ~100 %
_MIN_FACE_FRAMES = 10  # the library builder's own minimum per clip

PROMPTS = {"neutral": "Look at the camera and talk normally, as in a call",
           **{e: f"Look {e} while you keep talking" for e in LIBRARY_EMOTIONS}}


@dataclass
class _Take:
    step: str
    path: Path
    sink: FrameSink | None = None
    shapes: list[np.ndarray] | None = None  # canonical landmarks of the frames with a face


class CalibrationSession:
    """One guided calibration. Thread-safe: frames arrive on a worker, actions from the control API.

    Phases of each step: ``countdown`` -> ``recording`` -> ``review`` (``accept``, ``retake`` or
    ``skip``); after the last step ``complete``, then ``finish()`` builds and stores the profile
    (``done``). ``skip`` also works during the countdown; the neutral step cannot be skipped.
    """

    def __init__(self, profile: str, emotions: tuple[str, ...] = LIBRARY_EMOTIONS, neutral_seconds: float = 10.0,
                 emotion_seconds: float = 3.0, countdown: float = 3.0, overwrite: bool = False):
        self.profile = check_name(profile)
        if profile_path(profile).exists() and not overwrite:
            raise InvalidRequest(f"profile {profile!r} exists: choose another name, or replace it")
        unknown = [e for e in emotions if e not in LIBRARY_EMOTIONS]
        if unknown:
            raise InvalidRequest(f"unknown emotion(s) {', '.join(unknown)}: use {', '.join(LIBRARY_EMOTIONS)}")
        self.steps = ("neutral", *emotions)
        self.neutral_seconds, self.emotion_seconds, self.countdown = neutral_seconds, emotion_seconds, countdown
        self.overwrite = overwrite
        self._folder = Path(tempfile.mkdtemp(prefix="livemotion-calibration-"))  # 0700: the user's only
        self._lock = threading.Lock()
        self._library = load_library()
        self._step = 0
        self._phase = "countdown"
        self._phase_start: float | None = None  # media time the phase began (first frame seen in it)
        self._now = 0.0  # the session's clock, seconds: advances with the frames' timestamps
        self._last_pts: float | None = None
        self._take: _Take | None = None
        self._kept: dict[str, _Take] = {}
        self._check: dict[str, Any] | None = None
        self.saved: Path | None = None
        self._own_mouth: tuple[str, ...] = ()  # where the profile's takes draw the mouth by default (``takes_mouth_emotions``)
        self._building = "starting"  # while the profile is built: which take is being measured

    # ---- what the page shows ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Where the session stands, for the page: phase, the current emotion, countdown, each take's check."""
        with self._lock:
            step = self.steps[self._step] if self._step < len(self.steps) else None
            length = self.countdown if self._phase == "countdown" else self._take_seconds(step)
            left = None
            if self._phase in ("countdown", "recording") and self._phase_start is not None:
                left = max(0.0, length - (self._now - self._phase_start))
            take = self._take
            showing = None  # during an emotion's take: how much of it the face shows so far (the live check)
            if self._phase == "recording" and take is not None and take.step != "neutral" and take.shapes:
                showing = self._share_of_typical(take)
            return {"type": "calibration", "profile": self.profile, "phase": self._phase, "step": step,
                    "prompt": PROMPTS.get(step or "", ""), "seconds_left": left, "check": self._check,
                    "showing": showing,
                    "steps": list(self.steps), "index": self._step, "kept": sorted(self._kept),
                    "saved": str(self.saved) if self.saved else None, "own_mouth": list(self._own_mouth),
                    "building": self._building if self._phase == "building" else None}

    # ---- frames ------------------------------------------------------------------------------
    def feed(self, frame: Frame, track: FaceTrack | object | None) -> None:
        """One live frame (the camera's, unedited) and its tracking result."""
        with self._lock:
            pts = float(frame.pts)
            delta = 0.0 if self._last_pts is None else pts - self._last_pts
            self._now += delta if 0.0 <= delta <= 1.0 else 1.0 / 30  # a looping file or a stall: one frame
            self._last_pts = pts
            if self._phase not in ("countdown", "recording"):
                return
            if self._phase_start is None:
                self._phase_start = self._now
            elapsed = self._now - self._phase_start
            if self._phase == "countdown" and elapsed >= self.countdown:
                step = self.steps[self._step]
                self._take = _Take(step, self._folder / f"{step}.mp4", None, [])
                self._phase, self._phase_start, elapsed = "recording", self._now, 0.0
            if self._phase != "recording":
                return
            take = self._take
            assert take is not None and take.shapes is not None
            if take.sink is None:
                height, width = frame.image.shape[:2]
                take.sink = open_sink(str(take.path), (width, height), 30.0)
            take.sink.write(frame)
            if isinstance(track, FaceTrack):
                take.shapes.append(canonical_landmarks(track))
            if elapsed >= self._take_seconds(take.step):
                self._end_take()

    def _take_seconds(self, step: str | None) -> float:
        return self.neutral_seconds if step == "neutral" else self.emotion_seconds

    def _end_take(self) -> None:
        take = self._take
        assert take is not None and take.sink is not None and take.shapes is not None
        take.sink.close()
        take.sink = None
        self._phase, self._phase_start = "review", None
        if len(take.shapes) < _MIN_FACE_FRAMES:
            self._check = {"made": False, "share": None,
                           "message": f"your face was seen in only {len(take.shapes)} frames: retake it facing the camera"}
        elif take.step == "neutral":
            self._check = {"made": True, "share": None, "message": "got it"}
        else:
            share = self._share_of_typical(take)
            made = share >= MADE_THRESHOLD
            self._check = {"made": made, "share": share, "message": (
                f"{take.step}: {share:.0%} of a typical face's change, got it" if made else
                f"{take.step} barely showed ({share:.0%} of a typical face's change): retake it stronger, or skip")}

    def _share_of_typical(self, take: _Take) -> float:
        """How far the take moved from the neutral take along the emotion's typical motion (1 = as much)."""
        neutral = self._kept["neutral"].shapes
        assert neutral is not None and take.shapes is not None
        library = self._library
        typical = library.geometry[library.emotion_index(take.step)]
        rest, shown = np.median(np.stack(neutral), axis=0), np.median(np.stack(take.shapes), axis=0)
        change = shown - rest - library.speech * float(inner_lip_gap(shown) - inner_lip_gap(rest))  # not speech
        return float(np.sum(change * typical) / max(float(np.sum(typical * typical)), 1e-9))

    # ---- the user's answers ------------------------------------------------------------------
    def accept(self) -> None:
        """Keep the take just made and go on to the next emotion."""
        with self._lock:
            self._require("review")
            take = self._take
            assert take is not None and take.shapes is not None
            if len(take.shapes) < _MIN_FACE_FRAMES:  # the profile builder could not use it
                raise InvalidRequest("this take has too few frames with your face: retake it")
            self._kept[take.step] = take
            self._advance()

    def retake(self) -> None:
        """Drop the take just made and record it again."""
        with self._lock:
            self._require("review")
            self._phase, self._phase_start, self._check = "countdown", None, None

    def skip(self) -> None:
        """Skip the current emotion (it comes from the shipped library)."""
        with self._lock:
            if self._phase not in ("countdown", "review"):
                raise InvalidRequest(f"nothing to skip while {self._phase}")
            if self.steps[self._step] == "neutral":
                raise InvalidRequest("the neutral take cannot be skipped: every emotion is measured against it")
            self._advance()

    def _advance(self) -> None:
        self._step += 1
        self._take, self._check, self._phase_start = None, None, None
        self._phase = "countdown" if self._step < len(self.steps) else "complete"

    def _require(self, phase: str) -> None:
        if self._phase != phase:
            raise InvalidRequest(f"that answers a take under review; the session is at {self._phase}")

    def finish(self, progress: Callable[[str], None] | None = None, mouth: bool = False) -> Path:
        """Build the profile from the kept takes and store it (slow: tracks every take again);
        ``progress`` hears each take as it is measured ("measuring your happy take (3 of 5)"), and
        ``status()`` says the same while it runs. ``mouth``: also fine-tune the learned mouth on the
        takes (``training.mouth.fine_tune_mouth``, ~45 s) for ``run --mouth learned`` with the profile."""
        with self._lock:
            if self._phase != "complete":
                raise InvalidRequest(f"the session is not complete yet (at {self._phase})")
            self._phase = "building"
            clips = {step: take.path for step, take in self._kept.items() if step != "neutral"}
        measured, passes = 0, len(clips) + 1  # the neutral take, then each emotion's

        def announce(text: str) -> None:
            with self._lock:
                self._building = text
            if progress is not None:
                progress(text)

        def heard(line: str) -> None:
            nonlocal measured
            measured += 1
            announce(f"measuring your {line.rpartition(': ')[2]} take ({measured} of {passes})")

        try:
            if not clips:
                raise InvalidRequest("every emotion was skipped: a profile needs at least one")
            library = calibrate_from_clips(self._kept["neutral"].path, clips, progress=heard)
            saved = save_profile(self.profile, library, overwrite=self.overwrite)
            if mouth:
                announce("fine-tuning the learned mouth on your takes (about 45 s)")
                fine_tune_mouth([take.path for take in self._kept.values()], profile_mouth_path(self.profile))
        except BaseException:
            with self._lock:
                self._phase = "complete"
            raise
        with self._lock:
            self.saved, self._phase, self._own_mouth = saved, "done", library.takes_mouth_emotions()
        self.close()
        return saved

    def close(self) -> None:
        """End the session: the takes are deleted (only a finished profile is kept)."""
        with self._lock:
            if self._take is not None and self._take.sink is not None:
                self._take.sink.abort()  # an unfinished take is thrown away with the folder
                self._take.sink = None
            shutil.rmtree(self._folder, ignore_errors=True)
