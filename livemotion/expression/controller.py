"""Expression control: what the face shows now, what was asked for, and the change to apply.

``NeutralBaseline`` learns the person's own calm face online; ``estimate_aus`` reads the current
AU intensities off the landmarks relative to it; ``MouthPosture`` splits the mouth opening into
a slow posture and fast articulation (speech). ``ExpressionController.plan`` turns a request
(emotion + intensity, explicit AUs) into target landmarks: on the emotion AUs by ``target -
current`` (ICface's neutralise-then-apply), plus the emotion's anatomical detail measured on real
people (``library``), plus the emotion's mouth posture with the speaker's articulation kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import numpy as np
from scipy.optimize import nnls

from ..errors import InvalidRequest
from ..face.mesh import eye_centres
from ..face.smoothing import CausalWindow, Transition
from ..types import FaceTrack
from . import au
from .library import LIBRARY_EMOTIONS, ExpressionLibrary, inner_lip_gap, load_library
from .library import REGIONS as SHADING_REGIONS
from .pose import PoseEdit, turned_points
from .regions import LANDMARK_REGIONS, check_regions, edited_landmarks, edited_shading, landmark_region

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
    ``know(features)`` starts from a person's calm face measured at calibration instead, and
    keeps the learned one within half that range of it (a camera angle differs, a face does not).
    """

    def __init__(self, slow_rate: float = 0.02, still_threshold: float = 0.02):
        self.slow_rate, self.still_threshold = slow_rate, still_threshold
        self._prior, self._range = np.tile(_TYPICAL_NEUTRAL, (2, 1)), _IDENTITY_RANGE
        self.reset()

    def know(self, features: np.ndarray | None) -> None:
        """Start from this person's own calm face, (2, features) (None: from a typical one).
        Learning starts over only when that changes."""
        prior = np.tile(_TYPICAL_NEUTRAL, (2, 1)) if features is None else np.asarray(features, float)
        if np.array_equal(prior, self._prior):
            return
        self._prior, self._range = prior, _IDENTITY_RANGE if features is None else 0.5 * _IDENTITY_RANGE
        self.reset()

    def reset(self) -> None:
        self.features = self._prior.copy()
        self.frames_learned = 0
        self._previous: np.ndarray | None = None

    def observe(self, features: np.ndarray) -> None:
        previous, self._previous = self._previous, features
        if previous is None or np.abs(features - previous).max() > self.still_threshold:
            return  # moving: an expression or speech in progress, not a resting face
        rate = max(1.0 / (self.frames_learned + 2), self.slow_rate)
        learned = self.features + rate * (features - self.features)
        self.features = np.clip(learned, self._prior - self._range, self._prior + self._range)
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
    mouth_posture: bool = True  # False: leave the mouth's opening as the speaker has it (mimic)
    motion: np.ndarray | None = field(default=None, compare=False)  # (NUM_LANDMARKS, 2) canonical landmark
    # motion to show on top of the AUs: another face's expression (mimic, ``drive.Driver``)
    pose: PoseEdit = field(default_factory=PoseEdit)  # turn the head (after the expression)
    live: frozenset[str] = frozenset()  # ``regions.REGIONS`` kept exactly as the live face has them

    def __post_init__(self) -> None:
        if self.emotion not in au.EMOTIONS:
            raise InvalidRequest(f"unknown emotion {self.emotion!r}: use one of {', '.join(au.EMOTIONS)}")
        object.__setattr__(self, "live", check_regions(self.live))
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

    def target(self, presets: Presets) -> ExpressionTarget:
        """What to show: the emotion's AU intensities (explicit AUs written over them) and its weight."""
        weights = np.zeros(len(LIBRARY_EMOTIONS))
        aus = np.zeros((len(au.AU_NUMBERS), 2))
        if self.emotion != "neutral":
            row = LIBRARY_EMOTIONS.index(self.emotion)
            weights[row] = self.intensity
            aus = self.intensity * presets.aus[row]
        return ExpressionTarget(au.au_vector(dict(self.aus), base=aus), weights, self.pose.vector())


@dataclass(frozen=True)
class ExpressionTarget:
    """An expression to show: AU intensities, how much of each library emotion (its detail, mouth,
    shading), and the head's turn (``PoseEdit.vector``)."""

    aus: np.ndarray  # (len(AU_NUMBERS), 2)
    emotions: np.ndarray  # (len(LIBRARY_EMOTIONS),) 0..1
    pose: np.ndarray  # (4,) yaw, pitch, roll (degrees), face_camera (0..1)

    def packed(self) -> np.ndarray:
        """One vector, so that a change of request unfolds as one transition."""
        return np.concatenate([self.aus.ravel(), self.emotions, self.pose])

    @classmethod
    def unpacked(cls, vector: np.ndarray) -> ExpressionTarget:
        aus_end = len(au.AU_NUMBERS) * 2
        emotions_end = aus_end + len(LIBRARY_EMOTIONS)
        return cls(vector[:aus_end].reshape(-1, 2), vector[aus_end:emotions_end], vector[emotions_end:])


@dataclass(frozen=True)
class Presets:
    """A library's emotions in the controller's terms, fitted once per library.

    Each emotion's measured landmark motion is split into what the AU fields express (``aus``,
    so that ``target - current`` can neutralise and re-apply it) and what they cannot
    (``detail``, the anatomical rest, added as measured).
    """

    library: ExpressionLibrary
    aus: np.ndarray  # (E, len(AU_NUMBERS), 2)
    detail: np.ndarray  # (E, NUM_LANDMARKS, 2) canonical units
    regions: np.ndarray  # (NUM_LANDMARKS,) each landmark's face region (``regions.landmark_region``)

    @classmethod
    def fit(cls, library: ExpressionLibrary) -> Presets:
        unit_fields = au.fields(library.template)
        neutral = (au.feature_operator() @ library.template.ravel()).reshape(2, -1)
        aus, detail = [], []
        for motion in library.geometry:
            features = (au.feature_operator() @ (library.template + motion).ravel()).reshape(2, -1)
            fitted = np.clip(estimate_aus(features, neutral, unit_fields), 0.0, 1.0)
            aus.append(fitted)
            detail.append(motion - np.einsum("ks,ksnd->nd", fitted, unit_fields))
        return cls(library, np.array(aus), np.array(detail), landmark_region(library.template))


class RequestSource(Protocol):
    """Requests over time, asked once a frame: ``Schedule`` (fixed), ``drive.Driver`` (another face)."""

    def request_at(self, seconds: float) -> ExpressionRequest: ...


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


class MouthPosture:
    """Splits the mouth opening into a slow posture (part of the expression) and articulation (speech).

    Over the last ``window`` seconds of the inner-lip gap, the posture is its 10th percentile (the
    mouth at its least open: the library measures postures the same way), the speaking range its
    10th-90th percentile spread, and the lips' contact gap the smallest gap seen (never above
    ``contact``, a typical closed mouth, so that a face that never closed its lips is not taken as
    closed). Syllables come and go 3-8 times a second; a posture stays.
    """

    def __init__(self, window: float = 1.0, contact: float = 0.03):
        self.window, self.contact = window, contact
        self.reset()

    def reset(self) -> None:
        self._history: deque[tuple[float, float]] = deque()
        self.closed = self.contact

    def __call__(self, gap: float, t: float) -> tuple[float, float]:
        """(posture, speaking 0..1) after seeing ``gap`` at ``t`` seconds."""
        self._history.append((t, gap))
        while self._history and self._history[0][0] < t - self.window:
            self._history.popleft()
        gaps = np.array([g for _, g in self._history])
        low, high = np.percentile(gaps, (10, 90))
        self.closed = min(self.closed, float(gaps.min()))
        return float(low), float(np.clip((high - low) / 0.15, 0.0, 1.0))

    def applied_change(self, change: float, gap: float, speaking: float) -> float:
        """How much of a posture ``change`` of the opening to apply to a frame whose gap is ``gap``.

        Closing never goes past the lips' contact; opening is withheld from the moments a speaker
        closes the lips (p, b, m), so those still close.
        """
        if change < 0:
            return max(change, min(0.0, self.closed - gap))
        closedness = float(np.clip(1.0 - (gap - self.closed) / 0.05, 0.0, 1.0))
        return change * (1.0 - closedness * speaking)


@dataclass(frozen=True)
class ExpressionPlan:
    """The edit for one frame: where each landmark should go, and the expression values involved."""

    source: np.ndarray  # (NUM_LANDMARKS, 2) tracked landmarks, pixels
    target: np.ndarray  # (NUM_LANDMARKS, 2) edited landmarks, pixels
    current: np.ndarray  # (len(AU_NUMBERS), 2) AU intensities the face shows now
    change: np.ndarray  # (len(AU_NUMBERS), 2) applied change of the emotion AUs
    emotions: np.ndarray  # (len(LIBRARY_EMOTIONS),) weight of each library emotion's detail and shading
    opening: float  # change of the mouth opening, canonical units (posture; articulation kept)
    pose: np.ndarray = field(default_factory=lambda: np.zeros(4))  # applied head turn (``PoseEdit.vector``)
    shading: np.ndarray | None = None  # (len(library.REGIONS),) 0..1 per shading region (None: all of them)

    @property
    def is_identity(self) -> bool:
        return not (np.any(self.change) or np.any(self.emotions) or self.opening or np.any(self.pose))


class ExpressionController:
    """Per-stream state: neutral baseline, mouth posture, request and smoothing. ``plan(track, t)`` gives the edit.

    Over time: the AU reading is averaged over a causal Gaussian window (``window`` frames), a
    change of request unfolds over ``transition`` seconds along an onset/apex curve, and the edit's
    strength follows the tracking confidence (rate-limited), so it fades rather than snaps.
    ``library`` (default: the one shipped) says what each emotion does.
    """

    def __init__(self, request: ExpressionRequest | None = None, baseline: NeutralBaseline | None = None,
                 noise_floor: float = 0.08, window: int = 10, transition: float = 0.5, fade_step: float = 0.25,
                 library: ExpressionLibrary | None = None):
        self.request = request or ExpressionRequest()
        self.baseline = baseline or NeutralBaseline()
        self.use_library(library or load_library())
        self.mouth = MouthPosture()
        self.noise_floor = noise_floor  # AU readings below this are tracking noise, not expression
        self._reading = CausalWindow(window)
        self._transition = Transition(transition)
        self.fade_step = fade_step  # largest change of the edit's strength per frame (1 = no fading, for stills)
        self._gain = 0.0
        self._fields: np.ndarray | None = None
        self._frames_since_fields = 0

    @property
    def library(self) -> ExpressionLibrary:
        return self.presets.library

    def use_library(self, library: ExpressionLibrary) -> None:
        """Take emotions from ``library`` from the next frame on; a calibration profile also says
        what the person's neutral face is."""
        self.presets = Presets.fit(library)
        self.baseline.know(au.features(library.template) if library.personal else None)

    def reset(self) -> None:
        """Forget the person: learn their neutral face and mouth anew."""
        self.baseline.reset()
        self.mouth.reset()

    def plan(self, track: FaceTrack, t: float = 0.0, request: ExpressionRequest | None = None) -> ExpressionPlan:
        """The edit for ``track`` at media time ``t`` seconds; ``request`` overrides the controller's (schedules)."""
        canonical = canonical_landmarks(track)
        features = (au.feature_operator() @ canonical.ravel()).reshape(2, -1)  # == au.features(canonical)
        self.baseline.observe(features)
        if self._fields is None or self._frames_since_fields >= _FIELDS_REFRESH:
            self._fields, self._frames_since_fields = au.fields(canonical), 0  # geometry barely changes
        self._frames_since_fields += 1
        unit_fields = self._fields
        reading = self._reading(estimate_aus(features, self.baseline.features, unit_fields))
        current = np.maximum(reading - self.noise_floor, 0.0)  # soft threshold: no edits from jitter
        gap = float(inner_lip_gap(canonical))
        posture, speaking = self.mouth(gap, t)
        source = track.landmarks[:, :2]
        request = request or self.request  # read once: another thread may replace it meanwhile
        presets = self.presets
        if not request.active:
            self._gain = 0.0
            return ExpressionPlan(source, source, current, np.zeros_like(current), np.zeros(len(LIBRARY_EMOTIONS)), 0.0)
        wanted = ExpressionTarget.unpacked(self._transition(request.target(presets).packed(), t))
        confident = float(np.clip((track.confidence - _FADE_START) / (1.0 - _FADE_START), 0.0, 1.0))
        self._gain += float(np.clip(confident - self._gain, -self.fade_step, self.fade_step))
        live = request.live
        shown = 0.0 if set(LANDMARK_REGIONS) <= live else self._gain  # the whole face kept live: no expression
        change = np.zeros_like(current)
        change[_EMOTION_ROWS] = shown * (wanted.aus[_EMOTION_ROWS] - current[_EMOTION_ROWS])
        emotions = shown * wanted.emotions
        displacement = np.einsum("ks,ksnd->nd", change, unit_fields) + np.tensordot(emotions, presets.detail, axes=1)
        if request.motion is not None:
            displacement = displacement + self._gain * request.motion
        library = presets.library
        if live:
            displacement = displacement * edited_landmarks(presets.regions, live)[:, None]
        displacement = au.keep_mouth_opening(displacement, canonical)
        # At rest the lips are together; while talking they part more (the library's neutral speakers'
        # posture). Above that the mouth is the expression's: a neutral request closes it, an emotion
        # sets it as measured.
        rest = self.mouth.closed + speaking * max(0.0, library.rest_gap - self.mouth.closed)
        sets_opening = request.mouth_posture and "mouth_opening" not in live
        wanted_change = min(0.0, rest - posture) + float(wanted.emotions @ library.opening) if sets_opening else 0.0
        opening = self._gain * self.mouth.applied_change(wanted_change, gap, speaking)
        speech = library.speech  # how the face moves as the mouth opens: lips and jaw, never a live region
        if live:
            speech = speech * edited_landmarks(presets.regions, live - {"mouth_corners"})[:, None]
        displacement = displacement + opening * speech
        pose = self._gain * wanted.pose if "head_pose" not in live else np.zeros(4)
        target = turned_points(source + to_image(track, displacement), track.landmarks, track.rotation, pose)
        return ExpressionPlan(source, target, current, change, emotions, opening, pose,
                              edited_shading(SHADING_REGIONS, live) if live else None)
