"""The control API: JSON messages that change a running stream, validated against a schema.

    {"type": "set", "emotion": "happy", "intensity": 0.8}         emotion and intensity
    {"type": "set", "aus": {"12": 0.6, "R14": 0.9}}                 explicit Action Units (override the preset)
    {"type": "set", "schedule": "0:neutral,2:happy,4:sad"}          emotions over time, from now (null clears)
    {"type": "set", "bypass": true}                                 pass frames through unedited
    {"type": "set", "active": false}                                stop editing (true: edit again)
    {"type": "set", "profile": "me"}                                take the emotions from a calibration profile
    {"type": "set", "library": "lib.npz"}                           ... or from a library file (null: the shipped one)
    {"type": "set", "preset": "calm"}                               a named preset (its emotion, intensity, AUs)
    {"type": "set", "pose": {"yaw": 10, "pitch": 0, "roll": 0, "face_camera": 0.5}}   turn the head (degrees)
    {"type": "set", "regions": {"brows": "angry", "mouth_corners": "live", "eyes": "drive"}}  what drives each
                                                                    region: edit, live, drive, manual, EMOTION[@I]
    {"type": "set", "opening": 0.1}                                 the mouth's opening where its source is manual
    {"type": "preset", "action": "save"|"delete", "name": "calm"}   keep the current expression under a name
    {"type": "reset_neutral"}                                       forget the learned neutral face
    {"type": "calibrate", "action": "start", "profile": "me"}       guided calibration (page: /calibrate); then
    {"type": "calibrate", "action": "accept"|"retake"|"skip"|"status"|"cancel"|"finish"}
    {"type": "subscribe", "stats": true}                            stats once a second ({"type": "stats", ...})
    {"type": "dismiss", "hint": "calibrate"}                        stop advising to calibrate (remembered)
    {"type": "get"}                                                 the current state

Every message gets one reply: ``{"type": "state", ..., "profiles": [names], "presets": [names],
"styles": [names], "driving": bool, "calibration_hint": bool}`` (driving: a driving face is
connected, ``POST /offer`` mode "drive"; calibration_hint: no profile is in use and the user has
not dismissed the advice to make one)
or ``{"type": "error", "error": "..."}``.
A bad message changes nothing. ``Controls`` applies messages to every stream it serves.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import InvalidRequest, LivemotionError
from ..expression.au import AU_NUMBERS, EMOTION_AUS
from ..expression.controller import DriveSource, FittedLibrary, Schedule
from ..expression.library import LIBRARY_EMOTIONS, ExpressionLibrary
from ..expression.profiles import libraries_dir, list_profiles, profiles_dir, resolve_library
from ..expression.styles import list_styles
from ..io.files import writable_folder
from ..runtime import settings
from ..runtime.calibration import CalibrationSession
from ..runtime.pipeline import StreamControl
from ..runtime.session import EXPRESSION_KEYS, SESSION_KEYS, SessionState, value_schemas
from ..types import Frame

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 4096

SCHEMA = {
    "oneOf": [
        {  # the session's own keys (``runtime.session.SessionState``), or a preset's name
            "type": "object",
            "properties": {"type": {"const": "set"}, **value_schemas(), "preset": {"type": "string", "maxLength": 40}},
            "required": ["type"],
            "additionalProperties": False,
        },
        {"type": "object", "properties": {"type": {"const": "reset_neutral"}}, "required": ["type"],
         "additionalProperties": False},
        {"type": "object", "properties": {"type": {"const": "subscribe"}, "stats": {"type": "boolean"}},
         "required": ["type", "stats"], "additionalProperties": False},
        {"type": "object", "properties": {"type": {"const": "get"}}, "required": ["type"], "additionalProperties": False},
        {"type": "object", "properties": {
            "type": {"const": "calibrate"},
            "action": {"enum": ["start", "accept", "retake", "skip", "status", "cancel", "finish"]},
            "profile": {"type": "string", "maxLength": 40},
            "emotions": {"type": "array", "items": {"enum": list(LIBRARY_EMOTIONS)}, "uniqueItems": True, "maxItems": 7},
            "force": {"type": "boolean"}},
         "required": ["type", "action"], "additionalProperties": False},
        {"type": "object", "properties": {"type": {"const": "preset"}, "action": {"enum": ["save", "delete"]},
                                          "name": {"type": "string", "maxLength": 40}},
         "required": ["type", "action", "name"], "additionalProperties": False},
        {"type": "object", "properties": {"type": {"const": "dismiss"}, "hint": {"enum": ["calibrate"]}},
         "required": ["type", "hint"], "additionalProperties": False},
    ]
}
_TYPES = ("set", "reset_neutral", "subscribe", "get", "calibrate", "preset", "dismiss")


class ControlError(InvalidRequest):
    """A message that cannot be applied; the text is sent back to the client."""


def _refuse_constant(name: str) -> None:
    raise ControlError(f"{name} is not a number this API accepts: use finite numbers")


def parse_message(text: str | bytes) -> dict[str, Any]:
    """The message as a dict, or ``ControlError`` saying exactly what is wrong with it."""
    try:
        return _parse(text)
    except RecursionError:  # deeply nested JSON, in the decoder or in the schema's error message
        raise ControlError("not a message this API accepts: nested too deeply") from None


def _parse(text: str | bytes) -> dict[str, Any]:
    if len(text) > MAX_MESSAGE_BYTES:
        raise ControlError(f"message too large ({len(text)} bytes; the limit is {MAX_MESSAGE_BYTES})")
    try:
        message = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ControlError(f"not JSON: {error}") from None
    if not isinstance(message, dict) or message.get("type") not in _TYPES:
        kind = message.get("type") if isinstance(message, dict) else None
        raise ControlError(f"unknown message type {kind!r}: use one of {', '.join(_TYPES)}")
    branch = SCHEMA["oneOf"][_TYPES.index(message["type"])]
    errors = sorted(jsonschema.Draft202012Validator(branch).iter_errors(message), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(p) for p in errors[0].path) or "message"
        raise ControlError(f"invalid {message['type']} message: {where}: {errors[0].message}")
    if message.get("schedule"):
        try:
            Schedule(message["schedule"])
        except InvalidRequest as error:
            raise ControlError(str(error)) from None
    return message


class Controls:
    """The shared state every stream of a server follows, and the streams it is applied to.

    A stream registers with ``attach(stream)`` and from then on receives every change through
    its ``StreamControl`` methods: a new immutable request, bypass, schedule, or a neutral reset.
    """

    def __init__(self, state: SessionState | None = None, remember: bool = False):
        self.state = state or SessionState()
        self.remember = remember  # keep every change in the user's settings (``runtime.settings``)
        self._streams: list[StreamControl] = []
        self._lock = threading.Lock()
        self._library: ExpressionLibrary = resolve_library(self.state.library, self.state.profile)
        self._start_library = Path(self.state.library).expanduser().resolve() if self.state.library else None
        self.calibration: CalibrationSession | None = None
        self._fitted_library: FittedLibrary | None = None  # the library fitted to the AUs, for ``shown_aus``
        self._bypass_before_calibration = False
        self.driver: DriveSource | None = None  # the driving face (mimic) every stream reads, if one is connected
        self.calibration_progress: Callable[[str], None] | None = None  # hears a profile's build, take by take
        self.calibration_mouth = False  # a calibration also fine-tunes the learned mouth (`calibrate --mouth`)

    @property
    def library(self) -> ExpressionLibrary:
        """The library every stream uses now (with the stored styles)."""
        return self._library

    def attach(self, stream: StreamControl) -> None:
        """Serve ``stream``: it gets the current state, library and driver now and every change from here on."""
        with self._lock:
            self._streams.append(stream)
            self._push(stream, restart_schedule=True)
            stream.set_library(self._library)
            stream.set_driver(self.driver)

    def set_driver(self, driver: DriveSource | None) -> None:
        """Every stream's regions whose source is "drive" follow ``driver`` from the next frame on."""
        with self._lock:
            self.driver = driver
            for stream in self._streams:
                stream.set_driver(driver)

    def drop_driver(self, driver: DriveSource) -> None:
        """``driver`` went away: no driving face, unless a newer one has taken its place."""
        if self.driver is driver:
            self.set_driver(None)

    def detach(self, stream: StreamControl) -> None:
        """Stop serving ``stream``."""
        with self._lock:
            self._streams = [s for s in self._streams if s is not stream]

    def apply(self, message: dict[str, Any]) -> dict[str, Any]:
        """Apply a message that ``parse_message`` accepted; returns the reply (the new state).
        Whatever the message names that cannot be used (a missing profile or preset, a calibration
        answer out of turn) is refused as a ``ControlError`` before anything changes."""
        with self._lock:
            try:
                return self._apply(message)
            except ControlError:
                raise
            except LivemotionError as error:  # a missing profile or preset, a folder that cannot be written
                raise ControlError(str(error)) from None

    def _apply(self, message: dict[str, Any]) -> dict[str, Any]:
        kind = message["type"]
        if kind == "set" and "preset" in message:  # a preset is the set message it was saved as
            message = {**settings.preset(message["preset"]), **{k: v for k, v in message.items() if k != "preset"}}
        if kind == "set":
            changes = {key: message[key] for key in SESSION_KEYS if key in message}
            choosing = "library" in message or "profile" in message
            library = self._library
            if message.get("library"):
                self._check_library_place(message["library"])
            if choosing:  # one replaces the other
                changes["library"], changes["profile"] = message.get("library"), message.get("profile")
                library = resolve_library(changes["library"], changes["profile"])
            if any(key in message for key in EXPRESSION_KEYS) and "active" not in message:
                changes["active"] = True  # choosing an expression turns editing on
            state = self.state.changed(changes)
            try:
                self._check_names(state, library)
            except InvalidRequest:
                if choosing:
                    raise
                library = resolve_library(state.library, state.profile)  # with the styles made since
                self._check_names(state, library)
            choosing = choosing or library is not self._library
            self.state, self._library = state, library
            for stream in self._streams:
                self._push(stream, restart_schedule="schedule" in message)
                if choosing:
                    stream.set_library(self._library)
            if self.remember:
                settings.remember(self.state)
        elif kind == "reset_neutral":
            for stream in self._streams:
                stream.reset_neutral()
        elif kind == "calibrate":
            return self._calibrate(message)
        elif kind == "dismiss":
            settings.dismiss_hint(message["hint"])
        elif kind == "preset":
            if message["action"] == "save":
                settings.save_preset(message["name"], self.state)
            else:
                settings.delete_preset(message["name"])
        return self.reply()

    def _check_library_place(self, library: str) -> None:
        """``ControlError`` unless ``library`` is the one the server started with or a file in the user's
        libraries folder. Said before the path is looked at, so a reply never tells whether some
        other file on this machine exists."""
        path = Path(library).expanduser().resolve()
        if path == self._start_library or path.parent == libraries_dir().resolve():
            return
        raise ControlError(f"libraries are taken from {libraries_dir()} (or the one livemotion serve was started "
                           f"with): copy {Path(library).name} there and name it")

    def reply(self) -> dict[str, Any]:
        """The state message, with the AU values the current request shows (``shown_aus``: the
        emotion's fitted AUs at its intensity, explicit AUs over them), for sliders to follow."""
        target = self.state.request().target(self._fitted(self._library))
        shown = target.aus.max(axis=(0, 2)) if self.state.active else None
        aus = {} if shown is None else {str(n): round(float(shown[i]), 2) for i, n in enumerate(AU_NUMBERS)
                                        if n in EMOTION_AUS}
        return {"type": "state", **self.state.values(), "profiles": [info.name for info in list_profiles()],
                "presets": sorted(settings.presets()), "styles": [style.name for style in list_styles()],
                "shown_aus": aus, "driving": self.driver is not None,
                "take_mouth_available": self._library.keeps_mouth_frames,
                "calibration_hint": self.state.profile is None and not settings.hint_dismissed("calibrate")}

    def _check_names(self, state: SessionState, library: ExpressionLibrary) -> None:
        """``InvalidRequest`` unless every emotion ``state`` names (its own, its regions', its
        schedule's) is one of ``library``'s emotions or styles."""
        state.request().target(self._fitted(library))
        if state.schedule:
            Schedule(state.schedule).check(self._fitted(library))

    def _fitted(self, library: ExpressionLibrary) -> FittedLibrary:
        if self._fitted_library is None or self._fitted_library.library is not library:
            self._fitted_library = FittedLibrary.fit(library)
        return self._fitted_library

    def restore(self, skip: set[str] | frozenset[str] = frozenset()) -> None:
        """Apply the user's last settings (less the ``skip`` keys, chosen anew); settings that no
        longer apply (a deleted profile, a damaged file) are skipped with a warning."""
        saved = {key: value for key, value in settings.last_settings().items() if key not in skip}
        for attempt in (saved, {k: v for k, v in saved.items() if k not in ("library", "profile")}):
            if not attempt:
                return
            try:
                self.apply(parse_message(json.dumps({"type": "set", **attempt})))
                return
            except ControlError as error:
                log.warning("not restoring %s from %s: %s", ", ".join(attempt), settings.config_dir() / "settings.json",
                            error)

    # ---- guided calibration: every stream's camera frames feed the session -------------------
    def feed_calibration(self, frame: Frame, track: object) -> None:
        """Give a running calibration one camera frame and its track."""
        session = self.calibration
        if session is not None:
            session.feed(frame, track)

    def _calibrate(self, message: dict[str, Any]) -> dict[str, Any]:
        action, session = message["action"], self.calibration
        if action == "start":
            if session is not None:
                raise ControlError("a calibration is running: finish or cancel it first")
            if "profile" not in message:
                raise ControlError("start needs a profile name")
            writable_folder(profiles_dir())  # a minute of takes must not end with nowhere to save them
            emotions = tuple(message.get("emotions") or LIBRARY_EMOTIONS)
            self.calibration = session = CalibrationSession(message["profile"], emotions,
                                                            overwrite=message.get("force", False))
            self._set_bypass_during_calibration(True)  # the preview shows the face as it is
            return session.status()
        if session is None:
            raise ControlError("no calibration is running: start one with "
                               '{"type": "calibrate", "action": "start", "profile": NAME}')
        if action == "finish":
            raise ControlError("finish is answered by the server, which builds the profile off the event loop")
        if action == "cancel":
            session.close()
            self.calibration = None
            self._set_bypass_during_calibration(False)
            return {**session.status(), "phase": "cancelled"}
        if action != "status":
            getattr(session, action)()
        return session.status()

    def finish_calibration(self) -> dict[str, Any]:
        """Build and store the profile (slow: call it off the event loop), then use it."""
        session = self.calibration
        if session is None:
            raise ControlError("no calibration is running")
        try:
            session.finish(self.calibration_progress, mouth=self.calibration_mouth)
        except InvalidRequest as error:
            raise ControlError(str(error)) from None
        with self._lock:
            self.calibration = None
            self._set_bypass_during_calibration(False)
        # in use at once, its mouth drawn as a new profile's is by default (the choice is about its takes)
        self.apply({"type": "set", "profile": session.profile, "mouth": SessionState().mouth})
        return session.status()

    def _set_bypass_during_calibration(self, on: bool) -> None:
        if on:
            self._bypass_before_calibration = self.state.bypass
        bypass = True if on else self._bypass_before_calibration
        self.state = replace(self.state, bypass=bypass)
        for stream in self._streams:
            stream.set_bypass(bypass)

    def _push(self, stream: StreamControl, restart_schedule: bool) -> None:
        stream.set_request(self.state.request())
        stream.set_bypass(self.state.bypass)
        stream.set_takes_mouth(self.state.mouth)
        if restart_schedule:
            stream.set_schedule(Schedule(self.state.schedule) if self.state.schedule else None)
