"""The web app in a real browser: headless Chromium (Debian's package, no download) with a fake
camera fed from a y4m of the demo face, inside a network namespace that has only `lo`."""

import json
import os
import shutil
import stat
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from livemotion.io.demo import demo_frame
from livemotion.io.sinks import open_sink
from livemotion.io.sources import FileSource
from livemotion.types import Frame

CHROMIUM = shutil.which("chromium")


def _can_unshare() -> bool:
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("unshare") is None or not _can_unshare(),
                       reason="cannot create a private network namespace (unshare -n) here"),
]


def _camera_file(path: Path, images: list) -> Path:
    """A y4m the fake camera plays (Chromium loops it)."""
    sink = open_sink(str(path), (images[0].shape[1], images[0].shape[0]), 30.0)
    for i, image in enumerate(images):
        sink.write(Frame(image, i, Fraction(i, 30), 0.0))
    sink.close()
    return path


def _play(scenario: str, *args: object, env: dict | None = None) -> dict:
    """Run one ``browser_session.py`` scenario in a private network namespace; what it saw."""
    script = Path(__file__).with_name("browser_session.py")
    command = f"ip link set lo up && exec {sys.executable} {script} {scenario} {' '.join(map(str, args))}"
    result = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, timeout=240,
                            cwd=Path(__file__).resolve().parents[1],
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_app_decodes_filtered_video_and_an_emotion_click_changes_it(tmp_path):
    y4m = _camera_file(tmp_path / "face.y4m", [demo_frame(0)] * 30)  # a still face: any change is the filter's
    seen = _play("filter", y4m, "surprised")
    assert seen["status"] == "connected"
    assert seen["decoded_before"] > 30 and seen["decoded_after"] > seen["decoded_before"]
    assert seen["button_active"] is True
    assert seen["face_change"] > 2.0 and seen["face_change"] > 2 * seen["background_change"], seen
    assert "fps" in seen["stats"]
    assert seen["mixing"] == {"regions": {"brows": "angry", "mouth_opening": "live"},
                              "pose": {"yaw": 7, "pitch": 0, "roll": 0, "face_camera": 0},
                              "driving": True, "shown": "driving face: connected", "error": ""}
    assert seen["clip"]["status"] == "" and 0.9 <= seen["clip"]["seconds"] <= 1.2  # photo to clip, from the page


def test_the_calibration_page_guides_a_session_to_a_saved_profile(tmp_path, made_up_clips):
    """/calibrate in the browser, the camera showing a talking face: the page counts down, records,
    shows each take's check, and the profile it builds is saved privately and put to use."""
    neutral = next(p for p in made_up_clips if p.stem.endswith("neutral"))
    source = FileSource(str(neutral))
    images = [frame.image for frame in source]
    source.close()
    y4m = _camera_file(tmp_path / "talking.y4m", images + images[::-1])  # back and forth: the loop has no jump
    data = tmp_path / "data"
    seen = _play("calibrate", y4m, "browsertest", env={"LIVEMOTION_DATA_DIR": str(data)})
    assert seen["final"].startswith("Saved"), seen
    assert any(phase.startswith("Get ready: Look at the camera and talk normally") for phase in seen["phases"]), seen
    assert any("happy" in phase for phase in seen["phases"]), seen
    assert seen["checks"][0] == "got it" and "happy" in seen["checks"][1], seen  # each take was checked
    saved = data / "profiles" / "browsertest.npz"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert seen["app_profile"] == "browsertest" and seen["hint_shown"] is False  # in use at once, no advice left
    assert seen["hint_after"] is True  # back on the shipped library, the app advises calibrating again
    # the choice of mouth is offered with the new profile (at "auto", then switched to "take" from the
    # app), not without it
    assert seen["take_mouth_offered"] is True and seen["take_mouth_offered_after"] is False
    assert seen["mouth_default"] == "auto", seen
    assert seen["profile_vs_shipped"] > 1.0, seen  # the person's own happy is not the shipped library's


def test_screenshots_of_the_app_obs_source_and_dock_show_live_video(tmp_path):
    """`serve --source` (a y4m of the demo face): the app in server-source mode shows the source in
    "your camera" and the filtered video beside it; the OBS source page shows the filtered video;
    the dock shows the emotion buttons with the active one marked. Screenshots go to a temporary
    folder (never into git): app.png, obs.png, dock.png."""
    y4m = _camera_file(tmp_path / "face.y4m", [demo_frame(i) for i in range(60)])
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen = _play("screenshots", y4m, shots)
    for pane in ("app_filtered", "app_local", "obs_filtered"):
        assert seen[pane] is not None and seen[pane] > 40, seen  # a picture, not a black pane
    assert seen["dock_buttons"] == 8 and seen["dock_active"] == "happy", seen
    for name in ("app", "obs", "dock"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
