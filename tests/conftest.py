"""Shared fixtures. Inputs are made from the astronaut portrait scikit-image ships, or by our own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livemotion.engines.backends import EngineBackend, create_backend
from livemotion.face.tracking import FaceTracker
from livemotion.io.demo import portrait
from livemotion.io.sinks import open_sink
from livemotion.io.sources import DemoSource

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return portrait()


@pytest.fixture(scope="session")
def torch_backend() -> EngineBackend:
    """The default engine on the default backend; one instance serves every editor, as in the server."""
    return create_backend("torch")


@pytest.fixture
def tracker():
    with FaceTracker() as t:
        yield t


@pytest.fixture(scope="session")
def still_tracker():
    """Image mode: every call is independent, for tests on unrelated stills."""
    with FaceTracker(static_images=True) as t:
        yield t


@pytest.fixture(scope="session")
def demo_video(tmp_path_factory) -> Path:
    """40 frames of the demo clip at 25 fps written as H.264 by our own sink."""
    path = tmp_path_factory.mktemp("media") / "demo25.mp4"
    source = DemoSource(fps=25.0, frames=40)
    sink = open_sink(str(path), source.size, source.fps)
    for frame in source:
        sink.write(frame)
    sink.close()
    return path
