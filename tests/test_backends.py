"""Backends: torch and ONNX Runtime agree, the ONNX graph is TensorRT-buildable, batches serve streams."""

import inspect
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from livemotion.engines.backends import (
    NUM_POINTS,
    TorchBackend,
    create_backend,
    export_onnx,
    plan_key,
    unsupported_tensorrt_ops,
)
from livemotion.errors import BackendUnavailable, InvalidRequest
from livemotion.expression.controller import ExpressionController, ExpressionRequest
from livemotion.render.editor import ExpressionEditor
from livemotion.types import Frame


def moves(batch: int, seed: int = 0):
    """Control points with a small, face-like motion."""
    rng = np.random.default_rng(seed)
    source = rng.uniform(60, 196, (batch, NUM_POINTS, 2)).astype(np.float32)
    target = source + rng.normal(0, 2.5, source.shape).astype(np.float32)
    return source, target


def test_onnxruntime_matches_torch_within_a_hundredth_of_a_pixel():
    source, target = moves(3)
    reference = TorchBackend()(source, target)
    flow = create_backend("onnxruntime")(source, target)
    assert np.abs(flow - reference).max() < 0.01
    assert np.abs(reference).max() > 1.0  # and the points really moved


def test_whole_frames_agree_across_backends(astronaut):
    from livemotion.face.tracking import FaceTracker

    with FaceTracker(static_images=True) as tracker:
        track = tracker.track(astronaut)
    outputs = []
    for backend in ("torch", "onnxruntime"):
        controller = ExpressionController(ExpressionRequest("sad", active=True), fade_step=1.0)
        editor = ExpressionEditor(create_backend(backend), controller)
        outputs.append(editor.edit(Frame(astronaut, 0, Fraction(0), 0.0), track, {}).astype(int))
    # flows agree within 0.01 px; the sharp Lanczos resampling turns that into at most a few levels on edges
    assert np.abs(outputs[0] - outputs[1]).max() <= 3


def test_the_exported_graph_uses_only_tensorrt_operators():
    path = export_onnx("warp", 256)
    assert unsupported_tensorrt_ops(path) == set()
    assert export_onnx("warp", 256) == path  # cached, not re-exported


def test_one_batched_call_serves_several_streams():
    source, target = moves(4, seed=1)
    backend = create_backend("onnxruntime")
    batched = backend(source, target)
    for i in range(4):
        single = backend(source[i:i + 1], target[i:i + 1])
        np.testing.assert_allclose(batched[i], single[0], atol=1e-3)


def test_plan_cache_key_changes_with_what_invalidates_a_plan(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"model-a")
    base = dict(gpu_name="NVIDIA H100", capability=(9, 0), trt_version="10.9.0", fp16=True, size=256, max_batch=16)
    key = plan_key(onnx, **base)
    for change in (dict(gpu_name="NVIDIA L4"), dict(capability=(8, 9)), dict(trt_version="10.10.0"),
                   dict(fp16=False), dict(size=512), dict(max_batch=8)):
        assert plan_key(onnx, **(base | change)) != key
    onnx.write_bytes(b"model-b")
    assert plan_key(onnx, **base) != key


def test_unknown_backend_and_missing_gpu_say_what_to_do():
    with pytest.raises(InvalidRequest):
        create_backend("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable) as raised:
            create_backend("torch", device="cuda")
        assert isinstance(raised.value, RuntimeError)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA; this machine has none")
def test_tensorrt_builds_caches_and_matches_torch():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install -e '.[tensorrt]')")
    source, target = moves(2)
    reference = TorchBackend(device="cuda")(source, target)
    for fp16, tolerance in ((False, 0.01), (True, 0.1)):  # pixels of flow
        backend = create_backend("tensorrt", device="cuda", fp16=fp16)
        assert backend.plan_path.is_file()
        assert np.abs(backend(source, target) - reference).max() <= tolerance


def test_the_cached_export_follows_the_flow_code_the_engine_calls():
    """A cached ONNX file is reused only while the code it came from is unchanged: that is the
    engine's module and the project's functions it calls (the warp's flow lives in face/flow.py)."""
    from livemotion.engines.backends import engine_sources
    from livemotion.engines.warp import WarpEngine
    from livemotion.face import flow

    sources = engine_sources(WarpEngine)
    assert Path(flow.__file__) in sources and Path(inspect.getfile(WarpEngine)) in sources
