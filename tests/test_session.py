"""The session state: one record, one validator, and the control API's schema derived from it."""

import json
from dataclasses import fields

import pytest

from livemotion.errors import InvalidRequest
from livemotion.runtime.session import EXPRESSION_KEYS, REMEMBERED_KEYS, SESSION_KEYS, SessionState
from livemotion.server.control import SCHEMA, ControlError, parse_message


def test_the_control_apis_set_message_takes_exactly_the_session_keys_and_a_preset():
    set_branch = SCHEMA["oneOf"][0]["properties"]
    assert set(set_branch) == {"type", "preset", *SESSION_KEYS}
    assert SESSION_KEYS == tuple(f.name for f in fields(SessionState))
    for key, value in SessionState(emotion="happy", pose={"yaw": 5.0}, regions={"brows": "live"}).values().items():
        assert parse_message(json.dumps({"type": "set", key: value}))[key] == value
    with pytest.raises(ControlError, match="volume"):
        parse_message(json.dumps({"type": "set", "volume": 3}))


def test_key_groups_say_what_a_preset_keeps_and_what_a_restart_remembers():
    assert set(EXPRESSION_KEYS) == {"emotion", "intensity", "aus", "pose", "regions", "opening"}
    assert set(REMEMBERED_KEYS) == {"emotion", "intensity", "aus", "bypass", "active", "library", "profile", "mouth"}
    assert not {"regions", "pose", "schedule"} & set(REMEMBERED_KEYS)  # a run's mix never hides the next emotion


@pytest.mark.parametrize("values, named", [
    ({"emotion": 5}, "emotion"),
    ({"intensity": "high"}, "intensity"),
    ({"intensity": 1.5}, "intensity"),
    ({"aus": {"25": 0.5}}, "aus"),
    ({"pose": {"yaw": 90}}, "pose.yaw"),
    ({"regions": {"ears": "live"}}, "regions"),
    ({"opening": 0.9}, "opening"),
    ({"schedule": "soon:happy"}, "schedule"),
    ({"mouth": "learned"}, "mouth"),
])
def test_one_validator_names_what_is_wrong(values, named):
    with pytest.raises(InvalidRequest) as refused:
        SessionState.from_values(values)
    assert named.split(".")[0] in str(refused.value) or "entry" in str(refused.value)


def test_a_refused_change_leaves_the_state_as_it_was():
    state = SessionState(emotion="sad", intensity=0.4)
    with pytest.raises(InvalidRequest, match="aus"):
        state.changed({"aus": {"26": 0.5}})  # jaw drop is speech: never an edit
    with pytest.raises(InvalidRequest, match="brows"):
        state.changed({"regions": {"brows": "happy@7"}})  # schema-valid, refused by the request's own check
    with pytest.raises(InvalidRequest, match="not both"):
        state.changed({"library": "x.npz", "profile": "me"})
    assert state == SessionState(emotion="sad", intensity=0.4)
    assert state.changed({"intensity": 0.9}).intensity == 0.9 and state.intensity == 0.4


def test_unknown_keys_in_stored_values_are_ignored():
    assert SessionState.from_values({"emotion": "happy", "camera": {"size": 5}}).emotion == "happy"
