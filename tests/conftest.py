"""Shared fixtures. Inputs are made from the astronaut portrait scikit-image ships, or by our own code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livemotion.engines.backends import EngineBackend, create_backend
from livemotion.expression.controller import ExpressionRequest
from livemotion.face.tracking import FaceTracker
from livemotion.io.demo import portrait
from livemotion.io.sinks import open_sink
from livemotion.io.sources import DemoSource
from livemotion.runtime.pipeline import build_pipeline

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


@pytest.fixture(autouse=True)
def private_user_dirs(tmp_path_factory, monkeypatch):
    """Each test gets empty user data and config folders: profiles, presets and remembered
    settings never leak between tests, nor into (or from) the real user's."""
    base = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("LIVEMOTION_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("LIVEMOTION_CONFIG_DIR", str(base / "config"))
    return base


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
def astronaut_track(astronaut, still_tracker):
    """The astronaut portrait, tracked as a still."""
    return still_tracker.track(astronaut)


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


# Made-up labelled clips: the demo's talking astronaut, neutral, and edited with one AU set per
# emotion by livemotion's own editor. The builder must recover what each edit did.
_MADE_UP = {"happy": {"12": 1.0}, "sad": {"15": 1.0}, "angry": {"4": 1.0}, "surprised": {"1": 1.0, "2": 1.0},
            "fearful": {"20": 1.0}, "disgusted": {"9": 1.0}, "contemptuous": {"R12": 1.0}}


def made_up_clip(path: Path, aus: dict[str, float] | None, frames: int = 16) -> Path:
    """The demo's talking astronaut at 320x240, 30 fps, with ``aus`` held by livemotion's own editor
    (None: as she is)."""
    sink = open_sink(str(path), (320, 240), 30.0)
    request = ExpressionRequest("neutral", 1.0, aus or {}, active=True)
    with build_pipeline(request, edit=aus is not None, backend="torch", max_faces=1, fade_step=1.0,
                        transition=0.0) as pipeline:
        for frame in DemoSource(size=(320, 240), frames=frames):
            sink.write(pipeline.process(frame).output)
    sink.close()
    return path


@pytest.fixture(scope="session")
def made_up_clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    return [made_up_clip(folder / f"astro_{emotion}.mp4", aus) for emotion, aus in {"neutral": None, **_MADE_UP}.items()]
