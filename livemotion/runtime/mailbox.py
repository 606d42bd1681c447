"""The latest-frame mailbox that joins the live stages: a slow reader skips frames, never queues them.

One ``LatestSlot`` serves threads (``get``) and asyncio tasks (``get_async``) alike, so the live
runner, the server's WebRTC tracks and its published source all hand frames over the same way.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item mailbox. ``put`` replaces an unread item (and counts it in ``dropped``);
    ``get`` / ``get_async`` wait for an item and return None once the slot is closed and empty.

    ``put`` and ``close`` may be called from any thread; an asyncio reader is woken on its own loop.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Offer ``item``; True when it replaced an unread one (which is then dropped)."""
        with self._condition:
            replaced = self._full
            self.dropped += int(replaced)
            self._item, self._full = item, True
            self._condition.notify()
            self._wake_async()
            return replaced

    def _take(self) -> T | None:
        item, self._item, self._full = self._item, None, False
        return item

    def get(self, timeout: float | None = None) -> T | None:
        """The newest item, waiting for one (None once closed)."""
        with self._condition:
            self._condition.wait_for(lambda: self._full or self._closed, timeout)
            return self._take() if self._full else None

    async def get_async(self) -> T | None:
        """``get`` for asyncio code."""
        loop = asyncio.get_running_loop()
        while True:
            with self._condition:
                if self._full:
                    return self._take()
                if self._closed:
                    return None
                waiter: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, waiter))
            try:
                await waiter
            finally:
                with self._condition:
                    self._async_waiters = [(lp, w) for lp, w in self._async_waiters if w is not waiter]

    def close(self) -> None:
        """Wake every waiter; later gets return None."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
            self._wake_async()

    def _wake_async(self) -> None:
        for loop, waiter in self._async_waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, waiter)
        self._async_waiters = []

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed and not self._full


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
