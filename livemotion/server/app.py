"""``livemotion serve``: WebRTC in and out of the browser, the OBS pages and the control API.

- ``POST /offer`` ``{"sdp", "type", "mode"}``: mode "filter" sends the browser's camera through the
  filter and back; mode "view" receives the server's own source (``--source``), filtered, and,
  when the offer has a second video transceiver, the same source unfiltered; mode "drive" sends
  a driving face (mimic): every stream's regions whose source is "drive" follow it, and a newer
  driving connection replaces an older one.
- ``POST /animate?emotion=happy[&seconds=2&intensity=1&offset=1]`` with an image: the photo
  animated into an MP4 (``livemotion animate``); ``POST /style?name=NAME[&filename=F&force=1]``
  with a video: a reference style made from it (``livemotion style``, its calmest second as the
  neutral). Both run one at a time off the event loop (``uploads``).
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
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from aiortc import MediaStreamTrack

from ..engines.backends import EngineBackend, create_backend
from ..engines.batching import BatchingBackend
from ..errors import LivemotionError
from ..expression.drive import Driver
from ..io.sources import CameraOptions
from ..runtime.pipeline import build_pipeline
from ..runtime.session import SessionState
from ..runtime.stats import PipelineStats
from .control import ControlError, Controls, parse_message
from .uploads import UploadSlots, animated_clip, check_style_target, uploaded_style
from .webrtc import Broadcaster, BroadcastTrack, DrivingTrack, FilteredTrack, Stream

log = logging.getLogger(__name__)
# The pages and their script are the top-level plugins/ folder, installed as ``livemotion.plugins``.
PAGES = {"/": "web/index.html", "/calibrate": "web/calibrate.html", "/obs": "obs/source.html", "/dock": "obs/dock.html"}
STATIC = {"livemotion.js": ("web/livemotion.js", "text/javascript")}


def plugin_file(name: str) -> bytes:
    """A file of the installed ``plugins/`` folder, e.g. ``web/index.html``."""
    return resources.files("livemotion.plugins").joinpath(name).read_bytes()


def is_loopback(host: str) -> bool:
    """True for an address of this machine only (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def keep_ice_on_loopback() -> None:
    """Make aiortc offer 127.0.0.1 as its only host candidate (aioice skips loopback and has no
    option for it), so a server bound to loopback never sends media over another interface."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


TOKEN_COOKIE = "livemotion_token"
MAX_WEBSOCKET_FRAME = 2 << 20  # larger frames close the socket (1009, with the reason); smaller get an error reply


class _ControlSocket(web.WebSocketResponse):
    """The control socket: an oversized frame closes it with code 1009 and a reason a client can show
    (aiohttp closes it with none)."""

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        """Close the socket; a 1009 close says why."""
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            message = f"frame over {MAX_WEBSOCKET_FRAME >> 20} MB: control messages are small JSON texts".encode()
        return await super().close(code=code, message=message, drain=drain)


@dataclass
class ServerConfig:
    """How ``livemotion serve`` runs: address, token, engine backend, limits, library or profile."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required when ``host`` is not loopback (generated if not given)
    stun: str | None = None
    backend: str = "auto"  # one engine backend per server, shared by every stream
    device: str = "cpu"
    max_faces: int = 2
    max_peers: int = 8  # WebRTC connections at once; each filtered camera costs a tracker and CPU
    max_sockets: int = 32  # control sockets at once
    connect_timeout: float = 30.0  # an answered offer that has not connected by then is closed
    library: str | None = None  # expression library file; None: the shipped one
    profile: str | None = None  # calibration profile, instead of a library file
    remember: bool = False  # keep every change in the user's settings (``livemotion serve`` does)
    camera: CameraOptions = field(default_factory=CameraOptions)  # for a webcam ``source``
    batch_window: float | None = None  # seconds streams wait to share one engine call (0: never batch);
    # None: 4 ms on a GPU, where one call for many faces costs little more than one, else 0 (on two
    # CPU cores waiting to batch cost two streams 2-3 fps each: docs/benchmarks.md)


class LivemotionServer:
    """The HTTP side of ``livemotion serve``: pages, ``/offer`` (WebRTC) and ``/ws`` (control)."""

    def __init__(self, config: ServerConfig, source: str | None = None, backend: EngineBackend | None = None):
        self.config = config
        if not is_loopback(config.host) and not config.token:
            config.token = secrets.token_urlsafe(16)
        # One engine for every stream: on a GPU, frames of different streams ready within 4 ms share one call.
        window = config.batch_window if config.batch_window is not None else (
            0.004 if config.device.startswith("cuda") else 0.0)
        self.backend = BatchingBackend(backend or create_backend(config.backend, device=config.device), window=window)
        self.controls = Controls(SessionState(library=config.library, profile=config.profile), remember=config.remember)
        self.stats = PipelineStats(window=600)
        self.peers: set[Any] = set()
        self.streams: list[Stream] = []
        self._subscribers: set[web.WebSocketResponse] = set()
        self._sockets: set[web.WebSocketResponse] = set()  # every open control socket, closed on shutdown
        self._source = source
        self.broadcaster: Broadcaster | None = None
        self._broadcast_lock = threading.Lock()
        self._reapers: set[asyncio.Future[Any]] = set()
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="livemotion-job")  # uploads, one at a time
        self._uploads = UploadSlots()
        if is_loopback(config.host):
            keep_ice_on_loopback()

    # ---- access control ------------------------------------------------------------------------
    def allowed_hosts(self) -> frozenset[str] | None:
        """``Host`` values this server answers to (None: any, for a wildcard bind, which needs the token).

        A page on another site that re-points its own name at 127.0.0.1 (DNS rebinding) sends its
        own name as ``Host``, so checking it keeps such pages out even though they are same-origin.
        """
        host, port = self.config.host, self.config.port
        if host in ("0.0.0.0", "::", ""):
            return None
        own = f"[{host}]" if ":" in host else host
        names = {own, "localhost", "127.0.0.1", "[::1]"} if is_loopback(host) else {own}
        return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))

    def _check(self, request: web.Request) -> None:
        allowed = self.allowed_hosts()
        if allowed is not None and request.host.lower() not in allowed:
            raise web.HTTPForbidden(text=f"host {request.host!r} is not this livemotion instance")
        origin = request.headers.get("Origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower()):
            raise web.HTTPForbidden(text=f"origin {origin} may not control this livemotion instance")
        if self.config.token:
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            bearer = credentials.strip() if scheme.lower() == "bearer" else ""  # the scheme is case-insensitive (RFC 9110)
            given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or bearer
            if not hmac.compare_digest(given.encode(), self.config.token.encode()):
                raise web.HTTPUnauthorized(text="this livemotion instance needs its token: add ?token=...")

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        self._check(request)
        response = await handler(request)
        if self.config.token and request.query.get("token") and request.path in PAGES:
            # The page's script, socket and offer then carry the token without it in every URL.
            response.set_cookie(TOKEN_COOKIE, self.config.token, httponly=True, samesite="Strict", path="/")
        return response

    # ---- handlers -------------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        """One of the app's pages (``PAGES``)."""
        return web.Response(body=plugin_file(PAGES[request.path]), content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        """The app's script."""
        if request.match_info["name"] not in STATIC:
            raise web.HTTPNotFound()
        name, content_type = STATIC[request.match_info["name"]]
        return web.Response(body=plugin_file(name), content_type=content_type)

    def _new_stream(self) -> Stream:
        """A stream with its own tracker and editor; the engine backend is the server's, shared."""
        pipeline = build_pipeline(backend=self.backend, max_faces=self.config.max_faces)
        stream = Stream(pipeline, self.stats, observer=self.controls.feed_calibration)
        self.controls.attach(pipeline)
        self.streams.append(stream)
        self.backend.callers = len(self.streams)
        return stream

    async def offer(self, request: web.Request) -> web.Response:
        """``POST /offer``: a WebRTC session in mode filter (a browser's camera, filtered back), view (the published
        source) or drive (a driving face)."""
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

        try:
            params = await request.json()
            description = RTCSessionDescription(sdp=params["sdp"], type=params["type"])
            mode = params.get("mode", "filter")
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text='send JSON {"sdp": ..., "type": "offer", "mode": "filter"|"view"|"drive"}') \
                from None
        if mode not in ("filter", "view", "drive"):
            raise web.HTTPBadRequest(text='mode must be "filter", "view" or "drive"')
        if mode == "view" and self._source is None:
            raise web.HTTPBadRequest(text="this server publishes no source: start it with --source to use view mode")
        if len(self.peers) >= self.config.max_peers:
            raise web.HTTPServiceUnavailable(text=f"this server already carries {self.config.max_peers} connections, "
                                                  "its limit: close another one first")
        servers = [RTCIceServer(self.config.stun)] if self.config.stun else []
        peer = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.peers.add(peer)
        streams: list[Stream] = []
        sent: list[MediaStreamTrack | DrivingTrack] = []

        @peer.on("connectionstatechange")
        async def _state() -> None:
            if peer.connectionState in ("failed", "closed"):
                await self._drop(peer, streams, sent)

        try:
            loop = asyncio.get_running_loop()
            if mode == "view":
                broadcaster = await loop.run_in_executor(None, self._broadcast)
                wanted = 2 if description.sdp.count("m=video") >= 2 else 1  # 2: the unfiltered source too
                for raw in (False, True)[:wanted]:
                    viewer = BroadcastTrack(broadcaster, raw=raw)
                    sent.append(viewer)
                    peer.addTrack(viewer)
            elif mode == "drive":
                driving = DrivingTrack(await loop.run_in_executor(None, Driver), self._driver_ended)  # tracker: ~1 s
                sent.append(driving)

                @peer.on("track")
                def _drive(track: MediaStreamTrack) -> None:
                    if track.kind == "video" and not driving.started:
                        driving.start(track)
                        self.controls.set_driver(driving.driver)
            else:
                # A tracker takes a second to start: build it off the event loop, before the track arrives.
                streams.append(await loop.run_in_executor(None, self._new_stream))

                @peer.on("track")
                def _track(track: MediaStreamTrack) -> None:
                    if track.kind == "video" and not sent:
                        filtered = FilteredTrack(track, streams[0])
                        sent.append(filtered)
                        peer.addTrack(filtered)

            await peer.setRemoteDescription(description)
            await peer.setLocalDescription(await peer.createAnswer())
        except Exception as error:  # a malformed or unusable offer: the caller's mistake, said plainly
            await self._drop(peer, streams, sent)
            raise web.HTTPBadRequest(text=f"cannot answer this offer: {error}") from None
        self._reapers.add(asyncio.ensure_future(self._reap_unconnected(peer, streams, sent)))
        return web.json_response({"sdp": peer.localDescription.sdp, "type": peer.localDescription.type})

    async def animate(self, request: web.Request) -> web.Response:
        """``POST /animate``: the uploaded photo animated into an MP4."""
        query = request.query
        try:
            emotion, seconds, intensity = query["emotion"], float(query.get("seconds", 2)), float(query.get("intensity", 1))
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="POST an image to /animate?emotion=happy[&seconds=2&intensity=1&offset=1]") \
                from None
        loop = asyncio.get_running_loop()
        try:
            async with self._uploads.receive(request, "photo") as photo:
                clip = await loop.run_in_executor(self._jobs, animated_clip, photo, emotion, seconds, intensity,
                                                  query.get("offset") in ("1", "true"), self.controls.library)
        except LivemotionError as error:  # not a photo, no face, a bad value: the sender's to fix
            raise web.HTTPBadRequest(text=str(error)) from None
        return web.Response(body=clip, content_type="video/mp4")

    async def style(self, request: web.Request) -> web.Response:
        """``POST /style``: a style made from the uploaded clip."""
        if "name" not in request.query:
            raise web.HTTPBadRequest(text="POST a video of the face to /style?name=NAME[&filename=F&force=1]")
        name, force = request.query["name"], request.query.get("force") in ("1", "true")
        loop = asyncio.get_running_loop()
        try:
            check_style_target(name, force)  # before the upload and the work: a taken name, an unwritable folder
            async with self._uploads.receive(request, request.query.get("filename") or "clip.mp4") as clip:
                made = await loop.run_in_executor(self._jobs, uploaded_style, clip, name, force)
        except LivemotionError as error:  # not a video, no face, nowhere to save it: said in one line
            raise web.HTTPBadRequest(text=str(error)) from None
        self.controls.apply({"type": "set", "library": self.controls.state.library,
                             "profile": self.controls.state.profile})  # the library picks up the new style
        return web.json_response({"name": made.name, "windows": made.windows, "source": made.source})

    def _driver_ended(self, driver: Driver) -> None:
        self.controls.drop_driver(driver)
        threading.Thread(target=driver.close, name="livemotion-driver-close", daemon=True).start()  # waits for a read

    async def _reap_unconnected(self, peer: Any, streams: list[Stream], sent: list[MediaStreamTrack | DrivingTrack]) -> None:
        """Close an answered offer that never connects, with its stream, tracker and threads."""
        try:
            await asyncio.sleep(self.config.connect_timeout)
            if peer in self.peers and peer.connectionState != "connected":
                log.info("closing a WebRTC offer that did not connect within %.0f s", self.config.connect_timeout)
                await self._drop(peer, streams, sent)
        finally:
            self._reapers.discard(asyncio.current_task())

    def _broadcast(self) -> Broadcaster:
        with self._broadcast_lock:
            if self.broadcaster is None:
                assert self._source is not None
                self.broadcaster = Broadcaster(self._source, self._new_stream(), self.config.camera)
            return self.broadcaster

    def _close_stream(self, stream: Stream) -> None:
        self.controls.detach(stream.pipeline)
        if stream in self.streams:
            self.streams.remove(stream)
        self.backend.callers = len(self.streams)
        stream.close()

    async def _drop(self, peer: Any, streams: list[Stream], sent: list[MediaStreamTrack | DrivingTrack]) -> None:
        self.peers.discard(peer)
        await peer.close()
        for track in sent:
            track.stop()
        for stream in streams:
            self._close_stream(stream)

    async def control(self, request: web.Request) -> web.WebSocketResponse:
        """``/ws``: the control API's socket (one reply per message)."""
        if len(self._sockets) >= self.config.max_sockets:
            raise web.HTTPServiceUnavailable(text=f"{self.config.max_sockets} control connections are open, the limit: "
                                                  "close another page or client first")
        socket = _ControlSocket(max_msg_size=MAX_WEBSOCKET_FRAME, heartbeat=20)
        await socket.prepare(request)
        self._sockets.add(socket)
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    reply = await self._answer(socket, message.data)
                elif message.type == WSMsgType.BINARY:
                    reply = {"type": "error", "error": "binary messages are not accepted: send JSON as text"}
                else:
                    continue
                await socket.send_json(reply)
        finally:
            self._subscribers.discard(socket)
            self._sockets.discard(socket)
        return socket

    async def _answer(self, socket: web.WebSocketResponse, text: str) -> dict[str, Any]:
        """The reply to one control message; a bad message gets an error reply and changes nothing."""
        try:
            parsed = parse_message(text)
            if parsed["type"] == "subscribe":
                (self._subscribers.add if parsed["stats"] else self._subscribers.discard)(socket)
            if parsed["type"] == "calibrate" and parsed["action"] == "finish":  # tracks every take again: seconds
                return await asyncio.get_running_loop().run_in_executor(None, self.controls.finish_calibration)
            return self.controls.apply(parsed)
        except ControlError as error:
            return {"type": "error", "error": str(error)}

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
        """The aiohttp application with every route and the Host/Origin/token guard."""
        app = web.Application(middlewares=[self._guard], client_max_size=256 * 1024)
        for path in PAGES:
            app.router.add_get(path, self.page)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_post("/offer", self.offer)
        app.router.add_post("/animate", self.animate)
        app.router.add_post("/style", self.style)
        app.router.add_get("/ws", self.control)

        stats_task = web.AppKey("stats_task", asyncio.Task)

        async def startup(_: web.Application) -> None:
            app[stats_task] = asyncio.ensure_future(self._publish_stats())

        async def shutdown(_: web.Application) -> None:
            app[stats_task].cancel()
            for reaper in list(self._reapers):
                reaper.cancel()
            for socket in list(self._sockets):
                await socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
            await asyncio.gather(*(peer.close() for peer in list(self.peers)), return_exceptions=True)
            if self.broadcaster is not None:
                self.broadcaster.close()
            for stream in list(self.streams):
                self._close_stream(stream)
            self._jobs.shutdown(wait=False, cancel_futures=True)

        app.on_startup.append(startup)
        app.on_shutdown.append(shutdown)
        return app

    def url(self) -> str:
        """The address the app is served on (with the token off loopback)."""
        query = f"?token={self.config.token}" if self.config.token else ""
        return f"http://{self.config.host}:{self.config.port}/{query}"
