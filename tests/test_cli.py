import subprocess
import sys

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
    assert "demo" in livemotion("--help").stdout or "run" in livemotion("--help").stdout


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
        (["--emotion", "bored"], "invalid choice"),
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
