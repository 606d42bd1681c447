import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from livemotion.cli import build_parser


def livemotion(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "livemotion", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_describes_every_option():
    parser = build_parser()
    for action in parser._subparsers._group_actions[0].choices["run"]._actions:
        assert action.help, action.dest
    result = livemotion("run", "--help")
    assert result.returncode == 0
    for option in ("--source", "--sink", "--overlay", "--frames", "--preview", "--max-faces"):
        assert option in result.stdout
    overview = livemotion("--help").stdout
    commands = parser._subparsers._group_actions[0].choices
    assert len(commands) >= 10 and all(name in overview for name in commands)  # every command is listed


def test_run_on_the_demo_writes_video_preview_and_timings(tmp_path):
    result = livemotion("run", "--source", "demo", "--sink", str(tmp_path / "demo.mp4"), "--frames", "8",
                        "--preview", str(tmp_path / "demo.png"), "--overlay")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo.mp4").stat().st_size > 1000
    assert (tmp_path / "demo.png").stat().st_size > 1000
    assert "8 frames" in result.stderr and "fps" in result.stderr
    for stage in ("track", "overlay", "sink", "total"):
        assert stage in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nope.mp4", "--sink", "x.mp4"], "no such file"),
        (["--source", "webcam:9", "--sink", "x.mp4"], "no webcam"),
        (["--source", "demo", "--sink", "/nonexistent-dir/x.mp4"], "does not exist"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    result = livemotion("run", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("livemotion: error:") and message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_option_values_are_rejected_by_the_parser():
    result = livemotion("run", "--sink", "x.mp4", "--frames", "0")
    assert result.returncode == 2 and "must be at least 1" in result.stderr


def test_live_mode_with_an_emotion_schedule(tmp_path):
    result = livemotion("run", "--source", "demo:320x240", "--sink", str(tmp_path / "live.mp4"), "--live",
                        "--frames", "30", "--schedule", "0:neutral,0.5:happy")
    assert result.returncode == 0, result.stderr
    assert "frames out of 30" in result.stderr and "dropped" in result.stderr
    for stage in ("track", "control", "engine", "composite", "sink", "total"):
        assert stage in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--au", "12"], "needs a value"),
        (["--au", "99=0.5"], "unknown action unit"),
        (["--au", "12=1.5"], "between 0 and 1"),
        (["--schedule", "0:bored"], "unknown emotion"),
        (["--emotion", "bored"], "unknown emotion 'bored'"),
        (["--pose", "25,0"], "yaw must be between -20 and 20"),
        (["--pose", "10"], "write YAW,PITCH"),
        (["--keep", "brows,nose"], "unknown face region(s) nose"),
        (["--region", "nose=live"], "unknown face region 'nose'"),
        (["--region", "brows"], "write REGION=SOURCE"),
        (["--region", "brows=happy@2"], "write one of edit, live, drive, manual or an emotion"),
        (["--region", "head_pose=angry"], "an emotion does not turn the head"),
        (["--region", "eyes=grumpy"], "unknown emotion 'grumpy'"),
        (["--opening", "0.5"], "between -0.3 and 0.3"),
    ],
)
def test_bad_expression_options_say_what_is_wrong(args, message):
    result = livemotion("run", "--sink", "x.mp4", *args)
    assert result.returncode == 2 and message in result.stderr


def test_serve_and_build_engine_describe_their_options():
    serve = livemotion("serve", "--help")
    assert serve.returncode == 0
    for option in ("--host", "--port", "--token", "--source", "--stun", "--emotion", "--backend"):
        assert option in serve.stdout
    assert "127.0.0.1" in serve.stdout
    build = livemotion("build-engine", "--help")
    assert build.returncode == 0 and "--fp16" in build.stdout and "--batch" in build.stdout


def test_serve_refuses_a_source_it_cannot_open():
    result = livemotion("serve", "--source", "missing.mp4", "--port", "1")
    assert result.returncode == 2 and "no such file" in result.stderr


# ---- hardening: bad input gets one clear line, nothing is lost ----------------------------------

@pytest.mark.parametrize(
    "args",
    [
        ["run", "--sink", "x.mp4", "--au", "=0.5"],
        ["run", "--sink", "x.mp4", "--au", "X12=0.5"],
        ["run", "--sink", "x.mp4", "--au", "25=0.5"],
        ["run", "--sink", "x.mp4", "--au", "R26=0.5"],
        ["run", "--sink", "x.mp4", "--source", "demo:0x0"],
        ["run", "--sink", "x.mp4", "--source", "demo:100000x100000"],
        ["run", "--sink", "x.mp4", "--preview", "x.txt"],
        ["run", "--sink", "x.mp4", "--source", "."],
        ["run", "--sink", "x.mp4", "--schedule", "0:happy@5"],
        ["run", "--sink", "x.mp4", "--schedule", "-3:happy"],
        ["run", "--sink", "x.mp4", "--schedule", "nan:happy"],
        ["run", "--sink", "x.mp4", "--schedule", "0:happy@inf"],
        ["serve", "--port", "70000"],
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, args):
    result = subprocess.run([sys.executable, "-m", "livemotion", *args], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_speech_aus_are_refused_with_the_reason():
    result = livemotion("run", "--sink", "x.mp4", "--au", "26=0.5")
    assert "speech" in result.stderr and "never changes" in result.stderr


def test_the_sink_may_not_be_the_source(tmp_path, demo_video):
    source = tmp_path / "clip.mp4"
    source.write_bytes(demo_video.read_bytes())
    before = source.read_bytes()
    result = livemotion("run", "--source", str(source), "--sink", str(tmp_path / "." / ".." / tmp_path.name / "clip.mp4"))
    assert result.returncode == 2 and "source file itself" in result.stderr
    assert source.read_bytes() == before


def test_an_unsupported_sink_type_creates_nothing(tmp_path):
    result = livemotion("run", "--source", "demo", "--sink", str(tmp_path / "out.gif"), "--frames", "2")
    assert result.returncode == 2 and list(tmp_path.iterdir()) == []


def test_a_truncated_input_says_how_much_was_read(tmp_path, demo_video):
    data = demo_video.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) * 2 // 3])
    result = livemotion("run", "--source", str(broken), "--sink", str(tmp_path / "out.mp4"), "-q")
    if result.returncode == 2:  # the cut took the index with it: refused as unreadable, also fine
        assert "cannot read" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "truncated or damaged" in result.stderr and "of the 40" in result.stderr


def decodable_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def wait_for_partial(folder: Path, name: str) -> None:
    """Until a run has started writing ``name`` (under its temporary name)."""
    deadline = time.monotonic() + 60
    while not list(folder.glob(f".{name}.*.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGHUP"])
def test_a_signal_ends_a_run_with_a_playable_file(tmp_path, signal_name):
    out = tmp_path / "out.mkv"
    run = subprocess.Popen([sys.executable, "-m", "livemotion", "run", "--source", "demo:320x240", "--live",
                            "--sink", str(out), "-q"], stderr=subprocess.PIPE, text=True)
    wait_for_partial(tmp_path, "out.mkv")
    time.sleep(1.5)  # some frames written
    run.send_signal(getattr(signal, signal_name))
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130 and "Traceback" not in stderr
    assert decodable_frames(out) > 5
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.partial"))


def test_a_run_killed_hard_leaves_the_previous_file_intact(tmp_path):
    out = tmp_path / "out.mp4"
    assert livemotion("run", "--source", "demo:320x240", "--sink", str(out), "--frames", "5").returncode == 0
    before = out.read_bytes()
    run = subprocess.Popen([sys.executable, "-m", "livemotion", "run", "--source", "demo:320x240", "--live",
                            "--sink", str(out), "-q"], stderr=subprocess.DEVNULL)
    wait_for_partial(tmp_path, "out.mp4")
    time.sleep(1.0)
    run.kill()
    run.wait(timeout=30)
    assert out.read_bytes() == before


def test_a_closed_pipe_ends_quietly():
    run = subprocess.Popen([sys.executable, "-m", "livemotion", "run", "--source", "demo:320x240", "--sink", "-",
                            "--frames", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout is not None and run.stderr is not None
    run.stdout.read(200_000)
    run.stdout.close()  # like `| head -c 200000`
    stderr = run.stderr.read().decode()
    assert run.wait(timeout=60) == 0
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
