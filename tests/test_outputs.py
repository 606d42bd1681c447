"""Virtual camera (against a stand-in device: these machines have no V4L2), control API, server."""

import asyncio
import json
from fractions import Fraction

import aiohttp
import cv2
import numpy as np
import pytest
import pyvirtualcam
from aiohttp import web
from serving import free_port, serving

from livemotion.errors import SinkError
from livemotion.expression.controller import ExpressionController
from livemotion.expression.regions import RegionSource
from livemotion.io.demo import demo_frame
from livemotion.io.vcam import FramePacer, VirtualCameraSink
from livemotion.render.editor import ExpressionEditor
from livemotion.runtime.pipeline import Pipeline
from livemotion.server.app import LivemotionServer, ServerConfig
from livemotion.server.control import ControlError, Controls, parse_message
from livemotion.types import Frame

# ---- virtual camera ------------------------------------------------------------------------------

class StandInCamera:
    """Stands in for pyvirtualcam.Camera (no v4l2loopback here): records what it is sent."""

    native = pyvirtualcam.PixelFormat.I420
    opened: list = []

    def __init__(self, width, height, fps, fmt, device=None):
        self.width, self.height, self.fps, self.fmt, self.device = width, height, fps, fmt, device or "/dev/video10"
        self.native_fmt = self.native
        self.frames = []
        StandInCamera.opened.append(self)

    def send(self, frame):
        self.frames.append(np.array(frame))

    def close(self):
        pass


@pytest.mark.parametrize("native", [pyvirtualcam.PixelFormat.I420, pyvirtualcam.PixelFormat.NV12,
                                    pyvirtualcam.PixelFormat.RGB])
def test_virtual_camera_sends_the_device_native_format(native, monkeypatch):
    monkeypatch.setattr(StandInCamera, "native", native)
    image = demo_frame(3, 320, 240)
    sink = VirtualCameraSink((320, 240), 30.0, camera_factory=StandInCamera, pace=False)
    assert sink.format == native
    sink.write(Frame(image, 0, Fraction(0), 0.0))
    sent = sink.camera.frames[0]
    if native == pyvirtualcam.PixelFormat.RGB:
        assert np.array_equal(sent, image)
        return
    if native == pyvirtualcam.PixelFormat.NV12:
        sent = cv2.cvtColor(sent.reshape(360, 320), cv2.COLOR_YUV2RGB_NV12)
    else:
        sent = cv2.cvtColor(sent.reshape(360, 320), cv2.COLOR_YUV2RGB_I420)
    assert np.abs(sent.astype(int) - image.astype(int)).mean() < 3  # 4:2:0 round trip


def test_virtual_camera_output_is_paced_at_the_source_rate():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = FramePacer(25.0, clock=lambda: now[0], sleep=sleep)
    releases = []
    for arrival in (0.0, 0.001, 0.002, 0.2, 0.201):  # a burst, a gap, another burst
        now[0] = max(now[0], arrival)
        pacer.wait()
        releases.append(now[0])
    assert np.allclose(np.diff(releases), [0.04, 0.04, 0.12, 0.04], atol=1e-9)  # never faster than 25 fps


def test_without_a_device_the_error_says_how_to_create_one():
    # The real pyvirtualcam on this machine, which has no v4l2loopback device.
    with pytest.raises(SinkError) as raised:
        VirtualCameraSink((640, 480), 30.0)
    assert "modprobe v4l2loopback exclusive_caps=1" in str(raised.value)  # the set-up steps are the point here


def test_odd_sizes_are_refused_with_a_reason():
    with pytest.raises(SinkError):
        VirtualCameraSink((641, 480), 30.0, camera_factory=StandInCamera)


# ---- control messages ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[1, 2]", "unknown message type"),
        ('{"type": "explode"}', "unknown message type 'explode'"),
        ('{"type": "set", "emotion": 5}', "emotion: 5 is not of type 'string'"),
        ('{"type": "set", "intensity": 2}', "intensity: 2 is greater than the maximum of 1"),
        ('{"type": "set", "aus": {"12": 0.5, "99": 1}}', "'99' does not match"),
        ('{"type": "set", "schedule": "0:bo red"}', "unknown emotion 'bo red'"),
        ('{"type": "set", "colour": "red"}', "Additional properties are not allowed"),
        ('{"type": "subscribe"}', "'stats' is a required property"),
        ('{"type": "set", "emotion": "' + "x" * 5000 + '"}', "message too large"),
        ('{"type": "set", "pose": {"yaw": 30}}', "pose.yaw: 30 is greater than the maximum of 20"),
        ('{"type": "set", "pose": {"tilt": 3}}', "Additional properties are not allowed"),
        ('{"type": "set", "regions": {"nose": "live"}}', "'nose' is not one of"),
        ('{"type": "set", "opening": 0.5}', "opening: 0.5 is greater than the maximum of 0.3"),
    ],
)
def test_bad_control_messages_say_what_is_wrong(text, message):
    with pytest.raises(ControlError, match=message):
        parse_message(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "set", "emotion": "bored"}', "unknown emotion 'bored'.*`livemotion style` makes a style"),
        ('{"type": "set", "schedule": "0:happy,2:bored"}', "unknown emotion 'bored'"),
        ('{"type": "set", "regions": {"brows": "sideways"}}', "unknown emotion 'sideways'"),
        ('{"type": "set", "regions": {"head_pose": "happy"}}', "an emotion does not turn the head"),
    ],
)
def test_what_the_library_does_not_know_is_refused_and_changes_nothing(text, message):
    """Names that could be a style's pass the schema; the library (with the stored styles) decides."""
    controls = Controls()
    before = controls.state
    with pytest.raises(ControlError, match=message):
        controls.apply(parse_message(text))
    assert controls.state is before


def test_controls_change_every_attached_stream(tracker, torch_backend):
    controls = Controls()
    streams = []
    for _ in range(2):
        editor = ExpressionEditor(torch_backend, ExpressionController())
        pipeline = Pipeline(tracker, editor)
        controls.attach(pipeline)
        streams.append((pipeline, editor))
    before = streams[0][1].controller.request
    reply = controls.apply(parse_message('{"type": "set", "emotion": "sad", "intensity": 0.5}'))
    assert reply["emotion"] == "sad" and reply["active"] is True
    for _, editor in streams:
        assert editor.controller.request.emotion == "sad" and editor.controller.request.intensity == 0.5
    assert before.emotion == "neutral"  # the old request was replaced whole, never changed in place
    controls.apply(parse_message('{"type": "set", "pose": {"yaw": 8, "face_camera": 0.5}, '
                                 '"regions": {"mouth_opening": "live", "brows": "angry@0.5"}}'))
    request = streams[1][1].controller.request
    assert (request.pose.yaw, request.pose.face_camera, request.live) == (8, 0.5, {"mouth_opening"})
    assert request.source_of("brows") == RegionSource("emotion", "angry", 0.5)
    assert request.emotion == "sad"  # a pose or kept regions change nothing else
    controls.apply(parse_message('{"type": "set", "bypass": true}'))
    assert all(p.bypass for p, _ in streams)
    editor = streams[0][1]
    editor.controller.baseline.frames_learned = 50
    controls.apply(parse_message('{"type": "reset_neutral"}'))
    assert editor.controller.baseline.frames_learned == 0


# ---- the server, on loopback ---------------------------------------------------------------------





def test_control_socket_answers_every_message_and_survives_bad_ones():
    async def body(server, url):
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws") as ws:
            replies = []
            for text in ('{"type": "set", "emotion": "happy"}', "garbage", '{"type": "set", "intensity": 9}',
                         "x" * 10_000, '{"type": "get"}'):
                await ws.send_str(text)
                replies.append(json.loads((await ws.receive()).data))
            await ws.send_str('{"type": "subscribe", "stats": true}')
            await ws.receive()
            stats = json.loads((await ws.receive(timeout=3)).data)
        return replies, stats

    replies, stats = asyncio.run(serving(ServerConfig(port=free_port()), body))
    assert [r["type"] for r in replies] == ["state", "error", "error", "error", "state"]
    assert "not JSON" in replies[1]["error"] and "too large" in replies[3]["error"]
    assert replies[4]["emotion"] == "happy" and replies[4]["active"] is True  # bad messages changed nothing
    assert stats["type"] == "stats" and "fps_out" in stats


def test_webrtc_round_trip_changes_the_face_and_not_the_background():
    from livemotion.contrib.webrtc_probe import probe

    frames = [demo_frame(i) for i in range(30)]

    async def body(server, url):
        server.controls.apply({"type": "set", "bypass": True})
        plain = await probe(url, lambda i: frames[i % 30], 40)
        server.controls.apply({"type": "set", "bypass": False, "emotion": "surprised"})
        edited = await probe(url, lambda i: frames[i % 30], 40)
        return plain, edited

    plain, edited = asyncio.run(serving(ServerConfig(port=free_port()), body))
    by_index = {r.index % 30: r.image.astype(int) for r in plain.returned[10:]}
    face, background = [], []
    for r in edited.returned[20:]:  # after the emotion's onset
        reference = by_index.get(r.index % 30)
        if reference is not None:
            difference = np.abs(r.image.astype(int) - reference).mean(axis=2)
            face.append(difference[150:260, 270:370].mean())  # brows, eyes, mouth of the demo face
            background.append(difference[30:120, 480:620].mean())
    assert len(face) >= 5
    assert np.mean(face) > 2 * np.mean(background) and np.mean(face) > 2.0
    assert np.mean(background) < 4.0  # only VP8 noise there (two separate sessions, each coded twice)


def test_viewers_receive_the_published_source_filtered():
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    port = free_port()

    async def main():
        server = LivemotionServer(ServerConfig(port=port), source="demo:320x240")
        server.controls.apply({"type": "set", "emotion": "happy"})
        runner = web.AppRunner(server.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer.addTransceiver("video", direction="recvonly")
        frames, arrived = [], asyncio.Event()

        async def collect(track):
            while len(frames) < 15:
                frames.append((await track.recv()).to_ndarray(format="rgb24"))
            arrived.set()

        viewer.on("track", lambda track: asyncio.ensure_future(collect(track)))
        try:
            await viewer.setLocalDescription(await viewer.createOffer())
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{port}/offer", json={
                        "sdp": viewer.localDescription.sdp, "type": viewer.localDescription.type, "mode": "view"}) as r:
                    answer = await r.json()
            await viewer.setRemoteDescription(RTCSessionDescription(**answer))
            await asyncio.wait_for(arrived.wait(), 60)
            return frames, server.stats.snapshot()
        finally:
            await viewer.close()
            await runner.cleanup()

    frames, stats = asyncio.run(main())
    assert frames[0].shape == (240, 320, 3)
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 0.5  # live video, not a still
    assert stats.faces > 0  # the server tracked (and edited) the face it published


def test_view_mode_without_a_source_says_how_to_get_one():
    async def body(server, url):
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/offer", json={"sdp": "v=0", "type": "offer", "mode": "view"}) as r:
                return r.status, await r.text()

    status, text = asyncio.run(serving(ServerConfig(port=free_port()), body))
    assert status == 400 and "--source" in text


def test_a_client_leaving_mid_stream_frees_its_stream_and_others_carry_on():
    from livemotion.contrib.webrtc_probe import probe

    frames = [demo_frame(i) for i in range(30)]

    async def body(server, url):
        await probe(url, lambda i: frames[i % 30], 10)  # leaves after 10 frames, mid-stream
        for _ in range(40):
            if not server.streams and not server.peers:
                break
            await asyncio.sleep(0.25)
        left = (len(server.streams), len(server.peers))
        second = await probe(url, lambda i: frames[i % 30], 10)
        return left, len(second.returned)

    left, served = asyncio.run(serving(ServerConfig(port=free_port()), body))
    assert left == (0, 0) and served == 10


def test_the_state_says_which_au_values_the_active_emotion_shows():
    """The app's sliders follow the active emotion: its fitted AUs at its intensity, explicit AUs on top."""
    controls = Controls()
    assert controls.reply()["shown_aus"] == {}  # nothing requested: every slider at 0
    full = controls.apply({"type": "set", "emotion": "happy", "intensity": 1.0})["shown_aus"]
    half = controls.apply({"type": "set", "intensity": 0.5})["shown_aus"]
    assert full["12"] > 0.2 and half["12"] == pytest.approx(full["12"] / 2, abs=0.01)
    assert controls.apply({"type": "set", "aus": {"4": 0.7}})["shown_aus"]["4"] == 0.7


def test_a_style_made_while_serving_can_be_named_at_once():
    """`livemotion style` in another shell while `serve` runs: the next message naming it finds it."""
    from livemotion.expression.library import GRID, SHADING_REGIONS, load_library
    from livemotion.expression.styles import Style, save_style

    controls = Controls()
    library = load_library()
    save_style(Style("grin", library.template, 0.02 * library.speech, 0.01,
                     np.zeros((len(SHADING_REGIONS), GRID, GRID), np.float32), "made.mp4", 3))
    reply = controls.apply(parse_message('{"type": "set", "emotion": "grin", "regions": {"brows": "grin@0.5"}}'))
    assert reply["emotion"] == "grin" and reply["styles"] == ["grin"]
    assert controls.library.emotions[-1] == "grin"
