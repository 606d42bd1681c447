"""What the user has set for a session: one typed record, one validator, one list of keys.

``SessionState`` is what the CLI builds from its options, what ``settings.json`` and presets
store, what the control API's ``set`` message changes and the app shows. Each field carries its
JSON schema and the groups it belongs to, so the control API's schema, the remembered keys and
the preset keys are derived from this one place:

- ``EXPRESSION_KEYS``: the expression itself; setting one turns editing on, and a preset keeps them;
- ``REMEMBERED_KEYS``: kept from one live run to the next. Not the region mix or the pose: a mix
  made for one run (``--drive``, ``--pose`` alone) would silently hide the next run's emotion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import jsonschema

from ..errors import InvalidRequest
from ..expression.au import EMOTION_AUS
from ..expression.controller import MAX_OPENING, ExpressionRequest, Schedule
from ..expression.library import TAKES_MOUTH
from ..expression.pose import MAX_TURN, PoseEdit
from ..expression.regions import REGIONS

_AU_KEY = r"^[RL]?(" + "|".join(str(n) for n in EMOTION_AUS) + r")$"


def _field(default: Any, schema: dict[str, Any], *groups: str) -> Any:
    """A dataclass field with its JSON schema and its key groups ("expression", "remembered")."""
    metadata = {"schema": schema, "groups": frozenset(groups)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


_NUMBER_0_1 = {"type": "number", "minimum": 0, "maximum": 1}


@dataclass(frozen=True)
class SessionState:
    """What the user set: the expression, how it is applied, and where the emotions come from.

    Immutable: a change is a new state (``changed``), checked whole before it replaces the old one.
    """

    emotion: str = _field("neutral", {"type": "string", "maxLength": 40}, "expression", "remembered")  # or a style
    intensity: float = _field(1.0, _NUMBER_0_1, "expression", "remembered")
    aus: dict[str, float] = _field({}, {"type": "object", "patternProperties": {_AU_KEY: _NUMBER_0_1},
                                        "additionalProperties": False, "maxProperties": 40},
                                   "expression", "remembered")  # explicit AUs over the emotion's, e.g. {"R12": 0.6}
    schedule: str | None = _field(None, {"type": ["string", "null"], "maxLength": 1000})  # "0:neutral,2:happy"
    bypass: bool = _field(False, {"type": "boolean"}, "remembered")  # frames pass through unedited
    active: bool = _field(False, {"type": "boolean"}, "remembered")  # editing on (choosing an expression turns it on)
    library: str | None = _field(None, {"type": ["string", "null"], "maxLength": 1000, "pattern": "\\.npz$"},
                                 "remembered")  # an expression library file; None: the shipped one
    profile: str | None = _field(None, {"type": ["string", "null"], "maxLength": 40},
                                 "remembered")  # a calibration profile, instead of a library file
    pose: dict[str, float] = _field({}, {"type": "object", "additionalProperties": False, "properties": {
        "yaw": {"type": "number", "minimum": -MAX_TURN, "maximum": MAX_TURN},
        "pitch": {"type": "number", "minimum": -MAX_TURN, "maximum": MAX_TURN},
        "roll": {"type": "number", "minimum": -180, "maximum": 180},
        "face_camera": _NUMBER_0_1}}, "expression")  # ``PoseEdit`` fields, degrees
    regions: dict[str, str] = _field({}, {"type": "object", "propertyNames": {"enum": list(REGIONS)},
                                          "additionalProperties": {"type": "string", "maxLength": 50}},
                                     "expression")  # what drives each face region (``expression.regions``)
    opening: float = _field(0.0, {"type": "number", "minimum": -MAX_OPENING, "maximum": MAX_OPENING},
                            "expression")  # the mouth's opening change where its source is "manual", IODs
    # who draws the mouth (``TAKES_MOUTH``): the person's own takes where their profile keeps them, in
    # the emotions they speak wide ("auto"), in every emotion ("take": stronger emotions, less exact
    # speech), or in none ("warp")
    mouth: str = _field("auto", {"enum": list(TAKES_MOUTH)}, "remembered")

    def request(self) -> ExpressionRequest:
        """The expression request this state asks for (editing off while bypassed)."""
        return ExpressionRequest(self.emotion, self.intensity, self.aus, active=self.active,
                                 pose=PoseEdit(**self.pose), regions=self.regions, opening=self.opening)

    def changed(self, values: Mapping[str, Any]) -> SessionState:
        """A new state with ``values`` (session keys only) over this one, checked whole:
        ``InvalidRequest`` says what is wrong, and nothing changes."""
        check_values(values)
        state = replace(self, **values)
        state.request()  # the request's own checks: speech AUs, region sources, opening
        if state.library and state.profile:
            raise InvalidRequest("choose a library file or a profile, not both")
        return state

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> SessionState:
        """A state from stored or given values (``settings.json``, a preset, the command line)."""
        return cls().changed({key: value for key, value in values.items() if key in SESSION_KEYS})

    def values(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The state as plain JSON values, all keys or just ``keys``."""
        everything = asdict(self)
        return everything if keys is None else {key: everything[key] for key in keys}


def _keys(group: str | None = None) -> tuple[str, ...]:
    return tuple(f.name for f in fields(SessionState) if group is None or group in f.metadata["groups"])


SESSION_KEYS = _keys()
EXPRESSION_KEYS = _keys("expression")
REMEMBERED_KEYS = _keys("remembered")


def value_schemas() -> dict[str, dict[str, Any]]:
    """The JSON schema of each session key (the control API's ``set`` message is built from them)."""
    return {f.name: f.metadata["schema"] for f in fields(SessionState)}


_VALIDATOR = jsonschema.Draft202012Validator({"type": "object", "properties": value_schemas(),
                                              "additionalProperties": False})


def check_values(values: Mapping[str, Any]) -> None:
    """``InvalidRequest`` naming the first key whose value the schema refuses (types, ranges, names),
    or a schedule that does not parse; None when every value may be set."""
    errors = sorted(_VALIDATOR.iter_errors(dict(values)), key=lambda e: list(e.path))
    if errors:
        where = ".".join(str(p) for p in errors[0].path) or "values"
        raise InvalidRequest(f"{where}: {errors[0].message}")
    if values.get("schedule"):
        Schedule(values["schedule"])
