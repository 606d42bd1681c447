"""Faults in the user's settings and presets, recreated on real files and real processes: a
damaged file never stops livemotion, names the file and the key, and loses nothing else;
two processes saving at once both keep their change."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import pytest

from livemotion.cli import _run_settings, build_parser, main
from livemotion.errors import InvalidRequest
from livemotion.runtime import settings
from livemotion.runtime.session import SessionState
from livemotion.server.control import ControlError, Controls


def write_settings(content: str) -> None:
    path = settings.config_dir() / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    settings._warned.clear()  # each case is a fresh start of livemotion


@pytest.mark.parametrize("content, key", [
    (json.dumps({"emotion": 5, "intensity": 0.4}), "emotion"),
    (json.dumps({"emotion": "sad", "intensity": "high"}), "intensity"),
    (json.dumps({"emotion": "sad", "intensity": 7}), "intensity"),
    (json.dumps({"emotion": "sad", "aus": {"25": 0.5}}), "aus"),
    ('{"emotion": "sad", "intensity": NaN}', "intensity"),
    (json.dumps({"emotion": "sad", "profile": "deleted"}), "profile"),
    (json.dumps({"emotion": "sad", "camera": {"size": 5}}), "camera"),
    ('{"emotion": "sad", "aus": ' + "[" * 100_000 + "]" * 100_000 + "}", "everything"),
])
def test_a_damaged_settings_file_warns_once_naming_file_and_key_and_keeps_the_rest(content, key, caplog):
    write_settings(content)
    with caplog.at_level(logging.WARNING):
        remembered = settings.last_settings()
        settings.last_camera()
        chosen = _run_settings(build_parser().parse_args(["run", "--sink", "out.mp4"]), live=True)
        settings.last_settings()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "settings.json" in warnings[0] and key in warnings[0], warnings
    SessionState.from_values(chosen)  # what a live run starts from is valid
    if key != "everything":
        assert remembered.get("emotion") == "sad" or key == "emotion"  # the other keys survive
        assert key not in remembered


def test_a_live_run_and_the_server_start_from_a_damaged_file(caplog, tmp_path):
    write_settings(json.dumps({"emotion": "surprised", "intensity": "high", "profile": "deleted"}))
    controls = Controls()
    controls.restore()
    assert controls.state.emotion == "surprised" and controls.state.profile is None
    assert main(["run", "--source", "demo:160x120", "--sink", str(tmp_path / "out.mp4"), "--frames", "2", "--live",
                 "-q"]) == 0


def test_damaged_presets_are_refused_with_one_line_and_an_error_reply(capsys):
    path = settings.config_dir() / "presets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"odd": {"emotion": 5}, "list": [1, 2], "fine": {"emotion": "sad"}}))
    for name in ("odd", "list"):
        with pytest.raises(InvalidRequest, match=f"preset '{name}' in .*presets.json is damaged"):
            settings.preset(name)
        assert main(["run", "--source", "demo:160x120", "--sink", "x.mp4", "--preset", name]) == 2
        assert "damaged" in capsys.readouterr().err
        with pytest.raises(ControlError, match="damaged"):
            Controls().apply({"type": "set", "preset": name})
    assert settings.preset("fine") == {"emotion": "sad"}


def test_an_unwritable_config_folder_fails_saving_a_preset_and_changes_nothing(monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the config folder should be")  # unwritable even for root
    monkeypatch.setenv("LIVEMOTION_CONFIG_DIR", str(blocker))
    assert main(["presets", "save", "calm", "--emotion", "happy"]) == 2
    assert "cannot save preset 'calm'" in capsys.readouterr().err
    controls = Controls()
    with pytest.raises(ControlError, match="cannot save preset"):
        controls.apply({"type": "preset", "action": "save", "name": "calm"})
    controls.apply({"type": "set", "emotion": "happy"})  # remembering settings there is only a warning
    assert controls.state.emotion == "happy"


def test_the_config_folder_is_private(tmp_path, monkeypatch):
    settings.save_preset("calm", SessionState(emotion="happy"))
    folder = settings.config_dir()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct((folder / "presets.json").stat().st_mode & 0o777) == "0o600"


def test_two_processes_saving_presets_at_once_keep_every_preset():
    script = textwrap.dedent("""
        import sys
        from livemotion.runtime import settings
        from livemotion.runtime.session import SessionState
        for i in range(60):
            settings.save_preset(f"{sys.argv[1]} {i}", SessionState(emotion="happy"))
    """)
    runs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b", "c")]
    assert [run.wait(timeout=120) for run in runs] == [0, 0, 0]
    assert len(settings.presets()) == 180
