"""Drives the livemotion web app in headless Chromium, for tests/test_browser.py.

Run inside a network namespace that has only `lo` (the test does that with `unshare -n`):
starts `livemotion serve`, opens a page in Chromium with a fake camera fed from a y4m file and
plays one scenario: ``filter`` (the app: Start, sample the filtered video, click an emotion,
sample again) or ``calibrate`` (the calibration page, every take kept, profile built); prints
one JSON line with what it saw. Driven over the DevTools protocol with aiohttp: no browser download,
no driver.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import aiohttp
import cv2
import numpy as np

from livemotion.contrib.webrtc_probe import wait_for_port

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--window-size=1400,900",
]

# Draws the filtered <video> into a canvas and returns it as a PNG data URL.
GRAB = """(() => { const v = document.getElementById('filtered');
  if (!v.videoWidth) return null;
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext('2d').drawImage(v, 0, 0); return c.toDataURL('image/png'); })()"""
DECODED = "document.getElementById('filtered').getVideoPlaybackQuality().totalVideoFrames"


class DevTools:
    def __init__(self, socket):
        self.socket, self.next_id = socket, 0

    async def loaded(self) -> None:
        """Wait for a livemotion page's document (not the about:blank before it)."""
        for _ in range(100):
            if await self.evaluate("typeof livemotion === 'object' && document.readyState === 'complete'"):
                return
            await asyncio.sleep(0.2)

    async def screenshot(self, path: str) -> None:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": "Page.captureScreenshot"})
        while (shot := json.loads((await self.socket.receive(timeout=30)).data)).get("id") != self.next_id:
            pass
        with open(path, "wb") as out:
            out.write(base64.b64decode(shot["result"]["data"]))

    async def video_frame(self, element: str, wait: float = 30.0) -> np.ndarray | None:
        """The current picture of the <video id=element>, once it shows one (None: it never did)."""
        grab = GRAB.replace("'filtered'", repr(element))
        for _ in range(int(wait / 0.2)):
            data = await self.evaluate(grab)
            if data:
                return decode(data)
            await asyncio.sleep(0.2)
        return None

    async def until(self, expression: str, wait: float = 10.0) -> None:
        """Poll until the page's ``expression`` is true (or ``wait`` seconds pass)."""
        for _ in range(int(wait / 0.2)):
            if await self.evaluate(expression):
                return
            await asyncio.sleep(0.2)

    async def evaluate(self, expression: str):
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": "Runtime.evaluate",
                                     "params": {"expression": expression, "awaitPromise": True, "returnByValue": True}})
        while True:
            message = json.loads((await self.socket.receive(timeout=30)).data)
            if message.get("id") == self.next_id:
                return message["result"]["result"].get("value")


def decode(data_url: str) -> np.ndarray:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


async def grab_average(tools: DevTools, count: int = 5) -> np.ndarray:
    frames = []
    for _ in range(count):
        frames.append(decode(await tools.evaluate(GRAB)).astype(float))
        await asyncio.sleep(0.2)
    return np.mean(frames, axis=0)


@contextlib.asynccontextmanager
async def open_app(y4m: str, path: str, *serve_args: str) -> AsyncIterator[
        tuple[DevTools, aiohttp.ClientWebSocketResponse, subprocess.Popen]]:
    """`livemotion serve` and Chromium (fake camera: ``y4m``) showing the app's page ``path``, loaded."""
    app_port, devtools_port = 8765, 9333
    server = subprocess.Popen([sys.executable, "-m", "livemotion", "serve", "--port", str(app_port), *serve_args],
                              stderr=subprocess.PIPE, text=True)
    profile = tempfile.mkdtemp(prefix="livemotion-chromium-")
    browser = None
    try:
        await wait_for_port(app_port)
        browser = subprocess.Popen(
            [shutil.which("chromium") or "/usr/bin/chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--use-file-for-fake-video-capture={y4m}", f"--remote-debugging-port={devtools_port}",
             f"http://127.0.0.1:{app_port}{path}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await wait_for_port(devtools_port)
        async with aiohttp.ClientSession() as session:
            for _ in range(50):
                async with session.get(f"http://127.0.0.1:{devtools_port}/json/list") as response:
                    pages = [p for p in await response.json() if p.get("type") == "page" and str(app_port) in p["url"]]
                if pages:
                    break
                await asyncio.sleep(0.2)
            async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                tools = DevTools(socket)
                await tools.loaded()
                yield tools, socket, server
    finally:
        if browser is not None:
            browser.kill()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(profile, ignore_errors=True)


async def filter_and_click(y4m: str, emotion: str) -> dict:
    """The app: Start, sample the filtered video, click ``emotion``, sample again."""
    async with open_app(y4m, "/") as (tools, socket, server):
        await tools.evaluate("document.getElementById('start').click()")
        for _ in range(150):
            if (await tools.evaluate(DECODED) or 0) > 30:
                break
            await asyncio.sleep(0.2)
        decoded_before = await tools.evaluate(DECODED) or 0
        if decoded_before == 0:
            page = await tools.evaluate("document.getElementById('status').textContent + ' | ' + "
                                        "document.getElementById('error').textContent")
            server.kill()
            raise RuntimeError(f"no filtered video decoded; page says: {page}; server said: "
                               f"{server.communicate(timeout=10)[1][-2000:]}")
        before = await grab_average(tools)
        await tools.evaluate(f"document.querySelector('button[data-emotion=\"{emotion}\"]').click()")
        await asyncio.sleep(4.0)  # the onset (0.5 s) and a few frames through the network
        after = await grab_average(tools)
        active = await tools.evaluate(f"document.querySelector('button[data-emotion=\"{emotion}\"]')"
                                      ".classList.contains('active')")
        stats = await tools.evaluate("document.getElementById('stats').textContent")
        decoded_after = await tools.evaluate(DECODED)
        # Regions, mimic and head pose: brows from angry, the mouth opening live, the yaw slider turned,
        # and the same camera sent again as the driving face; the server's state answers.
        await tools.evaluate("const brows = document.querySelector('#regions select[data-region=\"brows\"]');"
                             "brows.value = 'angry'; brows.dispatchEvent(new Event('change'))")
        await asyncio.sleep(0.5)
        await tools.evaluate("const mouth = document.querySelector('#regions select[data-region=\"mouth_opening\"]');"
                             "mouth.value = 'live'; mouth.dispatchEvent(new Event('change'));"
                             "const yaw = document.getElementById('yaw'); yaw.value = 7;"
                             "yaw.dispatchEvent(new Event('change'));"
                             "document.getElementById('drive-start').click()")
        await tools.until("state.driving === true")
        mixing = await tools.evaluate("JSON.stringify({regions: state.regions, pose: state.pose, driving: state.driving,"
                                      " shown: document.getElementById('driving').textContent,"
                                      " error: document.getElementById('error').textContent})")
        # Photo to clip: a still of the camera as the photo file, one second of happy back as a video.
        await tools.evaluate(
            "(async () => { const v = document.getElementById('local'), c = document.createElement('canvas');"
            " c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);"
            " const blob = await new Promise((done) => c.toBlob(done, 'image/png'));"
            " const files = new DataTransfer(); files.items.add(new File([blob], 'me.png', { type: 'image/png' }));"
            " document.getElementById('photo').files = files.files;"
            " document.getElementById('animate-emotion').value = 'happy';"
            " document.getElementById('animate-seconds').value = '1';"
            " document.getElementById('animate').click(); })()")
        await tools.until("document.getElementById('clip').readyState >= 1", wait=30.0)
        clip = await tools.evaluate("JSON.stringify({seconds: document.getElementById('clip').duration,"
                                    " status: document.getElementById('make-status').textContent})")
        if os.environ.get("LIVEMOTION_SCREENSHOT"):  # for looking at the app (its newer panels open), not for the test
            await tools.evaluate("document.querySelectorAll('#mixing, #make').forEach((d) => { d.open = true; })")
            await tools.screenshot(os.environ["LIVEMOTION_SCREENSHOT"])
        status = await tools.evaluate("document.getElementById('status').textContent")
    difference = np.abs(after - before).mean(axis=2)
    h, w = difference.shape
    face = difference[int(0.3 * h):int(0.58 * h), int(0.42 * w):int(0.58 * w)].mean()
    background = difference[int(0.05 * h):int(0.25 * h), int(0.75 * w):int(0.97 * w)].mean()
    return {"decoded_before": decoded_before, "decoded_after": decoded_after, "status": status,
            "button_active": active, "face_change": float(face), "background_change": float(background),
            "stats": stats, "size": [w, h], "mixing": json.loads(mixing), "clip": json.loads(clip)}


async def calibrate(y4m: str, profile: str) -> dict:
    """The calibration page: start, keep the neutral take, keep the one emotion's take, build the profile."""
    text = "(id) => document.getElementById(id)"
    seen: dict = {"phases": []}
    async with open_app(y4m, f"/calibrate?profile={profile}&emotions=happy") as (tools, _, _server):
        await tools.evaluate("document.getElementById('start').click()")
        deadline = time.monotonic() + 150  # countdown 3 s, neutral 10 s, countdown 3 s, happy 3 s, then building
        while time.monotonic() < deadline:  # (the build tracks every take again: slower on a busy machine)
            phase = await tools.evaluate(f"({text})('prompt').textContent")
            if not seen["phases"] or seen["phases"][-1] != phase:
                seen["phases"].append(phase)
            if await tools.evaluate(f"!({text})('accept').disabled"):
                seen.setdefault("checks", []).append(await tools.evaluate(f"({text})('check').textContent"))
                await tools.evaluate(f"({text})('accept').click()")
            elif await tools.evaluate(f"!({text})('finish').disabled"):
                await tools.evaluate(f"({text})('finish').click()")
            elif phase.startswith("Saved"):
                break
            await asyncio.sleep(0.1)
        seen["error"] = await tools.evaluate(f"({text})('error').textContent")
        seen["final"] = await tools.evaluate(f"({text})('prompt').textContent")
        # Then the app: the new profile is in use at once, the advice to calibrate is gone, and the
        # filtered face with the profile's happy differs from the shipped library's happy.
        await tools.evaluate("location.href = '/'")
        await asyncio.sleep(0.5)
        await tools.loaded()
        await tools.until(f"state.profile === '{profile}'")
        seen["app_profile"] = await tools.evaluate(f"({text})('profile').value")
        seen["hint_shown"] = await tools.evaluate(f"({text})('hint').classList.contains('shown')")
        offered = f"({text})('take-mouth-choice').style.display !== 'none'"
        seen["take_mouth_offered"] = await tools.evaluate(offered)
        seen["mouth_default"] = await tools.evaluate(f"({text})('take-mouth').value")
        # the takes' mouth in every emotion, chosen from the app
        await tools.evaluate(f"const m = ({text})('take-mouth'); m.value = 'take'; m.dispatchEvent(new Event('change'))")
        await tools.until("state.mouth === 'take'")
        await tools.evaluate(f"({text})('start').click()")
        for _ in range(150):
            if (await tools.evaluate(DECODED) or 0) > 30:
                break
            await asyncio.sleep(0.2)
        await tools.evaluate("document.querySelector('button[data-emotion=\"happy\"]').click()")
        await asyncio.sleep(3.0)
        own = await grab_average(tools)
        await tools.evaluate(f"const p = ({text})('profile'); p.value = ''; p.dispatchEvent(new Event('change'))")
        await tools.until("state.profile === null")
        await asyncio.sleep(3.0)
        shipped = await grab_average(tools)
        seen["hint_after"] = await tools.evaluate(f"({text})('hint').classList.contains('shown')")
        seen["take_mouth_offered_after"] = await tools.evaluate(offered)
        difference = np.abs(own - shipped).mean(axis=2)
        h, w = difference.shape
        seen["profile_vs_shipped"] = float(difference[int(0.3 * h):int(0.7 * h), int(0.35 * w):int(0.65 * w)].mean())
    return seen


async def screenshots(y4m: str, folder: str) -> dict:
    """With `serve --source` (the y4m): the app in server-source mode, the OBS source page and the
    dock, each screenshotted into ``folder``; the mean brightness of every video pane they show."""
    seen: dict = {}
    async with open_app(y4m, "/", "--source", y4m, "--emotion", "happy") as (tools, _, _server):
        await tools.evaluate("document.getElementById('mode').value = 'view'; document.getElementById('start').click()")
        for pane in ("filtered", "local"):
            frame = await tools.video_frame(pane)
            seen[f"app_{pane}"] = None if frame is None else float(frame.mean())
        await asyncio.sleep(1.0)
        await tools.screenshot(f"{folder}/app.png")
        for page in ("obs", "dock"):
            await tools.evaluate(f"location.href = '/{page}'")
            await asyncio.sleep(0.5)
            await tools.loaded()
            if page == "obs":
                frame = await tools.video_frame("filtered")
                seen["obs_filtered"] = None if frame is None else float(frame.mean())
            else:
                seen["dock_buttons"] = await tools.evaluate("document.querySelectorAll('button[data-emotion]').length")
                await asyncio.sleep(1.0)  # the state reply marks the active emotion
                seen["dock_active"] = await tools.evaluate("document.querySelector('button.active')?.dataset.emotion")
            await tools.screenshot(f"{folder}/{page}.png")
    return seen


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    scenarios = {"filter": filter_and_click, "calibrate": calibrate, "screenshots": screenshots}
    print(json.dumps(asyncio.run(scenarios[sys.argv[1]](sys.argv[2], sys.argv[3]))))
