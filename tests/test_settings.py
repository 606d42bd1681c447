"""Settings that persist: the last expression comes back in live runs and serve; named presets."""

import json

import pytest

from livemotion.cli import _run_settings, build_parser, main
from livemotion.runtime import settings
from livemotion.runtime.session import SessionState
from livemotion.server.control import ControlError, Controls


def test_serve_remembers_every_change_and_restores_it():
    first = Controls(remember=True)
    first.apply({"type": "set", "emotion": "sad", "intensity": 0.4})
    first.apply({"type": "set", "bypass": True})
    first.apply({"type": "set", "regions": {"brows": "drive"}, "pose": {"yaw": 5}})
    assert settings.last_settings()["emotion"] == "sad"
    assert "regions" not in settings.last_settings() and "pose" not in settings.last_settings()  # per run only
    second = Controls()
    second.restore()
    assert (second.state.emotion, second.state.intensity, second.state.bypass, second.state.active) == ("sad", 0.4,
                                                                                                       True, True)
    third = Controls()
    third.restore(skip={"emotion", "intensity", "active"})  # chosen anew on the command line
    assert third.state.emotion == "neutral" and third.state.bypass is True


def test_a_damaged_or_stale_settings_file_never_stops_a_start(caplog):
    path = settings.config_dir() / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    controls = Controls()
    controls.restore()
    assert controls.state.emotion == "neutral" and "cannot be read" in caplog.text
    path.write_text(json.dumps({"emotion": "sad", "profile": "deleted_since"}))
    controls.restore()
    assert controls.state.emotion == "sad" and controls.state.profile is None  # what still applies
    assert "profile 'deleted_since' no longer exists" in caplog.text and "settings.json" in caplog.text


def test_presets_from_the_api_and_the_command_line(capsys):
    controls = Controls()
    controls.apply({"type": "set", "emotion": "happy", "intensity": 0.6, "aus": {"6": 0.3}})
    assert "calm smile" in controls.apply({"type": "preset", "action": "save", "name": "calm smile"})["presets"]
    controls.apply({"type": "set", "emotion": "angry"})
    state = controls.apply({"type": "set", "preset": "calm smile"})
    assert (state["emotion"], state["intensity"], state["aus"]) == ("happy", 0.6, {"6": 0.3})
    controls.apply({"type": "set", "emotion": "happy", "regions": {"brows": "angry@0.5", "eyes": "live"}})
    controls.apply({"type": "preset", "action": "save", "name": "mixed"})
    controls.apply({"type": "set", "emotion": "sad", "regions": {}})
    state = controls.apply({"type": "set", "preset": "mixed"})  # a preset keeps the region mix too
    assert (state["emotion"], state["regions"]) == ("happy", {"brows": "angry@0.5", "eyes": "live"})
    with pytest.raises(ControlError, match="no preset 'nope'"):
        controls.apply({"type": "set", "preset": "nope"})
    assert main(["presets", "save", "grim", "--emotion", "sad", "--intensity", "0.8"]) == 0
    assert main(["presets"]) == 0 and "grim" in capsys.readouterr().out
    assert main(["presets", "delete", "grim"]) == 0 and main(["presets", "delete", "grim"]) == 2
    assert main(["presets", "save", "../x"]) == 2


def test_live_runs_start_from_the_last_settings_file_runs_never_do():
    settings.remember(SessionState(emotion="surprised", intensity=0.7, active=True))
    settings.save_preset("grim", SessionState(emotion="sad", intensity=0.5))

    def chosen(*extra, live=True):
        return _run_settings(build_parser().parse_args(["run", "--sink", "out.mp4", *extra]), live)

    assert chosen()["emotion"] == "surprised"
    assert chosen(live=False) == {}  # a file run without an emotion passes the face through
    assert chosen("--fresh") == {}
    assert chosen("--emotion", "happy")["emotion"] == "happy"
    assert chosen("--preset", "grim")["emotion"] == "sad" and chosen("--preset", "grim")["intensity"] == 0.5


def test_the_last_webcam_and_its_options_come_back_unless_fresh():
    from livemotion.cli import _source_choice
    from livemotion.io.sources import CameraOptions

    def choice(*extra):
        return _source_choice(build_parser().parse_args(["run", "--sink", "vcam", *extra]))

    assert choice() == ("demo", CameraOptions())  # nothing remembered yet
    settings.remember_camera({"source": "webcam:1", "size": [1280, 720], "fps": 30.0, "mirror": True})
    settings.remember(SessionState(emotion="sad"))  # other settings are kept beside the camera
    assert choice() == ("webcam:1", CameraOptions((1280, 720), 30.0, True))
    assert choice("--size", "640x480") == ("webcam:1", CameraOptions((640, 480), 30.0, True))
    assert choice("--fresh") == ("demo", CameraOptions())
    assert choice("--source", "webcam:0") == ("webcam:0", CameraOptions())  # another camera: its own options
    assert settings.last_camera()["source"] == "webcam:1" and settings.last_settings()["emotion"] == "sad"
