"""The server under attack and abuse, on loopback only: foreign pages are refused, the control
socket answers everything, nothing leaks across connections, idle work stops."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading

import aiohttp
import pytest
from serving import free_port, serving

from livemotion.contrib.webrtc_probe import probe
from livemotion.io.demo import demo_frame
from livemotion.server.app import ServerConfig

# ---- who may talk to it ------------------------------------------------------------------------

def test_host_and_origin_matrix_on_every_route():
    port = free_port()
    good_host = f"127.0.0.1:{port}"
    cases = {  # (Host, Origin) -> refused?
        (good_host, None): False,
        (f"localhost:{port}", None): False,
        (good_host, f"http://{good_host}"): False,
        ("evil.example", None): True,  # DNS rebinding: the page's own name
        (f"evil.example:{port}", f"http://evil.example:{port}"): True,
        (good_host, "null"): True,  # sandboxed frames and file:// pages
        (good_host, "https://evil.example"): True,
    }

    async def body(server, url):
        results = {}
        async with aiohttp.ClientSession() as session:
            for (host, origin), _ in cases.items():
                headers = {"Host": host} | ({"Origin": origin} if origin else {})
                statuses = []
                for method, path in (("GET", "/"), ("GET", "/obs"), ("GET", "/dock"), ("GET", "/static/livemotion.js"),
                                     ("GET", "/ws"), ("POST", "/offer")):
                    async with session.request(method, f"{url}{path}", headers=headers, json={}) as response:
                        statuses.append(response.status)
                results[(host, origin)] = statuses
        return results

    results = asyncio.run(serving(ServerConfig(port=port), body))
    for case, refused in cases.items():
        if refused:
            assert results[case] == [403] * 6, case
        else:
            assert 403 not in results[case] and results[case][:4] == [200] * 4, case


def test_off_loopback_every_request_needs_the_token_and_the_pages_carry_it():
    async def body(server, url):
        async with aiohttp.ClientSession() as session:
            statuses = []
            for suffix in ("/", "/?token=wrong", f"/?token={server.config.token}"):
                async with session.get(f"{url}{suffix}") as response:
                    statuses.append(response.status)
            async with session.ws_connect(f"{url}/ws", headers={"Authorization": f"Bearer {server.config.token}"}) as ws:
                await ws.send_str('{"type": "get"}')
                statuses.append(json.loads((await ws.receive()).data)["type"])
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            async with session.get(f"{url}/static/livemotion.js") as response:
                before = response.status
            async with session.get(f"{url}/obs?token={server.config.token}") as response:
                page = response.status
            async with session.get(f"{url}/static/livemotion.js") as response:
                script = response.status  # the page's script, loaded as the browser would: no token in its URL
        async with aiohttp.ClientSession() as stranger, stranger.get(f"{url}/static/livemotion.js") as response:
            other = response.status
        return statuses, (before, page, script, other)

    # Bound to every interface (so a token is generated); the test itself only talks over 127.0.0.1.
    statuses, pages = asyncio.run(serving(ServerConfig(host="0.0.0.0", port=free_port()), body))
    assert statuses == [401, 401, 200, "state"]  # no token, a wrong one, the right one; a socket with the bearer
    assert pages == (401, 200, 200, 401)  # a page opened with the token sets the cookie its script then uses


# ---- the control socket --------------------------------------------------------------------------

def fuzz_messages(count: int, seed: int = 7) -> list[str | bytes]:
    rng = random.Random(seed)
    good = ['{"type": "set", "emotion": "sad"}', '{"type": "get"}', '{"type": "set", "aus": {"12": 0.5}}']
    makers = [
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))),  # binary frames
        lambda: "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(0, 200))),  # random text
        lambda: "[" * rng.randint(500, 4000) + "]" * rng.randint(0, 10),  # deep nesting
        lambda: '{"type": "set", "aus": {"12": ' + "[" * 900 + "]" * 900 + "}}",
        lambda: '{"type": "set", "intensity": ' + rng.choice(["NaN", "Infinity", "-Infinity", "1e999"]) + "}",
        lambda: '{"type": "set", "schedule": "0:happy@' + rng.choice(["5", "-3", "nan", "inf"]) + '"}',
        lambda: '{"type": "set", "schedule": "' + rng.choice(["nan", "inf", "-1", "1e9"]) + ':happy"}',
        lambda: json.dumps({"type": "set", rng.choice(["emotion", "intensity", "aus", "bypass", "active"]):
                            rng.choice([None, [], {}, "x", -1, 2, True, {"25": 0.5}, {"R26": 1}])}),
        lambda: json.dumps({"type": rng.choice(["set", "get", "subscribe", "reset_neutral", "nope", 5, None]),
                            "extra": rng.random()}),
        lambda: "x" * rng.choice([5000, 100_000, 1_000_000]),  # over the message limit, under the frame limit
        lambda: rng.choice(good),
    ]
    return [rng.choice(makers)() for _ in range(count)]


def test_two_thousand_hostile_messages_each_get_a_reply_and_the_server_keeps_serving():
    messages = fuzz_messages(2000)

    async def body(server, url):
        replies = []
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{url}/ws") as ws:
            for message in messages:
                await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))
                reply = await ws.receive(timeout=10)
                assert reply.type == aiohttp.WSMsgType.TEXT, (message[:80], reply)
                replies.append(json.loads(reply.data))  # parses: no bare NaN ever goes out
            await ws.send_str('{"type": "get"}')
            final = json.loads((await ws.receive(timeout=10)).data)
            async with session.get(f"{url}/") as response:
                page = response.status
        return replies, final, page

    replies, final, page = asyncio.run(serving(ServerConfig(port=free_port()), body))
    assert len(replies) == 2000 and {r["type"] for r in replies} <= {"state", "error"}
    assert sum(r["type"] == "error" for r in replies) > 1000
    assert 0.0 <= final["intensity"] <= 1.0 and final["emotion"] in ("neutral", "sad") and page == 200


def test_a_frame_over_the_socket_limit_is_closed_with_a_reason_and_others_carry_on():
    async def body(server, url):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{url}/ws") as ws:
                await ws.send_str("x" * (3 << 20))
                closing = await ws.receive(timeout=10)
            async with session.ws_connect(f"{url}/ws") as ws:
                await ws.send_str('{"type": "get"}')
                after = json.loads((await ws.receive(timeout=10)).data)["type"]
        return closing, ws.close_code, after

    closing, code, after = asyncio.run(serving(ServerConfig(port=free_port()), body))
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert after == "state"


def test_control_sockets_are_capped_with_a_clear_refusal():
    async def body(server, url):
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(f"{url}/ws") for _ in range(3)]
            try:
                await session.ws_connect(f"{url}/ws")
                refused = None
            except aiohttp.WSServerHandshakeError as error:
                refused = error.status
            for ws in sockets:
                await ws.close()
        return refused

    assert asyncio.run(serving(ServerConfig(port=free_port(), max_sockets=3), body)) == 503


# ---- WebRTC: nothing leaks, nothing stalls ---------------------------------------------------------

def counts() -> tuple[int, int, int]:
    """Python threads (the event loop's default executor excluded: it keeps its workers), native
    threads, open file descriptors."""
    python = sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio"))
    return python, len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts native threads through /proc (Linux)")
def test_twenty_connect_disconnect_cycles_leave_nothing_behind():
    frames = [demo_frame(i, 320, 240) for i in range(10)]

    async def settle(server, baseline=None):
        for _ in range(80):
            if not server.streams and not server.peers and (baseline is None or counts() <= baseline):
                break
            await asyncio.sleep(0.25)
        return counts()

    async def body(server, url):
        for _ in range(3):  # warm-up: the loop's executor and codec libraries reach their steady state
            await probe(url, lambda i: frames[i % 10], 3)
        start = await settle(server)
        for _ in range(20):
            assert len((await probe(url, lambda i: frames[i % 10], 3)).returned) == 3
        end = await settle(server, start)
        return start, end, len(server.streams), len(server.peers)

    start, end, streams, peers = asyncio.run(serving(ServerConfig(port=free_port()), body))
    assert (streams, peers) == (0, 0)
    # Python threads and descriptors come back exactly. Native threads may grow by a couple once
    # (a codec or TFLite pool that starts lazily, seen in CI as 8 -> 9); a per-connection leak
    # would show as 20 or more.
    assert end[0] <= start[0] and end[2] <= start[2] and end[1] <= start[1] + 2, (start, end)


def test_an_offer_that_never_connects_is_reaped_and_a_bad_one_is_a_400():
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

    async def body(server, url):
        made_in: list[str] = []
        original = server._new_stream

        def recording():
            made_in.append(threading.current_thread().name)
            return original()

        server._new_stream = recording
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        client.addTrack(VideoStreamTrack())
        await client.setLocalDescription(await client.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/offer", json={"sdp": client.localDescription.sdp, "type": "offer"}) as r:
                answered = r.status
            held = (len(server.peers), len(server.streams))
            await client.close()  # the answer is never applied: this offer will not connect
            for _ in range(40):
                if not server.peers and not server.streams:
                    break
                await asyncio.sleep(0.25)
            reaped = (len(server.peers), len(server.streams))
            # an answer where an offer belongs: aiortc refuses it, and the server says so with a 400
            async with session.post(f"{url}/offer", json={"sdp": client.localDescription.sdp, "type": "answer"}) as r:
                bad = (r.status, await r.text())
        return answered, held, reaped, bad, made_in, (len(server.peers), len(server.streams))

    config = ServerConfig(port=free_port(), connect_timeout=1.5)
    answered, held, reaped, bad, made_in, after = asyncio.run(serving(config, body))
    assert answered == 200 and held == (1, 1) and reaped == (0, 0)
    assert bad[0] == 400 and "cannot answer this offer" in bad[1] and after == (0, 0)
    assert made_in and threading.main_thread().name not in made_in  # the tracker was built off the event loop


def test_a_published_source_pauses_without_viewers_and_resumes_for_the_next():
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    async def watch(url: str, count: int) -> int:
        viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer.addTransceiver("video", direction="recvonly")
        got, done = [], asyncio.Event()

        async def collect(track):
            while len(got) < count:
                got.append(await track.recv())
            done.set()

        viewer.on("track", lambda track: asyncio.ensure_future(collect(track)))
        try:
            await viewer.setLocalDescription(await viewer.createOffer())
            async with aiohttp.ClientSession() as session, session.post(f"{url}/offer", json={
                    "sdp": viewer.localDescription.sdp, "type": "offer", "mode": "view"}) as r:
                answer = await r.json()
            await viewer.setRemoteDescription(RTCSessionDescription(**answer))
            await asyncio.wait_for(done.wait(), 60)
        finally:
            await viewer.close()
        return len(got)

    async def body(server, url):
        first = await watch(url, 10)
        for _ in range(40):
            if server.broadcaster.paused and not server.peers:
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(0.5)
        idle_from = server.stats.frames_in
        await asyncio.sleep(1.5)
        idle_frames = server.stats.frames_in - idle_from
        second = await watch(url, 10)
        return first, idle_frames, second

    first, idle_frames, second = asyncio.run(serving(ServerConfig(port=free_port()), body, source="demo:320x240"))
    assert first == 10 and second == 10
    assert idle_frames == 0  # nobody watched: nothing was read or filtered


def test_a_driving_face_sent_over_webrtc_drives_every_stream_until_it_leaves():
    """mode "drive": a browser's second video (here aiortc sending the demo face) becomes the
    driver that the streams' "drive" regions read; when that connection closes, it is dropped."""
    import av
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

    from livemotion.io.sources import DemoSource

    class DemoTrack(VideoStreamTrack):
        def __init__(self):
            super().__init__()
            self.frames = iter(DemoSource(size=(320, 240), frames=10_000))

        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(next(self.frames).image, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    async def body(server, url):
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        client.addTrack(DemoTrack())
        await client.setLocalDescription(await client.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/offer", json={"sdp": client.localDescription.sdp, "type": "offer",
                                                          "mode": "drive"}) as r:
                await client.setRemoteDescription(RTCSessionDescription(**await r.json()))
        reading = None
        for _ in range(240):  # the driver learns its neutral from its first 15 frames, then reads
            driver = server.controls.driver
            if driver is not None:
                reading = await asyncio.get_running_loop().run_in_executor(None, driver.read, 0.0)
                if reading is not None:
                    break
            await asyncio.sleep(0.1)
        driving = server.controls.reply()["driving"]
        await client.close()
        for _ in range(100):
            if server.controls.driver is None:
                break
            await asyncio.sleep(0.1)
        return reading, driving, server.controls.driver, server.controls.reply()["driving"]

    reading, driving, after, driving_after = asyncio.run(serving(ServerConfig(port=free_port()), body))
    assert reading is not None and reading.motion.shape[1] == 2 and driving is True
    assert after is None and driving_after is False


def test_the_app_animates_an_uploaded_photo_and_makes_a_style_from_an_uploaded_clip(astronaut, tmp_path, monkeypatch):
    """POST /animate: an MP4 of the photo's face, each frame the photo's size; POST /style: a stored
    style the state then lists. Bad uploads get a 400 that says what to send, big ones a 413."""
    import av
    import cv2
    from conftest import made_up_clip

    from livemotion.server import uploads

    photo = cv2.imencode(".png", cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))[1].tobytes()
    clip = made_up_clip(tmp_path / "raised.mp4", {"1": 1.0, "2": 1.0}, 40).read_bytes()

    async def body(server, url):
        async with aiohttp.ClientSession() as session:
            async def post(path, data):
                async with session.post(f"{url}{path}", data=data) as r:
                    return r.status, await r.read()

            animated = await post("/animate?emotion=happy&seconds=0.5", photo)
            unknown = await post("/animate?emotion=bored&seconds=0.5", photo)
            not_an_image = await post("/animate?emotion=happy", b"hello")
            made = await post("/style?name=wonder&filename=my%20clip.mp4", clip)
            again = await post("/style?name=wonder", clip)
            monkeypatch.setattr(uploads, "MAX_UPLOAD", 1000)
            too_large = await post("/animate?emotion=happy", photo)
        return animated, unknown, not_an_image, made, again, too_large, server.controls.reply()

    animated, unknown, not_an_image, made, again, too_large, state = asyncio.run(
        serving(ServerConfig(port=free_port()), body))
    assert animated[0] == 200
    path = tmp_path / "clip.mp4"
    path.write_bytes(animated[1])
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 15 and frames[0].shape == astronaut.shape
    assert unknown[0] == 400 and b"unknown emotion 'bored'" in unknown[1]
    assert not_an_image[0] == 400 and b"cannot read the uploaded photo as an image" in not_an_image[1]
    assert made[0] == 200 and json.loads(made[1]) == {"name": "wonder", "windows": 3, "source": "my_clip.mp4"}
    assert again[0] == 400 and b"exists" in again[1]
    assert too_large[0] == 413
    assert state["styles"] == ["wonder"]
