"""Faults around output files, recreated on real files and real processes: nothing is lost, and
every failure is one line with exit status 2 (or 130 for a signal), never a traceback."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from livemotion.io.sinks import open_sink, remove_stale_partials
from livemotion.io.sources import DemoSource


def livemotion(*args: str, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "livemotion", *args], capture_output=True, text=True, timeout=180,
                          **options)  # type: ignore[call-overload]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed run, after checking it is one line, exit 2, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def demo_clip(path: Path, frames: int = 6) -> Path:
    sink = open_sink(str(path), (320, 240), 30.0)
    for frame in DemoSource((320, 240), frames=frames):
        sink.write(frame)
    sink.close()
    return path


def zeroed_media(clip: Path, out: Path) -> Path:
    """``clip`` with its ``mdat`` payload zeroed: the container opens, no frame decodes."""
    data = bytearray(clip.read_bytes())
    at = data.index(b"mdat")
    size = int.from_bytes(data[at - 4:at], "big")
    data[at + 4:at - 4 + size] = bytes(size - 8)
    out.write_bytes(bytes(data))
    return out


def decodable_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_failed_run_leaves_the_earlier_output_byte_identical(tmp_path):
    keep = demo_clip(tmp_path / "keep.mp4")
    before = keep.read_bytes()
    bad = zeroed_media(demo_clip(tmp_path / "source.mp4"), tmp_path / "bad.mp4")
    line = one_line_error(livemotion("run", "--source", str(bad), "--sink", str(keep)))
    assert "no decodable video frames" in line
    assert keep.read_bytes() == before
    assert not list(tmp_path.glob(".*.partial"))


def test_partials_of_processes_killed_hard_are_removed_by_the_next_run(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now belongs to no process
    stale = tmp_path / f".out.mp4.{gone.pid}.partial"
    alive = tmp_path / f".other.mp4.{os.getpid()}.partial"  # a run still writing: left alone
    stale.write_bytes(b"half a video")
    alive.write_bytes(b"being written")
    assert livemotion("run", "--source", "demo:160x120", "--sink", str(tmp_path / "out.mp4"), "--frames", "3",
                      "-q").returncode == 0
    assert not stale.exists() and alive.exists()
    assert remove_stale_partials(tmp_path) == []


def test_a_full_output_is_one_line_and_the_earlier_file_is_kept(tmp_path):
    keep = demo_clip(tmp_path / "keep.mkv")
    before = keep.read_bytes()

    def small_files() -> None:  # every file this process writes is capped at 60 kB, like a tiny disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails (EFBIG) instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    result = livemotion("run", "--source", "demo", "--sink", str(keep), "--frames", "60", "-q",
                        preexec_fn=small_files)
    assert "cannot write" in one_line_error(result)
    assert keep.read_bytes() == before and not list(tmp_path.glob(".*.partial"))


def test_a_full_standard_output_is_one_line():
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "livemotion", "run", "--source", "demo:160x120", "--sink", "-",
                                 "--frames", "30", "-q"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=180)
    assert "no space left" in one_line_error(result)


def test_a_closed_standard_output_is_one_line():
    result = subprocess.run(f"{sys.executable} -m livemotion run --source demo:160x120 --sink - --frames 3 >&-",
                            shell=True, capture_output=True, text=True, timeout=180)
    assert "standard output" in one_line_error(result)


@pytest.mark.parametrize("signals", [["SIGTERM"] * 3, ["SIGINT"] * 2])
def test_repeated_signals_still_end_with_a_playable_file(tmp_path, signals):
    out = tmp_path / "out.mkv"
    run = subprocess.Popen([sys.executable, "-m", "livemotion", "run", "--source", "demo:320x240", "--live",
                            "--sink", str(out), "-q"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.mkv.*.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # some frames written
    for name in signals:
        run.send_signal(getattr(signal, name))
        time.sleep(0.02)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert decodable_frames(out) > 5


@pytest.mark.parametrize("backend", ["auto", "torch", "onnxruntime", "tensorrt"])
def test_an_unknown_device_is_one_line_for_every_backend(tmp_path, backend):
    line = one_line_error(livemotion("run", "--source", "demo:160x120", "--sink", str(tmp_path / "o.mp4"),
                                     "--frames", "2", "--backend", backend, "--device", "banana"))
    assert "unknown device 'banana'" in line and not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("out", ["existing-file", "/proc/demo"])
def test_demo_into_a_folder_it_cannot_make_is_one_line(tmp_path, out):
    if out == "existing-file":
        out = str(tmp_path / "taken")
        Path(out).write_text("not a folder")
    assert "--out" in one_line_error(livemotion("demo", "--out", out, "--frames", "2"))


def test_calibrating_with_nowhere_to_save_is_refused_before_the_work(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")  # unwritable, even for root
    neutral = demo_clip(tmp_path / "me_neutral.mp4", 12)
    started = time.monotonic()
    result = livemotion("calibrate", "--profile", "me", "--neutral", str(neutral), "--clip", f"happy={neutral}",
                        env={**os.environ, "LIVEMOTION_DATA_DIR": str(blocker)})
    assert "cannot save in" in one_line_error(result)
    assert time.monotonic() - started < 30 and "measuring" not in result.stderr


def test_a_truncated_mkv_warns_by_its_duration(tmp_path):
    whole = demo_clip(tmp_path / "whole.mkv", 60)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 10])
    result = livemotion("run", "--source", str(cut), "--sink", str(tmp_path / "out.mp4"), "-q")
    assert result.returncode == 0 and "truncated" in result.stderr and "its duration holds" in result.stderr
