"""Bad inputs to a real server on loopback: each is refused with a reply that says why, before any
slow work, and the server keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
import numpy as np
import pytest
from serving import free_port, serving

from livemotion.expression.library import load_library
from livemotion.expression.profiles import libraries_dir
from livemotion.server import uploads
from livemotion.server.app import ServerConfig


async def post(session: aiohttp.ClientSession, url: str, data: bytes) -> tuple[int, str]:
    async with session.post(url, data=data) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("body", [b"", b"just some text", b"\x89PNG\r\n\x1a\n" + bytes(100), b"ID3\x03" + bytes(500)])
def test_a_style_from_a_body_that_is_no_video_is_a_400_with_the_reason(body):
    async def run(server, url):
        async with aiohttp.ClientSession() as session:
            refused = await post(session, f"{url}/style?name=wonder", body)
            async with session.get(f"{url}/") as response:
                return refused, response.status

    (status, text), page = asyncio.run(serving(ServerConfig(port=free_port()), run))
    assert status == 400 and "Traceback" not in text and len(text) > 20, text
    assert page == 200


def test_a_style_with_nowhere_to_save_it_is_refused_before_the_upload_is_worked_on(tmp_path, monkeypatch):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")  # unwritable, even for root
    monkeypatch.setenv("LIVEMOTION_DATA_DIR", str(blocker))

    async def run(server, url):
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            refused = await post(session, f"{url}/style?name=wonder", bytes(1 << 20))
            return refused, time.monotonic() - started

    (status, text), seconds = asyncio.run(serving(ServerConfig(port=free_port()), run))
    assert status == 400 and "cannot save in" in text and seconds < 5


def test_a_library_outside_the_libraries_folder_is_refused_without_saying_whether_it_exists(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    mine = libraries_dir() / "mine.npz"
    mine.parent.mkdir(parents=True)
    load_library().save(mine)

    async def run(server, url):
        replies = []
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws") as ws:
            for library in (str(fifo), "/etc/passwd.npz", "/no/such/thing.npz", str(mine)):
                await ws.send_str(json.dumps({"type": "set", "library": library}))
                replies.append(json.loads((await ws.receive(timeout=10)).data))
            async with session.get(f"{url}/") as response:
                replies.append(response.status)
        return replies

    fifo_reply, passwd, missing, accepted, page = asyncio.run(serving(ServerConfig(port=free_port()), run))
    for reply in (fifo_reply, passwd, missing):
        assert reply["type"] == "error" and str(libraries_dir()) in reply["error"]
    assert passwd["error"].replace("passwd", "X") == missing["error"].replace("thing", "X")  # existence not told
    assert accepted["type"] == "state" and accepted["library"] == str(mine)
    assert page == 200  # the FIFO never blocked the event loop


def test_a_fifo_or_a_library_with_nan_is_not_a_library(tmp_path):
    from livemotion.errors import InvalidRequest

    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(InvalidRequest, match="not a regular file"):
        load_library(fifo)
    library = load_library()
    broken = tmp_path / "nan.npz"
    geometry = library.geometry.copy()
    geometry[0, 0, 0] = np.nan
    type(library)(**{**library.__dict__, "geometry": geometry}).save(broken)
    with pytest.raises(InvalidRequest, match="NaN or infinite"):
        load_library(broken)
    result = subprocess.run([sys.executable, "-m", "livemotion", "run", "--source", "demo:160x120", "--sink",
                             str(tmp_path / "out.mp4"), "--library", str(broken), "--emotion", "sad"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 2 and "NaN or infinite" in result.stderr and "Traceback" not in result.stderr


def test_uploads_past_the_limit_wait_their_turn_with_a_503(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOADS", 1)

    async def run(server, url):
        server._uploads.limit = 1
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(b"POST /style?name=slow HTTP/1.1\r\nHost: " + url.split("//")[1].encode()
                     + b"\r\nContent-Length: 10000000\r\n\r\n" + bytes(1000))  # a body that keeps coming
        await writer.drain()
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/style?name=other", data=bytes(1000)) as response:
                refused = response.status, response.headers.get("Retry-After")
        writer.close()
        await asyncio.sleep(0.2)
        return refused, server._uploads.active

    (status, retry), active = asyncio.run(serving(ServerConfig(port=free_port()), run))
    assert status == 503 and retry is not None and int(retry) > 0


def test_serve_on_another_loopback_address_answers_there():
    port = free_port()

    async def run(server, url):
        own = f"http://127.0.0.2:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{own}/") as page, session.get(f"{own}/", headers={"Host": "evil.example"}) as evil:
                statuses = page.status, evil.status
            async with session.ws_connect(f"{own}/ws") as ws:
                await ws.send_str('{"type": "get"}')
                reply = json.loads((await ws.receive(timeout=10)).data)["type"]
        return statuses, reply

    try:
        statuses, reply = asyncio.run(serving(ServerConfig(host="127.0.0.2", port=port), run))
    except OSError as error:
        pytest.skip(f"127.0.0.2 cannot be bound here: {error}")
    assert statuses == (200, 403) and reply == "state"


def test_a_lower_case_bearer_scheme_is_accepted():
    async def run(server, url):
        async with aiohttp.ClientSession() as session:
            statuses = []
            for scheme in ("bearer", "BEARER", "Bearer", "Basic"):
                headers = {"Authorization": f"{scheme} {server.config.token}"}
                async with session.get(f"{url}/", headers=headers) as response:
                    statuses.append(response.status)
        return statuses

    assert asyncio.run(serving(ServerConfig(host="0.0.0.0", port=free_port()), run)) == [200, 200, 200, 401]


def test_an_oversized_frame_closes_its_socket_with_1009_and_a_reason():
    async def run(server, url):
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws") as ws:
            await ws.send_str("x" * (3 << 20))
            closing = await ws.receive(timeout=10)
            return ws.close_code, closing.extra

    code, reason = asyncio.run(serving(ServerConfig(port=free_port()), run))
    assert code == 1009 and reason and "MB" in reason


@pytest.mark.parametrize("window", ["inf", "nan", "1e9", "-5"])
def test_a_batch_window_out_of_range_is_refused(window):
    result = subprocess.run([sys.executable, "-m", "livemotion", "serve", "--batch-window", window, "--port", "1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--batch-window" in result.stderr and "Traceback" not in result.stderr


def test_a_calibration_with_nowhere_to_save_is_refused_at_its_start(tmp_path, monkeypatch):
    from livemotion.server.control import ControlError, Controls

    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("LIVEMOTION_DATA_DIR", str(blocker))
    with pytest.raises(ControlError, match="cannot save in"):
        Controls().apply({"type": "calibrate", "action": "start", "profile": "me"})
