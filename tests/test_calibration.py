"""The guided calibration session, fed live frames the way the server feeds it (made-up clips as the camera)."""

import itertools
import stat
from fractions import Fraction

import numpy as np
import pytest

from livemotion.engines.mouth import load_mouth_model
from livemotion.errors import InvalidRequest
from livemotion.expression.library import LIBRARY_EMOTIONS
from livemotion.expression.profiles import load_profile, profile_mouth_path
from livemotion.face.tracking import FaceTracker
from livemotion.io.sources import FileSource
from livemotion.runtime.calibration import CalibrationSession
from livemotion.training import mouth
from livemotion.types import Frame

FPS = 30


@pytest.fixture(scope="module")
def camera_frames(made_up_clips):
    """Per made-up clip: its frames, as the 'camera' shows them while the person does that emotion."""
    frames = {}
    for path in made_up_clips:
        source = FileSource(str(path))
        frames[path.stem.split("_", 1)[1]] = [frame.image for frame in source]
        source.close()
    return frames


class Camera:
    """Frames on one continuous clock, tracked as a live stream is."""

    def __init__(self, session: CalibrationSession):
        self.session, self.index = session, 0
        self.tracker = FaceTracker(max_faces=1)

    def show(self, images: list[np.ndarray], until_phase: str | None = None, limit: int = 200) -> None:
        """Feed ``images`` (looped) until the session reaches ``until_phase``; None: each image once."""
        for image in itertools.islice(itertools.cycle(images), limit) if until_phase else images:
            frame = Frame(image, self.index, Fraction(self.index, FPS), 0.0)
            self.index += 1
            self.session.feed(frame, self.tracker.track(image))
            if self.session.status()["phase"] == until_phase:
                return
        if until_phase:
            raise AssertionError(f"never reached {until_phase}: {self.session.status()}")


def test_a_guided_session_checks_each_take_and_builds_the_profile(camera_frames, monkeypatch):
    session = CalibrationSession("guided", emotions=("happy", "sad", "angry"), neutral_seconds=0.5,
                                 emotion_seconds=0.5, countdown=0.2)
    camera = Camera(session)
    status = session.status()
    assert status["phase"] == "countdown" and status["step"] == "neutral" and "talk normally" in status["prompt"]
    with pytest.raises(InvalidRequest, match="cannot be skipped"):
        session.skip()
    camera.show(camera_frames["neutral"], "recording")
    assert session.status()["seconds_left"] == pytest.approx(0.5, abs=0.05)
    camera.show(camera_frames["neutral"], "review")
    assert session.status()["check"]["made"]
    session.accept()
    # happy asked, but the person stays neutral: the check says it did not show, and offers a retake
    camera.show(camera_frames["neutral"], "review")
    check = session.status()["check"]
    assert not check["made"] and "retake" in check["message"]
    session.retake()
    camera.show(camera_frames["happy"], "recording")
    camera.show(camera_frames["happy"][:8])  # part of the take: the live reading is up already
    assert session.status()["showing"] > 0.1
    camera.show(camera_frames["happy"], "review")
    check = session.status()["check"]
    assert check["made"] and check["share"] >= 0.15, check
    session.accept()
    session.skip()  # sad: skipped during its countdown
    camera.show(camera_frames["angry"], "review")
    session.accept()
    assert session.status()["phase"] == "complete" and session.status()["kept"] == ["angry", "happy", "neutral"]
    heard, shown = [], []
    monkeypatch.setattr(mouth, "FINE_TUNE_STEPS", 2)
    path = session.finish(lambda step: (heard.append(step), shown.append(session.status()["building"])), mouth=True)
    # the page hears which take is measured while the profile is built, as the command line does
    assert heard == shown == ["measuring your neutral take (1 of 3)", "measuring your happy take (2 of 3)",
                              "measuring your angry take (3 of 3)",
                              "fine-tuning the learned mouth on your takes (about 45 s)"]
    assert load_mouth_model(profile_mouth_path("guided"))[1]["trained_on"]  # fine-tuned on the takes, then they go
    assert session.status()["building"] is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    profile = load_profile("guided")
    assert [e for e, own in zip(LIBRARY_EMOTIONS, profile.measured) if own] == ["happy", "angry"]
    assert session.status()["phase"] == "done" and not session._folder.exists()  # the takes are gone
    assert session.status()["own_mouth"] == list(profile.takes_mouth_emotions())  # where its takes draw the mouth, for the page


def test_answers_out_of_turn_are_refused():
    session = CalibrationSession("early")
    with pytest.raises(InvalidRequest, match="under review"):
        session.accept()
    with pytest.raises(InvalidRequest, match="not complete"):
        session.finish()
    session.close()


@pytest.mark.slow
def test_calibrate_from_a_camera_stand_in_makes_a_profile(tmp_path):
    """`livemotion calibrate --source` on a file standing in for the webcam (no camera here), driven
    through every emotion over the control socket as the calibration page drives it, with a WebRTC
    viewer watching as the page does: a saved profile, in use from then on. The time it takes is
    printed (docs/calibration.md reports it), not asserted: speed belongs to benchmarks."""
    import asyncio
    import json
    import subprocess
    import sys
    import time

    import aiohttp
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from serving import free_port

    from livemotion.contrib.webrtc_probe import wait_for_port
    from livemotion.io.sinks import open_sink
    from livemotion.io.sources import DemoSource
    from livemotion.runtime.session import SessionState
    from livemotion.runtime.settings import last_settings, remember
    from livemotion.server.app import keep_ice_on_loopback

    camera = tmp_path / "camera.mp4"  # the demo face talking, 640x480 like a webcam; the server loops it
    sink = open_sink(str(camera), (640, 480), 30.0)
    for frame in DemoSource((640, 480), frames=90, neutral=True):
        sink.write(frame)
    sink.close()
    port = free_port()
    remember(SessionState(mouth="warp"))  # chosen for an earlier profile
    started = time.monotonic()
    run = subprocess.Popen([sys.executable, "-m", "livemotion", "calibrate", "--profile", "cam", "--source", str(camera),
                            "--no-browser", "--port", str(port)], stderr=subprocess.PIPE, text=True)

    keep_ice_on_loopback()  # this viewer too offers 127.0.0.1 (in a namespace with only `lo` there is nothing else)

    async def drive() -> list[str]:
        await wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer.addTransceiver("video", direction="recvonly")
        viewer.on("track", lambda track: asyncio.ensure_future(_drain(track)))
        await viewer.setLocalDescription(await viewer.createOffer())
        phases: list[str] = []
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/offer", json={"sdp": viewer.localDescription.sdp, "type": "offer",
                                                          "mode": "view"}) as response:
                await viewer.setRemoteDescription(RTCSessionDescription(**await response.json()))
            async with session.ws_connect(f"{url}/ws") as ws:
                async def act(action: str, **extra: object) -> dict:
                    await ws.send_str(json.dumps({"type": "calibrate", "action": action, **extra}))
                    return json.loads((await ws.receive(timeout=120)).data)

                status = await act("start", profile="cam")
                while status["phase"] not in ("done", "error"):
                    assert time.monotonic() < deadline, f"no profile after 300 s: {phases}"
                    if not phases or phases[-1] != status["phase"]:
                        phases.append(status["phase"])
                    if status["phase"] == "review":
                        status = await act("accept")
                    elif status["phase"] == "complete":
                        status = await act("finish")
                    else:
                        await asyncio.sleep(0.25)
                        status = await act("status")
                    assert status["type"] == "calibration", status
                phases.append(status["phase"])
        await viewer.close()
        return phases

    phases = asyncio.run(drive())
    _, stderr = run.communicate(timeout=60)
    seconds = time.monotonic() - started
    assert run.returncode == 0, stderr
    assert phases[-1] == "done" and "recording" in phases and "review" in phases
    assert "saved" in stderr and load_profile("cam").personal
    assert "building your profile: measuring" in stderr  # the build's progress, take by take
    assert last_settings()["profile"] == "cam"  # in use from the next start on
    assert last_settings()["mouth"] == "auto"  # a new profile's takes, drawn as by default
    print(f"calibration from start to a usable profile: {seconds:.1f} s")


async def _drain(track) -> None:
    while True:
        try:
            await track.recv()
        except Exception:
            return
