"""Helpers for the tests that run ``livemotion serve`` in-process on loopback."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from livemotion.server.app import LivemotionServer, ServerConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serving(config: ServerConfig, body: Callable[[LivemotionServer, str], Awaitable[Any]],
                  source: str | None = None) -> Any:
    """Run ``body(server, url)`` against a server started with ``config``, then shut it down."""
    server = LivemotionServer(config, source=source)
    runner = web.AppRunner(server.app())
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    try:
        return await body(server, f"http://127.0.0.1:{config.port}")
    finally:
        await runner.cleanup()
