"""One engine call for many streams: concurrent calls are batched, each caller gets its own rows."""

import threading

import numpy as np
import pytest

from livemotion.engines.backends import NUM_POINTS, create_backend
from livemotion.engines.batching import BatchingBackend


def _points(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.uniform(60, 200, (rows, NUM_POINTS, 2)).astype(np.float32)
    return source, (source + rng.normal(0, 2, source.shape)).astype(np.float32)


def test_streams_called_together_share_calls_and_get_their_own_flows():
    backend = create_backend("torch")
    batching = BatchingBackend(backend, window=0.05)
    batching.callers = 4
    inputs = [_points(seed, rows) for seed, rows in enumerate((1, 2, 1, 2))]  # an editor asks for 1 or 2 flows
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(4)

    def stream(i: int) -> None:
        start.wait()
        for _ in range(3):
            results[i] = batching(*inputs[i])

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (source, target) in enumerate(inputs):
        np.testing.assert_allclose(results[i], backend(source, target), atol=1e-4)  # batched == alone
    assert max(batching.batches) > 2  # rows of several streams went through one call
    assert sum(batching.batches) == 3 * 6  # every request ran exactly once


def test_one_stream_goes_straight_through_and_errors_reach_every_caller():
    backend = create_backend("torch")
    batching = BatchingBackend(backend)
    source, target = _points(0, 1)
    np.testing.assert_array_equal(batching(source, target), backend(source, target))
    assert batching.batches == []  # nobody to wait for: no gathering at all

    class Broken:
        name, size, grid = "broken", 256, 32

        def __call__(self, source, target):
            raise RuntimeError("engine failed")

    failing = BatchingBackend(Broken(), window=0.05)
    failing.callers = 2
    errors = []

    def call() -> None:
        try:
            failing(source, target)
        except RuntimeError as error:
            errors.append(str(error))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["engine failed", "engine failed"]


@pytest.mark.parametrize("rows", [1, 3])
def test_a_lone_caller_of_a_busy_server_still_gets_its_answer(rows):
    batching = BatchingBackend(create_backend("torch"), window=0.002)
    batching.callers = 8  # the others are idle: the round closes when the window ends
    source, target = _points(1, rows)
    assert batching(source, target).shape[0] == rows


def test_a_server_batches_streams_on_a_gpu_and_not_on_a_cpu():
    """On two CPU cores waiting to batch cost two streams 2-3 fps each (docs/benchmarks.md), so a
    server on a CPU does not wait unless told; on a GPU it waits up to 4 ms; a window given is kept."""
    from livemotion.server.app import LivemotionServer, ServerConfig

    backend = create_backend("torch")
    assert LivemotionServer(ServerConfig(), backend=backend).backend.window == 0.0
    assert LivemotionServer(ServerConfig(device="cuda"), backend=backend).backend.window == 0.004
    assert LivemotionServer(ServerConfig(batch_window=0.01), backend=backend).backend.window == 0.01
