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
from ..face.canonical import canonical_landmarks, inner_lip_gap, to_image
from ..face.smoothing import CausalWindow, Transition
from ..types import FaceTrack
from . import au
from .library import SHADING_REGIONS, ExpressionLibrary, load_library
from .pose import MAX_TURN, PoseEdit, turned_points
from .regions import (
    LANDMARK_REGIONS,
    REGIONS,
    RegionSource,
    check_emotion_name,
    check_mix,
    edited_landmarks,
    landmark_region,
    parse_source,
    shading_owner,
)

# A typical calm face, in the features of ``au.features`` (canonical units). Medians over the
# calm stretches of three people in LivePortrait's MIT-licensed driving clips; the person's own
# baseline is learned from there, within ``_IDENTITY_RANGE`` (how much faces differ at rest).
_TYPICAL_NEUTRAL = np.array([0.34, 0.25, 0.335, 0.09, -0.027, -0.57, -0.61, -0.22, 0.01, 0.40, -0.50, -0.28])
_IDENTITY_RANGE = np.array([0.15, 0.12, 0.04, 0.04, 0.03, 0.06, 0.07, 0.06, 0.04, 0.06, 0.10, 0.10])
_EMOTION_ROWS = np.array([au.AU_NUMBERS.index(n) for n in au.EMOTION_AUS])
_RIDGE = 0.05  # prefers the smallest set of AUs that explains the face
_MAX_READING = 1.5  # AU readings are capped here: beyond it the fields' linear model no longer holds
# A 10th-90th percentile spread of the inner-lip gap this wide (IODs) over the last second is full
# speech (``MouthPosture``); syllables open the mouth by about this much.
_FULL_SPEECH_SPREAD = 0.15
_MIN_SPEAKING_SPAN = 0.05  # IODs: a speaking range never taken as narrower, so a still mouth is not "talking"
_FIELDS_REFRESH = 15  # frames between re-fitting the AU fields to the face's geometry
_FADE_START = 0.5  # tracking confidence below which the edit has faded out completely
# How much of a mouth held open above rest is a grin's (the smile's reading, AU12), not speech's:
# none up to _GRIN_FROM, all of it from _GRIN_FROM + _GRIN_SPAN. Talking without a smile reads
# AU12 0.00-0.05 (median over each of 28 clips), up to 0.1 with the lips wide apart.
_GRIN_FROM, _GRIN_SPAN = 0.15, 0.15
_AU12 = au.AU_NUMBERS.index(12)
MAX_OPENING = 0.3  # largest manual change of the mouth opening, interocular distances (a wide-open mouth)


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
        """Forget what was learned: start again from the prior calm face."""
        self.features = self._prior.copy()
        self.frames_learned = 0
        self._previous: np.ndarray | None = None

    def observe(self, features: np.ndarray) -> None:
        """Learn from one frame's ``features`` (2, features) if the face is still."""
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
    out[_EMOTION_ROWS] = np.minimum(fit, _MAX_READING).reshape(-1, 2)
    return out


@dataclass(frozen=True)
class DriveReading:
    """The driving face now (mimic, ``drive.Driver``), each against the driver's own neutral."""

    motion: np.ndarray  # (NUM_LANDMARKS, 2) canonical landmark motion, the driver's speech taken out
    opening: float  # change of the inner-lip gap, canonical units, speech included
    pose: np.ndarray  # (3,) yaw, pitch, roll change, degrees


@dataclass(frozen=True)
class ExpressionRequest:
    """What the user asked for: an emotion at an intensity, explicit AU values on top, a head turn,
    and what drives each face region (``regions``).

    Immutable: a change is a new request that replaces the old one whole (``dataclasses.replace``),
    so a worker thread never sees a half-updated one. Checked on creation, except that an emotion
    that may be a style's name is looked up in the library when the target is made.
    """

    emotion: str = "neutral"
    intensity: float = 1.0
    aus: Mapping[str, float] = field(default_factory=dict)  # e.g. {"12": 0.6, "R14": 0.9}; override the preset
    active: bool = False  # False: pass the face through untouched (nothing requested yet, or bypass)
    pose: PoseEdit = field(default_factory=PoseEdit)  # turn the head (after the expression)
    regions: Mapping[str, str] = field(default_factory=dict)  # {region: source} (``regions``); absent: "edit"
    opening: float = 0.0  # the mouth opening's change when its source is "manual", interocular distances

    def __post_init__(self) -> None:
        check_emotion_name(self.emotion)
        object.__setattr__(self, "regions", MappingProxyType(check_mix(self.regions)))
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
        if not -MAX_OPENING <= self.opening <= MAX_OPENING:
            raise InvalidRequest(f"opening must be between -{MAX_OPENING} and {MAX_OPENING} interocular distances, "
                                 f"got {self.opening}")

    def source_of(self, region: str) -> RegionSource:
        """What drives ``region`` (``regions.RegionSource``); absent from ``regions``: the edit."""
        return parse_source(region, self.regions.get(region, "edit"))

    @property
    def live(self) -> frozenset[str]:
        """The regions kept exactly as the live face has them."""
        return frozenset(region for region, source in self.regions.items() if source == "live")

    def target(self, fitted: FittedLibrary) -> ExpressionTarget:
        """What each region shows (see ``ExpressionTarget``); ``InvalidRequest`` for an emotion the
        library does not know (a style that was never made)."""
        count = len(fitted.library.emotions)

        def shown(emotion: str, intensity: float, sliders: bool) -> tuple[np.ndarray, np.ndarray]:
            """(AU intensities (len(AU_NUMBERS), 2), library emotion weights (E,)) of ``emotion``,
            the request's AU sliders over it when ``sliders``."""
            weights, aus = np.zeros(count), np.zeros((len(au.AU_NUMBERS), 2))
            if emotion != "neutral":
                row = fitted.library.emotion_index(emotion)
                weights[row] = intensity
                aus = intensity * fitted.aus[row]
            return (au.au_vector(dict(self.aus), base=aus) if sliders else aus), weights

        strength, aus, emotions = [], [], []
        for region in LANDMARK_REGIONS:
            source = self.source_of(region)
            if source.kind == "emotion":
                region_aus, weights = shown(source.emotion, source.intensity, False)
            elif source.kind == "edit":
                region_aus, weights = shown(self.emotion, self.intensity, True)
            elif source.kind == "manual":
                region_aus, weights = shown("neutral", 0.0, True)
            else:  # live: nothing; drive: the own expression neutralised, the driver's motion added in ``plan``
                region_aus, weights = shown("neutral", 0.0, False)
            strength.append(0.0 if source.kind == "live" else 1.0)
            aus.append(region_aus)
            emotions.append(weights)
        mouth = self.source_of("mouth_opening")
        if mouth.kind == "emotion":
            mouth_emotions = shown(mouth.emotion, mouth.intensity, False)[1]
        elif mouth.kind == "edit":
            mouth_emotions = shown(self.emotion, self.intensity, True)[1]
        else:
            mouth_emotions = np.zeros(count)
        turned = self.source_of("head_pose").kind in ("edit", "manual")
        return ExpressionTarget(
            shown=np.array(strength), aus=np.array(aus), emotions=np.array(emotions), mouth_emotions=mouth_emotions,
            posture=float(mouth.kind in ("edit", "emotion")),
            manual_opening=self.opening if mouth.kind == "manual" else 0.0,
            pose=self.pose.vector() if turned else np.zeros(4))


@dataclass(frozen=True)
class ExpressionTarget:
    """An expression to show, per face region. ``L`` = len(LANDMARK_REGIONS), ``E`` = the library's
    emotions (styles included)."""

    shown: np.ndarray  # (L,) 0..1 how much each landmark region shows its source (0: kept live)
    aus: np.ndarray  # (L, len(AU_NUMBERS), 2) the AU intensities each region shows
    emotions: np.ndarray  # (L, E) the library emotions each region shows (their detail and shading)
    mouth_emotions: np.ndarray  # (E,) the library emotions whose mouth posture and interior the opening shows
    posture: float  # 0..1 share of those emotions' mouth posture applied (0: the opening is live, driven or manual)
    manual_opening: float  # change of the mouth's opening where its source is "manual", IODs
    pose: np.ndarray  # (4,) yaw, pitch, roll (degrees), face_camera (0..1): ``PoseEdit.vector``

    def packed(self) -> np.ndarray:
        """One vector, so that a change of request unfolds as one transition (``Transition``)."""
        return np.concatenate([self.shown, self.aus.ravel(), self.emotions.ravel(), self.mouth_emotions,
                               [self.posture, self.manual_opening], self.pose])

    @classmethod
    def unpacked(cls, vector: np.ndarray, emotions: int) -> ExpressionTarget:
        """The target ``packed`` made, for a library of ``emotions`` rows."""
        regions = len(LANDMARK_REGIONS)
        sizes = np.cumsum([regions, regions * len(au.AU_NUMBERS) * 2, regions * emotions, emotions, 2])
        shown, aus, weights, mouth, (posture, manual), pose = np.split(vector, sizes)
        return cls(shown, aus.reshape(regions, -1, 2), weights.reshape(regions, -1), mouth, float(posture),
                   float(manual), pose)


@dataclass(frozen=True)
class FittedLibrary:
    """A library's emotions in the controller's terms, fitted once per library.

    Each emotion's measured landmark motion is split into what the AU fields express (``aus``,
    so that ``target - current`` can neutralise and re-apply it) and what they cannot
    (``detail``, the anatomical rest, added as measured).
    """

    library: ExpressionLibrary
    aus: np.ndarray  # (E, len(AU_NUMBERS), 2)
    detail: np.ndarray  # (E, NUM_LANDMARKS, 2) canonical units
    regions: np.ndarray  # (NUM_LANDMARKS,) each landmark's face region (``regions.landmark_region``)
    lips_apart: np.ndarray  # (NUM_LANDMARKS, 2) canonical motion per unit of the lips' parting

    @classmethod
    def fit(cls, library: ExpressionLibrary) -> FittedLibrary:
        """``library``'s emotions split into AU intensities and detail on its own template."""
        unit_fields = au.fields(library.template)
        neutral = (au.feature_operator() @ library.template.ravel()).reshape(2, -1)
        aus, detail = [], []
        for motion in library.geometry:
            features = (au.feature_operator() @ (library.template + motion).ravel()).reshape(2, -1)
            fitted = np.clip(estimate_aus(features, neutral, unit_fields), 0.0, 1.0)
            aus.append(fitted)
            detail.append(motion - np.einsum("ks,ksnd->nd", fitted, unit_fields))
        return cls(library, np.array(aus), np.array(detail), landmark_region(library.template),
                   au.lips_apart_motion(library.template))


class RequestSource(Protocol):
    """Requests over time, asked once a frame (``Schedule``)."""

    def request_at(self, seconds: float) -> ExpressionRequest:
        """The request in force ``seconds`` after the schedule started."""


class DriveSource(Protocol):
    """A driving face, read once a frame (``drive.Driver``); None until it has a reading."""

    def read(self, seconds: float) -> DriveReading | None:
        """The driving face at media time ``seconds``, or None before it has a reading."""


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

    def check(self, fitted: FittedLibrary) -> None:
        """``InvalidRequest`` when a step names an emotion the library does not know (a style never made)."""
        for _, request in self.steps:
            request.target(fitted)

    def request_at(self, seconds: float) -> ExpressionRequest:
        """The last step at or before ``seconds`` (the first step before it starts)."""
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
        """Forget the mouth's history: its posture and speaking range are learned anew."""
        self._history: deque[tuple[float, float]] = deque()
        self.closed = self.contact
        self.high = self.contact  # the top of the speaking range (90th percentile)

    def __call__(self, gap: float, t: float) -> tuple[float, float]:
        """(posture, speaking 0..1) after seeing ``gap`` at ``t`` seconds."""
        self._history.append((t, gap))
        while self._history and self._history[0][0] < t - self.window:
            self._history.popleft()
        gaps = np.array([g for _, g in self._history])
        low, high = np.percentile(gaps, (10, 90))
        self.closed, self.high = min(self.closed, float(gaps.min())), float(high)
        return float(low), float(np.clip((high - low) / _FULL_SPEECH_SPREAD, 0.0, 1.0))

    def applied_change(self, change: float, gap: float, speaking: float) -> float:
        """How much of a posture ``change`` of the opening to apply to a frame whose gap is ``gap``.

        Closing never goes past the lips' contact; opening scales the articulation (``applied_opening``).
        """
        if change < 0:
            return max(change, min(0.0, self.closed - gap))
        return self.applied_opening(change, gap, speaking)

    def applied_opening(self, opening: float, gap: float, speaking: float) -> float:
        """How much of an ``opening`` of the lips (the jaw's, or a parting with the jaw still) to apply
        to a frame whose gap is ``gap``: none where a speaker's lips touch (p, b, m still close), all
        of it from the top of their speaking range up, in proportion between, so that it scales
        their articulation instead of adding a step to it."""
        span = max(self.high - self.closed, _MIN_SPEAKING_SPAN)
        closedness = float(np.clip(1.0 - (gap - self.closed) / span, 0.0, 1.0))
        return opening * (1.0 - closedness * speaking)


@dataclass(frozen=True)
class ExpressionPlan:
    """The edit for one frame: where each landmark should go, and the expression values involved.
    ``E`` = the library's emotions (styles included)."""

    source: np.ndarray  # (NUM_LANDMARKS, 2) tracked landmarks, pixels
    target: np.ndarray  # (NUM_LANDMARKS, 2) edited landmarks, pixels
    current: np.ndarray  # (len(AU_NUMBERS), 2) AU intensities the face shows now
    change: np.ndarray  # (len(LANDMARK_REGIONS), len(AU_NUMBERS), 2) applied change of the emotion AUs, per region
    emotions: np.ndarray  # (E,) the strongest use of each library emotion (for its mouth interior and exemplar)
    shading: np.ndarray  # (E, len(SHADING_REGIONS)) weight of each emotion's shading in each shading region
    lip_gap_change: float  # change of the inner-lip gap, canonical units (posture and parting; articulation kept)
    pose: np.ndarray = field(default_factory=lambda: np.zeros(4))  # applied head turn (``PoseEdit.vector``)

    @classmethod
    def unchanged(cls, source: np.ndarray, current: np.ndarray, emotions: int) -> ExpressionPlan:
        """The plan that leaves the face as it is (editing off)."""
        return cls(source, source, current, np.zeros((len(LANDMARK_REGIONS), *current.shape)), np.zeros(emotions),
                   np.zeros((emotions, len(SHADING_REGIONS))), 0.0)

    @property
    def is_identity(self) -> bool:
        """True when nothing moves and nothing is shaded: the frame passes through as it is."""
        return np.array_equal(self.source, self.target) and not np.any(self.shading)


@dataclass(frozen=True)
class FaceReading:
    """What the face shows in one frame (``ExpressionController._read``)."""

    canonical: np.ndarray  # (NUM_LANDMARKS, 2) landmarks in the canonical face frame
    unit_fields: np.ndarray  # (len(AU_NUMBERS), 2, NUM_LANDMARKS, 2) each AU half's motion on this face
    current: np.ndarray  # (len(AU_NUMBERS), 2) AU intensities shown, smoothed, above the noise floor
    gap: float  # the inner-lip gap, canonical units
    posture: float  # the mouth's slow posture (``MouthPosture``): its least open of the last second
    speaking: float  # 0..1 how much the person is talking


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
        """The library the emotions come from now."""
        return self.fitted.library

    def use_library(self, library: ExpressionLibrary) -> None:
        """Take emotions from ``library`` from the next frame on; a calibration profile also says
        what the person's neutral face is."""
        self.fitted = FittedLibrary.fit(library)
        self.baseline.know(au.features(library.template) if library.personal else None)

    def reset(self) -> None:
        """Forget the person: learn their neutral face and mouth anew."""
        self.baseline.reset()
        self.mouth.reset()

    def plan(self, track: FaceTrack, t: float = 0.0, request: ExpressionRequest | None = None,
             drive: DriveReading | None = None) -> ExpressionPlan:
        """The edit for ``track`` at media time ``t`` seconds; ``request`` overrides the controller's
        (schedules); ``drive``: the driving face now, for the regions whose source is "drive".

        Steps: read the face; ease towards the request's target; follow the tracking confidence;
        move each landmark region as its source says; set the mouth's opening and parting with the
        articulation kept; turn the head.
        """
        face = self._read(track, t)
        source = track.landmarks[:, :2]
        request = request or self.request  # read once: another thread may replace it meanwhile
        fitted = self.fitted
        count = len(fitted.library.emotions)
        if not request.active:
            self._gain = 0.0
            return ExpressionPlan.unchanged(source, face.current, count)
        wanted = ExpressionTarget.unpacked(self._transition(request.target(fitted).packed(), t), count)
        self._follow_confidence(track.confidence)
        sources = {region: request.source_of(region).kind for region in REGIONS}
        change, emotions, displacement = self._region_motion(face, wanted, sources, drive)
        lip_gap_change, mouth_motion = self._mouth_motion(face, wanted, sources, drive, request.live)
        pose = self._head_turn(wanted, sources, drive)
        target = turned_points(source + to_image(track, displacement + mouth_motion), track.landmarks, track.rotation,
                               pose)
        mouth = self._gain * wanted.posture * wanted.mouth_emotions
        return ExpressionPlan(source, target, face.current, change, np.maximum(emotions.max(axis=0), mouth),
                              emotions[shading_owner(SHADING_REGIONS)].T, lip_gap_change, pose)

    def _read(self, track: FaceTrack, t: float) -> FaceReading:
        """The AUs the face shows against the person's neutral, and the mouth's posture."""
        canonical = canonical_landmarks(track)
        features = (au.feature_operator() @ canonical.ravel()).reshape(2, -1)  # == au.features(canonical)
        self.baseline.observe(features)
        if self._fields is None or self._frames_since_fields >= _FIELDS_REFRESH:
            self._fields, self._frames_since_fields = au.fields(canonical), 0  # geometry barely changes
        self._frames_since_fields += 1
        reading = self._reading(estimate_aus(features, self.baseline.features, self._fields))
        current = np.maximum(reading - self.noise_floor, 0.0)  # soft threshold: no edits from jitter
        gap = float(inner_lip_gap(canonical))
        posture, speaking = self.mouth(gap, t)
        return FaceReading(canonical, self._fields, current, gap, posture, speaking)

    def _follow_confidence(self, confidence: float) -> None:
        """The edit's strength follows the tracking confidence, at most ``fade_step`` a frame."""
        confident = float(np.clip((confidence - _FADE_START) / (1.0 - _FADE_START), 0.0, 1.0))
        self._gain += float(np.clip(confident - self._gain, -self.fade_step, self.fade_step))

    def _region_motion(self, face: FaceReading, wanted: ExpressionTarget, sources: dict[str, str],
                       drive: DriveReading | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each landmark moved as its own region's source says (the regions partition the mesh).

        Returns the AU change per region (L, len(AU_NUMBERS), 2), the library emotions per region
        (L, E), and the landmarks' canonical motion (NUM_LANDMARKS, 2), the mouth's opening kept.
        """
        fitted, current = self.fitted, face.current
        shown = self._gain * wanted.shown  # (L,)
        change = np.zeros((len(LANDMARK_REGIONS), *current.shape))
        change[:, _EMOTION_ROWS] = shown[:, None, None] * (wanted.aus[:, _EMOTION_ROWS] - current[_EMOTION_ROWS])
        emotions = shown[:, None] * wanted.emotions  # (L, E)
        owner, everyone = fitted.regions, np.arange(len(face.canonical))
        by_region = (np.einsum("rks,ksnd->rnd", change, face.unit_fields)
                     + np.einsum("re,end->rnd", emotions, fitted.detail))  # (L, NUM_LANDMARKS, 2)
        displacement = by_region[owner, everyone]
        driven = np.array([sources[region] == "drive" for region in LANDMARK_REGIONS])
        if drive is not None and driven.any():
            displacement = displacement + (shown * driven)[owner][:, None] * drive.motion
        return change, emotions, au.keep_mouth_opening(displacement, face.canonical)

    def _mouth_motion(self, face: FaceReading, wanted: ExpressionTarget, sources: dict[str, str],
                      drive: DriveReading | None, live: frozenset[str]) -> tuple[float, np.ndarray]:
        """The change of the inner-lip gap (canonical units) and the lips' and jaw's motion
        (NUM_LANDMARKS, 2) that makes it: the posture's opening, and the lips pulled back from
        the teeth beyond what the jaw explains (pressing them is the geometry's)."""
        library = self.library
        grin = float(np.clip((face.current[_AU12].mean() - _GRIN_FROM) / _GRIN_SPAN, 0.0, 1.0))
        opening = self._gain * self._opening_change(sources["mouth_opening"], wanted, drive, face.gap, face.posture,
                                                    face.speaking, grin)
        parting = self._gain * self.mouth.applied_opening(
            wanted.posture * float(wanted.mouth_emotions @ np.maximum(library.parting, 0.0)), face.gap, face.speaking)
        motion = opening * library.speech + parting * self.fitted.lips_apart
        if live:  # never a live region
            motion = motion * edited_landmarks(self.fitted.regions, live - {"mouth_corners"})[:, None]
        return opening + parting, motion

    def _head_turn(self, wanted: ExpressionTarget, sources: dict[str, str], drive: DriveReading | None) -> np.ndarray:
        """The head's turn (``PoseEdit.vector``): the request's, or the driver's within ``MAX_TURN``."""
        pose = self._gain * wanted.pose
        if drive is not None and sources["head_pose"] == "drive":
            pose = pose + self._gain * np.clip(np.append(drive.pose, 0.0), -MAX_TURN, MAX_TURN)
        return pose

    def _opening_change(self, kind: str, wanted: ExpressionTarget, drive: DriveReading | None, gap: float,
                        posture: float, speaking: float, grin: float) -> float:
        """The change of the mouth's opening this frame, canonical units, before the confidence fade.

        An emotion sets the mouth's posture and keeps the speaker's articulation: at rest the lips
        are together; while talking they part more (the library's neutral speakers' posture), and
        the emotion opens them by its own amount from there. A mouth held open above that rest is
        the expression's and closed (so "neutral" closes a grin) as far as the face reads as smiling
        (``grin`` 0..1). Without a smile it is speech: many people talk with their lips apart for
        seconds on end, and closing it would swallow their words. It is never closed then, but it
        counts towards the emotion's own opening (a mouth talking wide open already is as open as
        surprise asks). The syllables themselves (the gap above the posture) grow or shrink as the
        person's speech does in that emotion (``library.speech_scale``: shouted anger, muttered
        sadness), so the lips still close where they close. A driven mouth opens as the driver's
        does against its own rest; a manual one by the asked amount.
        """
        mouth = self.mouth
        if kind == "drive":
            if drive is None:
                return 0.0
            return mouth.closed + drive.opening - gap
        rest = mouth.closed + speaking * max(0.0, self.library.rest_gap - mouth.closed)
        asked = float(wanted.mouth_emotions @ self.library.opening)
        held_open = min(0.0, rest - posture)  # negative: what would close the mouth down to rest
        speech = max(held_open, -max(asked, 0.0))  # of that, only what the emotion's opening covers
        posture_change = grin * held_open + (1.0 - grin) * speech + asked
        louder = float(wanted.mouth_emotions @ (self.library.speech_scale - 1.0)) * max(gap - posture, 0.0)
        return (mouth.applied_change(wanted.posture * posture_change + wanted.manual_opening, gap, speaking)
                + wanted.posture * louder)
