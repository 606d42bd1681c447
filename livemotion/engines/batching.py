"""One engine call for many streams: ``BatchingBackend`` gathers the requests that arrive within a
short window and runs them through the wrapped backend as one batch.

Every stream of ``livemotion serve`` processes its frames on its own worker thread and calls
the shared backend. The first caller of a round waits at most ``window`` seconds (default 4 ms)
for others; everyone who arrived by then goes into one batched call, and each gets back exactly
its own rows. A caller never waits longer than the window plus that one call, and with one
stream there is nobody to wait for: it runs at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .backends import EngineBackend


@dataclass
class _Request:
    source: np.ndarray
    target: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    flow: np.ndarray | None = None
    error: BaseException | None = None


class BatchingBackend:
    """An ``EngineBackend`` that batches concurrent calls into ``backend`` (which stays usable alone).

    ``callers`` is how many threads may call at once (the streams being served): with one, calls
    go straight through; with more, the first of a round gathers the others for up to ``window``
    (0: never batch, every call goes straight through).
    """

    def __init__(self, backend: EngineBackend, window: float = 0.004, max_batch: int = 16):
        self.backend, self.window, self.max_batch = backend, window, max_batch
        self.name, self.size, self.grid = f"{backend.name}+batching", backend.size, backend.grid
        self.callers = 1
        self._lock = threading.Condition()
        self._waiting: list[_Request] = []
        self._leader = False
        self.batches: list[int] = []  # rows per engine call, most recent last (stats and tests)

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self.callers <= 1 or self.window <= 0:
            return self.backend(source, target)
        request = _Request(source, target)
        with self._lock:
            self._waiting.append(request)
            self._lock.notify_all()
            if self._leader:  # someone is gathering this round: wait for our rows
                lead = False
            else:
                self._leader = lead = True
        if not lead:
            request.done.wait()
        else:
            self._run_round()
        if request.error is not None:
            raise request.error
        assert request.flow is not None
        return request.flow

    def _run_round(self) -> None:
        deadline = time.perf_counter() + self.window
        with self._lock:
            while (len(self._waiting) < min(self.callers, self.max_batch)
                   and (left := deadline - time.perf_counter()) > 0):
                self._lock.wait(left)
            batch, self._waiting = self._waiting, []
            self._leader = False
        counts = [len(r.source) for r in batch]
        try:
            flows = self.backend(np.concatenate([r.source for r in batch]), np.concatenate([r.target for r in batch]))
            for request, rows in zip(batch, np.split(flows, np.cumsum(counts)[:-1]), strict=True):
                request.flow = rows
        except BaseException as error:  # every caller of the round hears of it, not just the leader
            for request in batch:
                request.error = error
        self.batches.append(sum(counts))
        del self.batches[:-1000]
        for request in batch:
            request.done.set()
