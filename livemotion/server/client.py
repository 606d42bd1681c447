"""A client of the JSON control API (``/ws``) for shell scripts, stream-deck buttons and the OBS script.

``send(message)`` connects to a running ``livemotion serve`` (built on the ``websockets`` library),
sends one message and returns its reply. Not running, wrong port, wrong token: one ``ControlClientError``
line that says what to do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from ..errors import LivemotionError


class ControlClientError(LivemotionError, ConnectionError):
    """The control API could not be reached, or refused the message."""


def control_url(host: str = "127.0.0.1", port: int = 8080) -> str:
    """The control socket's URL of an instance on ``host``:``port``."""
    return f"ws://{host}:{port}/ws"


async def _exchange(url: str, messages: list[dict[str, Any]], token: str | None, timeout: float) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with websockets.connect(url, additional_headers=headers, open_timeout=timeout, close_timeout=1) as socket:
        replies = []
        for message in messages:
            await socket.send(json.dumps(message))
            reply = json.loads(await asyncio.wait_for(socket.recv(), timeout))
            if reply.get("type") == "error":
                raise ControlClientError(f"livemotion refused {message.get('type')!r}: {reply['error']}")
            replies.append(reply)
        return replies


def send(*messages: dict[str, Any], url: str = control_url(), token: str | None = None,
         timeout: float = 5.0) -> dict[str, Any]:
    """Send ``messages`` in order over one connection; the last reply (normally the new state)."""
    try:
        return asyncio.run(_exchange(url, list(messages), token, timeout))[-1]
    except OSError as error:  # refused, unreachable, timed out
        raise ControlClientError(f"no livemotion instance answers at {url} ({error.strerror or error}): start one "
                                 "with `livemotion serve` (or give its --port)") from None
    except websockets.exceptions.InvalidStatus as error:
        status = error.response.status_code
        if status == 401:
            raise ControlClientError(f"the instance at {url} needs its token: pass --token (or set "
                                     "LIVEMOTION_TOKEN) to the one `livemotion serve` printed") from None
        raise ControlClientError(f"the instance at {url} refused the connection (HTTP {status})") from None
    except (websockets.exceptions.WebSocketException, TimeoutError) as error:
        raise ControlClientError(f"the connection to {url} failed: {error}") from None
