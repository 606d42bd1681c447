"""The built wheel is a complete livemotion: installed outside the repository, every backend,
page and recipe works, and built engines go to the user's cache directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from serving import free_port

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("livemotion", "engines", "plugins", "pyproject.toml", "README.md", "LICENSE")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A wheel built from a copy of the sources, installed into a fresh virtual environment.

    Offline: the new environment borrows the dependencies already installed beside this test run
    (a .pth line), and nothing of the repository is on its path.
    """
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in SHIPPED:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--wheel-dir", str(work / "dist"), str(source)], check=True, capture_output=True)
    wheel = next((work / "dist").glob("livemotion-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"livemotion/engines/recipes/warp.toml", "livemotion/plugins/web/index.html",
            "livemotion/plugins/web/livemotion.js", "livemotion/plugins/obs/source.html",
            "livemotion/plugins/obs/dock.html", "livemotion/plugins/web/calibrate.html",
            "livemotion/expression/expressions.npz", "livemotion/engines/mouth.pt",
            "livemotion/engines/mouth-clips.txt"} <= names
    env_dir = work / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    env = {**os.environ, "LIVEMOTION_CACHE_DIR": str(work / "cache"), "PYTHONPATH": ""}
    return env_dir, env


def test_the_wheel_runs_every_backend_outside_the_repository(installed, tmp_path):
    env_dir, env = installed
    where = subprocess.run([env_dir / "bin" / "python", "-c", "import livemotion; print(livemotion.__file__)"],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(env_dir)), where  # the installed copy, not the repository
    for backend in ("torch", "onnxruntime"):  # the shipped mouth generator too, on each
        result = subprocess.run([env_dir / "bin" / "livemotion", "run", "--source", "demo", "--frames", "5",
                                 "--emotion", "happy", "--backend", backend, "--mouth", "learned",
                                 "--sink", f"out-{backend}.mp4"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / f"out-{backend}.mp4").stat().st_size > 1000
    cache = Path(env["LIVEMOTION_CACHE_DIR"])
    assert list(cache.glob("warp-256-*.onnx"))  # the exported engine went to the cache directory
    assert not list((env_dir / "lib").rglob("*.onnx"))  # and never into the installed package




def test_the_wheel_serves_its_pages_and_script(installed, tmp_path):
    env_dir, env = installed
    port = free_port()
    server = subprocess.Popen([env_dir / "bin" / "livemotion", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        statuses: dict[str, int] = {}
        while time.monotonic() < deadline and len(statuses) < 4:
            try:
                for path in ("/", "/obs", "/dock", "/static/livemotion.js"):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                        statuses[path] = response.status
                        assert len(response.read()) > 100
            except (ConnectionError, urllib.error.URLError):
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                time.sleep(0.5)
        assert statuses == {"/": 200, "/obs": 200, "/dock": 200, "/static/livemotion.js": 200}
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
