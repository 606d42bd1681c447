"""Expression control: what the face shows now, what was asked for, and the change to apply.

``NeutralBaseline`` learns the person's own calm face online; ``estimate_aus`` reads the current
AU intensities off the landmarks relative to it; ``ExpressionController.plan`` turns a request
(emotion + intensity, explicit AUs) into target landmarks by ``target - current`` on emotion AUs
only (ICface's neutralise-then-apply). Speech AUs are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy.optimize import nnls

from ..errors import InvalidRequest
from ..face.mesh import eye_centres
from ..face.smoothing import CausalWindow, Transition
from ..types import FaceTrack
from . import au

# A typical calm face, in the features of ``au.features`` (canonical units). Medians over the
# calm stretches of three people in LivePortrait's MIT-licensed driving clips; the person's own
# baseline is learned from there, within ``_IDENTITY_RANGE`` (how much faces differ at rest).
_TYPICAL_NEUTRAL = np.array([0.34, 0.25, 0.335, 0.09, -0.027, -0.57, -0.61, -0.22, 0.01, 0.40, -0.50, -0.28])
_IDENTITY_RANGE = np.array([0.15, 0.12, 0.04, 0.04, 0.03, 0.06, 0.07, 0.06, 0.04, 0.06, 0.10, 0.10])
_EMOTION_ROWS = np.array([au.AU_NUMBERS.index(n) for n in au.EMOTION_AUS])
_RIDGE = 0.05  # prefers the smallest set of AUs that explains the face
_FIELDS_REFRESH = 15  # frames between re-fitting the AU fields to the face's geometry
_FADE_START = 0.5  # tracking confidence below which the edit has faded out completely


def canonical_landmarks(track: FaceTrack) -> np.ndarray:
    """(NUM_LANDMARKS, 2) landmarks in the canonical face frame (see ``au``)."""
    origin = 0.5 * sum(eye_centres(track.landmarks))
    return ((track.landmarks - origin) @ track.rotation / track.interocular)[:, :2]


def to_image(track: FaceTrack, canonical_displacement: np.ndarray) -> np.ndarray:
    """Map (N, 2) canonical displacements onto the live face: (N, 2) pixels, following pose and size."""
    d3 = np.concatenate([canonical_displacement, np.zeros((len(canonical_displacement), 1))], axis=1)
    return (d3 @ track.rotation.T)[:, :2] * track.interocular


class NeutralBaseline:
    """The person's calm face, as expression features, learned online from still, calm frames.

    Starts from a typical calm face; every frame that moves little pulls it closer (a running
    mean at first, then a slow average), but never further from typical than faces differ at
    rest, so a constant smile is not mistaken for someone's neutral. ``reset()`` starts over.
    """

    def __init__(self, slow_rate: float = 0.02, still_threshold: float = 0.02):
        self.slow_rate, self.still_threshold = slow_rate, still_threshold
        self.reset()

    def reset(self) -> None:
        self.features = np.tile(_TYPICAL_NEUTRAL, (2, 1))
        self.frames_learned = 0
        self._previous: np.ndarray | None = None

    def observe(self, features: np.ndarray) -> None:
        previous, self._previous = self._previous, features
        if previous is None or np.abs(features - previous).max() > self.still_threshold:
            return  # moving: an expression or speech in progress, not a resting face
        rate = max(1.0 / (self.frames_learned + 2), self.slow_rate)
        learned = self.features + rate * (features - self.features)
        self.features = np.clip(learned, _TYPICAL_NEUTRAL - _IDENTITY_RANGE, _TYPICAL_NEUTRAL + _IDENTITY_RANGE)
        self.frames_learned += 1


def estimate_aus(features: np.ndarray, neutral: np.ndarray, unit_fields: np.ndarray) -> np.ndarray:
    """Current emotion-AU intensities (len(AU_NUMBERS), 2), 0..1.5, from features vs the neutral ones.

    Features are linear in the landmarks, so each AU half's effect on them is the feature operator
    applied to its unit field; a lightly regularised non-negative least-squares fit recovers the
    intensities. The same fields synthesise the edit, so asking for the current expression
    changes nothing.
    """
    halves = unit_fields[_EMOTION_ROWS].reshape(len(_EMOTION_ROWS) * 2, -1)  # (AU halves, NUM_LANDMARKS * 2)
    gains = au.feature_operator() @ halves.T
    a = np.vstack([gains, _RIDGE * np.eye(halves.shape[0])])
    b = np.concatenate([(features - neutral).ravel(), np.zeros(halves.shape[0])])
    fit, _ = nnls(a, b)
    out = np.zeros((len(au.AU_NUMBERS), 2))
    out[_EMOTION_ROWS] = np.minimum(fit, 1.5).reshape(-1, 2)
    return out


@dataclass(frozen=True)
class ExpressionRequest:
    """What the user asked for: an emotion at an intensity, plus explicit AU values on top.

    Immutable: a change is a new request that replaces the old one whole (``dataclasses.replace``),
    so a worker thread never sees a half-updated one. Checked on creation.
    """

    emotion: str = "neutral"
    intensity: float = 1.0
    aus: Mapping[str, float] = field(default_factory=dict)  # e.g. {"12": 0.6, "R14": 0.9}; override the preset
    active: bool = False  # False: pass the face through untouched (nothing requested yet, or bypass)

    def __post_init__(self) -> None:
        if self.emotion not in au.PRESETS:
            raise InvalidRequest(f"unknown emotion {self.emotion!r}: use one of {', '.join(au.EMOTIONS)}")
        object.__setattr__(self, "aus", MappingProxyType(dict(self.aus)))
        au.au_vector(dict(self.aus))  # validates the AU keys
        for key in self.aus:
            if int(key.lstrip("RL")) in au.SPEECH_AUS:
                raise InvalidRequest(
                    f"AU{key.lstrip('RL')} carries speech (lips part, jaw drop): livemotion never changes it, so the "
                    f"mouth moves exactly as spoken. Emotion AUs: {', '.join(map(str, au.EMOTION_AUS))}")
        for name, value in (("intensity", self.intensity), *((f"AU {key}", v) for key, v in self.aus.items())):
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise InvalidRequest(f"{name} must be between 0 and 1, got {value}")

    def target(self) -> np.ndarray:
        """Target intensities (len(AU_NUMBERS), 2) for every emotion AU."""
        return au.au_vector(dict(self.aus), base=self.intensity * au.au_vector(au.PRESETS[self.emotion]))


class Schedule:
    """Emotions over time, for demos and tests: ``"0:neutral,1.5:happy@0.8,3:sad"`` (seconds:emotion[@intensity])."""

    def __init__(self, text: str):
        self.steps: list[tuple[float, ExpressionRequest]] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            try:
                when, what = item.split(":", 1)
                emotion, _, intensity = what.partition("@")
                request = ExpressionRequest(emotion.strip(), float(intensity) if intensity else 1.0, active=True)
                seconds = float(when)
                if not 0.0 <= seconds < 86_400.0:  # also refuses NaN and infinities
                    raise InvalidRequest(f"time {seconds} must be 0 to 86400 seconds")
                self.steps.append((seconds, request))
            except ValueError as error:
                raise InvalidRequest(f"bad schedule entry {item!r} ({error}): write SECONDS:EMOTION[@INTENSITY], "
                                 "e.g. 0:neutral,2:happy@0.8") from None
        if not self.steps:
            raise InvalidRequest("empty schedule: write SECONDS:EMOTION[@INTENSITY],... e.g. 0:neutral,2:happy@0.8")
        self.steps.sort(key=lambda step: step[0])

    def request_at(self, seconds: float) -> ExpressionRequest:
        current = self.steps[0][1]
        for when, request in self.steps:
            if when <= seconds:
                current = request
        return current

    def target_at(self, seconds: float) -> np.ndarray:
        return self.request_at(seconds).target()


@dataclass(frozen=True)
class ExpressionPlan:
    """The edit for one frame: where each landmark should go, and the AU intensities involved."""

    source: np.ndarray  # (NUM_LANDMARKS, 2) tracked landmarks, pixels
    target: np.ndarray  # (NUM_LANDMARKS, 2) edited landmarks, pixels
    current: np.ndarray  # (len(AU_NUMBERS), 2) AU intensities the face shows now
    change: np.ndarray  # (len(AU_NUMBERS), 2) applied change, zero on speech AUs

    @property
    def is_identity(self) -> bool:
        return not np.any(self.change)


class ExpressionController:
    """Per-stream state: neutral baseline, request and smoothing. ``plan(track, t)`` gives the edit.

    Over time: the AU reading is averaged over a causal Gaussian window (``window`` frames), a
    change of request unfolds over ``transition`` seconds along an onset/apex curve, and the edit's
    strength follows the tracking confidence (rate-limited), so it fades rather than snaps.
    """

    def __init__(self, request: ExpressionRequest | None = None, baseline: NeutralBaseline | None = None,
                 noise_floor: float = 0.08, window: int = 10, transition: float = 0.5, fade_step: float = 0.25):
        self.request = request or ExpressionRequest()
        self.baseline = baseline or NeutralBaseline()
        self.noise_floor = noise_floor  # AU readings below this are tracking noise, not expression
        self._reading = CausalWindow(window)
        self._transition = Transition(transition)
        self.fade_step = fade_step  # largest change of the edit's strength per frame (1 = no fading, for stills)
        self._gain = 0.0
        self._fields: np.ndarray | None = None
        self._frames_since_fields = 0
        au.feature_operator()  # built once (~0.2 s) here rather than on the first live frame

    def wanted(self, current: np.ndarray, target: np.ndarray | None) -> np.ndarray | None:
        """Target AU intensities for this frame, or None to leave the face alone."""
        if target is not None:
            return target
        request = self.request  # read once: another thread may replace it meanwhile
        return request.target() if request.active else None

    def plan(self, track: FaceTrack, t: float = 0.0, target: np.ndarray | None = None) -> ExpressionPlan:
        """The edit for ``track`` at media time ``t`` seconds; ``target`` (len(AU_NUMBERS), 2)
        overrides the request's (schedules)."""
        canonical = canonical_landmarks(track)
        features = (au.feature_operator() @ canonical.ravel()).reshape(2, -1)  # == au.features(canonical)
        self.baseline.observe(features)
        if self._fields is None or self._frames_since_fields >= _FIELDS_REFRESH:
            self._fields, self._frames_since_fields = au.fields(canonical), 0  # geometry barely changes
        self._frames_since_fields += 1
        unit_fields = self._fields
        reading = self._reading(estimate_aus(features, self.baseline.features, unit_fields))
        current = np.maximum(reading - self.noise_floor, 0.0)  # soft threshold: no edits from jitter
        source = track.landmarks[:, :2]
        wanted = self.wanted(current, target)
        if wanted is None:
            self._gain = 0.0
            return ExpressionPlan(source, source, current, np.zeros_like(current))
        wanted = self._transition(wanted, t)
        confident = float(np.clip((track.confidence - _FADE_START) / (1.0 - _FADE_START), 0.0, 1.0))
        self._gain += float(np.clip(confident - self._gain, -self.fade_step, self.fade_step))
        change = np.zeros_like(current)
        change[_EMOTION_ROWS] = self._gain * (wanted[_EMOTION_ROWS] - current[_EMOTION_ROWS])
        displacement = np.einsum("ks,ksnd->nd", change, unit_fields)
        displacement = au.keep_mouth_opening(displacement, canonical)
        return ExpressionPlan(source, source + to_image(track, displacement), current, change)
