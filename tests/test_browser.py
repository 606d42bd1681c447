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


def test_the_app_decodes_filtered_video_and_an_emotion_click_changes_it(tmp_path):
    y4m = tmp_path / "face.y4m"
    sink = open_sink(str(y4m), (640, 480), 30.0)
    still = demo_frame(0)  # a still face: any change in the output is the filter's
    for i in range(30):
        sink.write(Frame(still, i, Fraction(i, 30), 0.0))
    sink.close()
    script = Path(__file__).with_name("browser_session.py")
    command = f"ip link set lo up && exec {sys.executable} {script} filter {y4m} surprised"
    result = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, timeout=240,
                            cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["status"] == "connected"
    assert seen["decoded_before"] > 30 and seen["decoded_after"] > seen["decoded_before"]
    assert seen["button_active"] is True
    assert seen["face_change"] > 2.0 and seen["face_change"] > 2 * seen["background_change"], seen
    assert "fps" in seen["stats"]


def test_the_calibration_page_guides_a_session_to_a_saved_profile(tmp_path, made_up_clips):
    """/calibrate in the browser, the camera showing a talking face: the page counts down, records,
    shows each take's check, and the profile it builds is saved privately and put to use."""
    y4m = tmp_path / "talking.y4m"
    neutral = next(p for p in made_up_clips if p.stem.endswith("neutral"))
    source = FileSource(str(neutral))
    frames = list(source)
    source.close()
    sink = open_sink(str(y4m), (frames[0].image.shape[1], frames[0].image.shape[0]), 30.0)
    for i, frame in enumerate(frames + frames[::-1]):  # back and forth: the camera's loop has no jump
        sink.write(Frame(frame.image, i, Fraction(i, 30), 0.0))
    sink.close()
    data = tmp_path / "data"
    script = Path(__file__).with_name("browser_session.py")
    command = f"ip link set lo up && exec {sys.executable} {script} calibrate {y4m} browsertest"
    result = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, timeout=240,
                            cwd=Path(__file__).resolve().parents[1],
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "LIVEMOTION_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["final"].startswith("Saved"), seen
    assert any(phase.startswith("Get ready: Look at the camera and talk normally") for phase in seen["phases"]), seen
    assert any("happy" in phase for phase in seen["phases"]), seen
    assert seen["checks"][0] == "got it" and "happy" in seen["checks"][1], seen  # each take was checked
    saved = data / "profiles" / "browsertest.npz"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600


def test_screenshots_of_the_app_obs_source_and_dock_show_live_video(tmp_path):
    """`serve --source` (a y4m of the demo face): the app in server-source mode shows the source in
    "your camera" and the filtered video beside it; the OBS source page shows the filtered video;
    the dock shows the emotion buttons with the active one marked. Screenshots go to a temporary
    folder (never into git): app.png, obs.png, dock.png."""
    y4m = tmp_path / "face.y4m"
    sink = open_sink(str(y4m), (640, 480), 30.0)
    for i in range(60):
        sink.write(Frame(demo_frame(i), i, Fraction(i, 30), 0.0))
    sink.close()
    shots = tmp_path / "screenshots"
    shots.mkdir()
    script = Path(__file__).with_name("browser_session.py")
    command = f"ip link set lo up && exec {sys.executable} {script} screenshots {y4m} {shots}"
    result = subprocess.run(["unshare", "-n", "sh", "-c", command], capture_output=True, text=True, timeout=240,
                            cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    for pane in ("app_filtered", "app_local", "obs_filtered"):
        assert seen[pane] is not None and seen[pane] > 40, seen  # a picture, not a black pane
    assert seen["dock_buttons"] == 8 and seen["dock_active"] == "happy", seen
    for name in ("app", "obs", "dock"):
        assert (shots / f"{name}.png").stat().st_size > 10_000
