"""``livemotion serve``: WebRTC in and out of the browser, the OBS pages and the control API.

- ``POST /offer`` ``{"sdp", "type", "mode"}``: mode "filter" sends the browser's camera through the
  filter and back; mode "view" receives the server's own source (``--source``), filtered.
- ``GET /`` the app, ``GET /obs`` the OBS browser-source page (filtered video only, full frame),
  ``GET /dock`` the OBS custom-dock page (emotion buttons), ``GET /ws`` the control API (JSON).
- Binds 127.0.0.1 by default. On any other address every request needs the token (``?token=``
  or an ``Authorization: Bearer`` header). Requests whose Origin is another site are refused,
  so a web page elsewhere cannot drive a local instance.
- No STUN/TURN server is contacted unless ``--stun`` is given.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .control import MAX_MESSAGE_BYTES, ControlError, Controls, parse_message
from .editing import ExpressionEditor
from .expression import ExpressionController
from .live import paced
from .pipeline import Pipeline
from .stats import PipelineStats
from .tracking import FaceTracker
from .types import FaceTrack, Frame

log = logging.getLogger(__name__)
PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
PAGES = {"/": PLUGINS / "web" / "index.html", "/obs": PLUGINS / "obs" / "source.html",
         "/dock": PLUGINS / "obs" / "dock.html"}


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def keep_ice_on_loopback() -> None:
    """Make aiortc offer 127.0.0.1 as its only host candidate (aioice skips loopback and has no
    option for it), so a server bound to loopback never sends media over another interface."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required when ``host`` is not loopback (generated if not given)
    stun: str | None = None
    editor_factory: Callable[[], ExpressionEditor] = field(default=lambda: ExpressionEditor(ExpressionController()))
    max_faces: int = 2


class Stream:
    """One pipeline (tracker + editor) fed from one video track; processes in a worker thread."""

    def __init__(self, server: LivemotionServer):
        self.editor = server.config.editor_factory()
        self.tracker = FaceTracker(max_faces=server.config.max_faces)
        self.pipeline = Pipeline(self.tracker, self.editor)
        self.stats = server.stats
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livemotion-stream")
        server.controls.attach(self.pipeline, self.editor)
        self._server = server
        # Frames are processed on worker threads while close() comes from the event loop: the lock
        # keeps the tracker's native graph from being closed under a frame (that crashes).
        self._lock = threading.Lock()
        self._closed = False

    def process(self, image: np.ndarray, index: int, pts: Fraction, captured: float) -> np.ndarray:
        with self._lock:
            if self._closed:
                return image  # the stream is going away: pass the frame through
            processed = self.pipeline.process(Frame(image, index, pts, captured))
        processed.timings["total"] = (time.perf_counter() - captured) * 1e3
        self.stats.frame_out(processed.timings, isinstance(processed.track, FaceTrack))
        return processed.output.image

    def close(self) -> None:
        self._server.controls.detach(self.pipeline)
        with self._lock:  # waits for a frame in flight, at most one frame's processing
            if self._closed:
                return
            self._closed = True
            self.tracker.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


class FilteredTrack(MediaStreamTrack):
    """The browser's camera track, filtered. Latest-frame: a reader keeps only the newest
    incoming frame, so when processing is slower than the camera, frames are skipped, not queued."""

    kind = "video"

    def __init__(self, source, stream: Stream):
        super().__init__()
        self.source, self.stream = source, stream
        self._latest: av.VideoFrame | None = None
        self._arrived = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())
        self._index = 0

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                if self._latest is not None:
                    self.stream.stats.dropped += 1
                self._latest = frame
                self.stream.stats.frame_in()
                self._arrived.set()
        except Exception:  # the browser went away: end this track too
            self._arrived.set()

    async def recv(self) -> av.VideoFrame:
        while self._latest is None:
            if self._reader.done():
                self.stop()
                raise MediaStreamError
            self._arrived.clear()
            await self._arrived.wait()
        frame, self._latest = self._latest, None
        captured = time.perf_counter()
        image = frame.to_ndarray(format="rgb24")
        loop = asyncio.get_running_loop()
        pts = Fraction(frame.pts or 0) * (frame.time_base or Fraction(1, 90000))
        out = await loop.run_in_executor(self.stream.executor, self.stream.process, image, self._index, pts, captured)
        self._index += 1
        result = av.VideoFrame.from_ndarray(out, format="rgb24")
        result.pts, result.time_base = frame.pts, frame.time_base
        return result

    def stop(self) -> None:
        super().stop()
        self._reader.cancel()


class Broadcaster:
    """The server's own source (``--source``), filtered once and shared with every viewer: each
    viewer takes the newest frame. Files and the demo loop; a camera runs until it stops."""

    def __init__(self, source_spec: str, stream: Stream):
        self.source_spec, self.stream = source_spec, stream
        self.latest: tuple[int, av.VideoFrame] | None = None
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._count = 0
        self._thread = threading.Thread(target=self._run, name="livemotion-broadcast", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from .sources import WebcamSource, open_source

        try:
            while not self._stop.is_set():
                source = open_source(self.source_spec)
                try:
                    for frame in paced(source):
                        if self._stop.is_set():
                            return
                        self.stream.stats.frame_in()
                        out = self.stream.process(frame.image, self._count, frame.pts, frame.captured_at)
                        with self._condition:
                            self.latest = (self._count, av.VideoFrame.from_ndarray(out, format="rgb24"))
                            self._condition.notify_all()
                        self._count += 1
                finally:
                    source.close()
                if isinstance(source, WebcamSource):
                    return
        except Exception:
            log.exception("the published source stopped")

    def wait_newer(self, seen: int | None, timeout: float = 1.0) -> tuple[int, av.VideoFrame] | None:
        with self._condition:
            self._condition.wait_for(lambda: self.latest is not None and self.latest[0] != seen, timeout)
            return self.latest

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class BroadcastTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, broadcaster: Broadcaster):
        super().__init__()
        self.broadcaster = broadcaster
        self._seen: int | None = None
        self._start = time.perf_counter()

    async def recv(self) -> av.VideoFrame:
        loop = asyncio.get_running_loop()
        item = None
        while item is None or item[0] == self._seen:
            item = await loop.run_in_executor(None, self.broadcaster.wait_newer, self._seen)
        self._seen = item[0]
        frame = item[1].reformat(format="yuv420p")
        frame.pts, frame.time_base = int((time.perf_counter() - self._start) * 90000), Fraction(1, 90000)
        return frame


class LivemotionServer:
    def __init__(self, config: ServerConfig, source: str | None = None):
        self.config = config
        if not is_loopback(config.host) and not config.token:
            config.token = secrets.token_urlsafe(16)
        self.controls = Controls()
        self.stats = PipelineStats(window=600)
        self.peers: set = set()
        self.streams: list[Stream] = []
        self._subscribers: set[web.WebSocketResponse] = set()
        self._sockets: set[web.WebSocketResponse] = set()  # every open control socket, closed on shutdown
        self._source = source
        self.broadcaster: Broadcaster | None = None
        if is_loopback(config.host):
            keep_ice_on_loopback()

    # ---- access control ------------------------------------------------------------------------
    def _check(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null":
            if urlsplit(origin).netloc != request.host:
                raise web.HTTPForbidden(text=f"origin {origin} may not control this livemotion instance")
        if self.config.token:
            given = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), self.config.token.encode()):
                raise web.HTTPUnauthorized(text="this livemotion instance needs its token: add ?token=...")

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        self._check(request)
        return await handler(request)

    # ---- handlers -------------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        return web.FileResponse(PAGES[request.path])

    async def offer(self, request: web.Request) -> web.Response:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

        try:
            params = await request.json()
            description = RTCSessionDescription(sdp=params["sdp"], type=params["type"])
            mode = params.get("mode", "filter")
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text='send JSON {"sdp": ..., "type": "offer", "mode": "filter"|"view"}') from None
        if mode not in ("filter", "view"):
            raise web.HTTPBadRequest(text='mode must be "filter" or "view"')
        if mode == "view" and self._source is None:
            raise web.HTTPBadRequest(text="this server publishes no source: start it with --source to use view mode")
        servers = [RTCIceServer(self.config.stun)] if self.config.stun else []
        peer = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.peers.add(peer)
        stream_holder: list[Stream] = []

        @peer.on("connectionstatechange")
        async def _state() -> None:
            if peer.connectionState in ("failed", "closed"):
                await self._drop(peer, stream_holder)

        if mode == "view":
            peer.addTrack(BroadcastTrack(self._broadcast()))
        else:
            @peer.on("track")
            def _track(track) -> None:
                if track.kind == "video":
                    stream = Stream(self)
                    stream_holder.append(stream)
                    self.streams.append(stream)
                    peer.addTrack(FilteredTrack(track, stream))

        await peer.setRemoteDescription(description)
        await peer.setLocalDescription(await peer.createAnswer())
        return web.json_response({"sdp": peer.localDescription.sdp, "type": peer.localDescription.type})

    def _broadcast(self) -> Broadcaster:
        if self.broadcaster is None:
            stream = Stream(self)
            self.streams.append(stream)
            self.broadcaster = Broadcaster(self._source, stream)
        return self.broadcaster

    async def _drop(self, peer, streams: list[Stream]) -> None:
        self.peers.discard(peer)
        await peer.close()
        for stream in streams:
            if stream in self.streams:
                self.streams.remove(stream)
            stream.close()

    async def control(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=64 * MAX_MESSAGE_BYTES, heartbeat=20)
        await socket.prepare(request)
        self._sockets.add(socket)
        async for message in socket:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            try:
                parsed = parse_message(message.data)
                reply = self.controls.apply(parsed)
                if parsed["type"] == "subscribe":
                    (self._subscribers.add if parsed["stats"] else self._subscribers.discard)(socket)
            except ControlError as error:
                reply = {"type": "error", "error": str(error)}
            await socket.send_json(reply)
        self._subscribers.discard(socket)
        self._sockets.discard(socket)
        return socket

    async def _publish_stats(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self._subscribers:
                continue
            s = self.stats.snapshot()
            message = json.dumps({
                "type": "stats", "fps_in": s.fps_in, "fps_out": s.fps_out, "frames_in": s.frames_in,
                "frames_out": s.frames_out, "dropped": s.dropped, "faces": s.faces, "streams": len(self.streams),
                "stages": {k: {"p50": v.p50, "p95": v.p95, "p99": v.p99} for k, v in s.stages.items()},
            })
            for socket in list(self._subscribers):
                try:
                    await socket.send_str(message)
                except ConnectionError:
                    self._subscribers.discard(socket)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=256 * 1024)
        for path in PAGES:
            app.router.add_get(path, self.page)
        app.router.add_static("/static/", PLUGINS / "web")
        app.router.add_post("/offer", self.offer)
        app.router.add_get("/ws", self.control)

        stats_task = web.AppKey("stats_task", asyncio.Task)

        async def startup(_: web.Application) -> None:
            app[stats_task] = asyncio.ensure_future(self._publish_stats())

        async def shutdown(_: web.Application) -> None:
            app[stats_task].cancel()
            for socket in list(self._sockets):
                await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
            await asyncio.gather(*(peer.close() for peer in list(self.peers)), return_exceptions=True)
            if self.broadcaster is not None:
                self.broadcaster.close()
            for stream in self.streams:
                stream.close()

        app.on_startup.append(startup)
        app.on_shutdown.append(shutdown)
        return app

    def url(self) -> str:
        query = f"?token={self.config.token}" if self.config.token else ""
        return f"http://{self.config.host}:{self.config.port}/{query}"
