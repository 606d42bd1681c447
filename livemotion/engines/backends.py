"""Engine backends: one interface, three ways to run an engine.

    backend = create_backend("onnxruntime", engine="warp", size=256)
    flow = backend(source, target)      # numpy in, numpy out; batch = faces (and streams)

- ``torch``: the ``nn.Module`` itself (CPU, or CUDA with a CUDA build of torch);
- ``onnxruntime``: the module exported to ONNX (cached), run by ONNX Runtime;
- ``tensorrt``: a TensorRT 10+ plan built from that ONNX, cached per GPU, compute capability,
  TensorRT version, ONNX hash and shapes, run on a CUDA stream with device buffers allocated
  once per batch size (torch CUDA tensors) and no host round trip inside the engine call.

Build specs (recipes) are the ``engines/<name>.toml`` files at the repository's top, installed
with the package as ``livemotion.engines.recipes``. Exported ONNX files and built plans go to the
user's cache directory (``cache_dir()``), never into the package or the repository.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import threading
import tomllib
import warnings
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import platformdirs
import torch

from ..errors import BackendUnavailable, EngineBuildError, InvalidRequest
from ..face.mesh import CONTROL_POINTS, FACE_OVAL
from .registry import available_engines, create_engine

# Control points the editor hands every engine: the steering vertices plus the pinned ring.
NUM_POINTS = len(CONTROL_POINTS) + len(FACE_OVAL)


class EngineBackend(Protocol):
    """Runs an engine: ``backend(source, target)`` with (B, N, 2) float32 control points in crop pixels returns (B, 2, G,
    G) float32 the backward flow on the engine's lattice. One instance may serve many streams."""

    name: str
    size: int  # side of the aligned crop the control points are given in, pixels
    grid: int  # side of the lattice the flow comes back on

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """source/target (B, N, 2) float32 crop pixels -> backward flow (B, 2, G, G) crop pixels."""
        ...


def cache_dir() -> Path:
    """Where exported ONNX files and TensorRT plans are kept: ``$LIVEMOTION_CACHE_DIR``, else the
    user's cache directory (``$XDG_CACHE_HOME/livemotion/engines`` on Linux)."""
    override = os.environ.get("LIVEMOTION_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("livemotion")) / "engines"


def build_spec(engine: str) -> dict[str, Any]:
    """The build recipe of ``engine`` (``engines/<engine>.toml``, shipped as package data)."""
    recipe = resources.files("livemotion.engines.recipes") / f"{engine}.toml"
    if not recipe.is_file():
        with_recipes = sorted(name for name in available_engines()
                              if (resources.files("livemotion.engines.recipes") / f"{name}.toml").is_file())
        raise InvalidRequest(f"no build spec for engine {engine!r}: engines with one are {', '.join(with_recipes)}")
    return tomllib.loads(recipe.read_text())


class TorchBackend:
    """The engine run by torch (CPU or CUDA)."""

    name = "torch"

    def __init__(self, engine: str = "warp", size: int = 256, device: str = "cpu", **_: object):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable("--device cuda needs an NVIDIA GPU and a CUDA build of torch (see README, GPUs).")
        self.device = torch.device(device)
        self.module = create_engine(engine, size=size).to(self.device)
        self.size, self.grid = size, int(cast(int, self.module.grid))

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            flow = self.module(*(torch.as_tensor(a, device=self.device) for a in (source, target)))
        return flow.cpu().numpy()


def engine_sources(engine: type) -> list[Path]:
    """The source files an engine's graph comes from: its own module's, and those of the project's
    functions and classes that module uses (``face.flow`` for the warp), sorted."""
    module = inspect.getmodule(engine)
    used = [value for value in vars(module).values()
            if (inspect.isfunction(value) or inspect.isclass(value)) and value.__module__.startswith("livemotion.")]
    return sorted({Path(inspect.getfile(engine)), *(Path(inspect.getfile(value)) for value in used)})


def export_onnx(engine: str = "warp", size: int = 256) -> Path:
    """Export ``engine`` at crop ``size`` to ONNX (dynamic batch) and return the file (cached in ``cache_dir()``)."""
    spec = build_spec(engine)["onnx"]
    module = create_engine(engine, size=size)
    # re-export only when the engine's code (its module and the project's functions it calls), its
    # spec, the size or torch changed
    source = b"".join(path.read_bytes() for path in engine_sources(type(module)))
    key = hashlib.sha256(source + json.dumps([spec, size, NUM_POINTS, torch.__version__]).encode()).hexdigest()[:12]
    path = cache_dir() / f"{engine}-{size}-{key}.onnx"
    if path.is_file():
        return path
    example = (torch.zeros(1, NUM_POINTS, 2), torch.zeros(1, NUM_POINTS, 2))
    names = spec["inputs"] + spec["outputs"]
    dynamic = {name: {0: "batch"} for name in names} if spec.get("dynamic_batch", True) else None

    def export(partial: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, example, str(partial), input_names=spec["inputs"], output_names=spec["outputs"],
                              dynamic_axes=dynamic, opset_version=spec["opset"], dynamo=False)

    write_cached(path, export)
    return path


def write_cached(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a cache file under a temporary name, then rename it: no half file is ever cached."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    write(partial)
    partial.replace(path)


def onnx_session(model: Path | bytes, device: str = "cpu") -> Any:
    """An ONNX Runtime session for ``model`` (a file or the model's bytes) on ``device``, its worker
    threads told not to spin; ``BackendUnavailable`` when ONNX Runtime (or its GPU build) is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable("the onnxruntime backend needs ONNX Runtime: pip install 'livemotion[onnx]'") from None
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise BackendUnavailable("--device cuda with onnxruntime needs the onnxruntime-gpu package.")
        providers.insert(0, "CUDAExecutionProvider")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # ONNX Runtime's worker threads spin after each call by default, taking the cores the
    # compositor's OpenCV threads need right after (measured: the whole 1080p frame 44 vs 37 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=providers)


class OnnxRuntimeBackend:
    """The engine exported to ONNX and run by ONNX Runtime (its worker threads told not to spin)."""

    name = "onnxruntime"

    def __init__(self, engine: str = "warp", size: int = 256, device: str = "cpu", **_: object):
        self.size, self.grid = size, int(cast(int, create_engine(engine, size=size).grid))
        self.path = export_onnx(engine, size)
        self.session = onnx_session(self.path, device)
        self._inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        feeds = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(self._inputs, (source, target),
                                                                                     strict=True)}
        return self.session.run(None, feeds)[0]


def plan_key(onnx_path: Path, gpu_name: str, capability: tuple[int, int], trt_version: str, fp16: bool,
             size: int, max_batch: int) -> str:
    """Cache key of a TensorRT plan: any change of GPU, TensorRT, model or shapes gives a new plan."""
    fields = {"gpu": gpu_name, "sm": list(capability), "tensorrt": trt_version, "fp16": fp16, "size": size,
              "points": NUM_POINTS, "max_batch": max_batch,
              "onnx": hashlib.sha256(onnx_path.read_bytes()).hexdigest()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def require_tensorrt() -> Any:
    """The ``tensorrt`` module, or ``BackendUnavailable`` saying what is missing (TensorRT 10+, an NVIDIA GPU)."""
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("the tensorrt backend needs TensorRT 10+: pip install 'livemotion[tensorrt]'") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("the tensorrt backend needs an NVIDIA GPU and a CUDA build of torch (README, GPUs).")
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailable(f"TensorRT {trt.__version__} is too old: livemotion needs TensorRT 10 or newer.")
    return trt


class TensorRTPlan:
    """An ONNX model built into a TensorRT plan for this GPU, cached (``plan_key``), and run on a
    CUDA stream with device buffers allocated once per batch size and no host round trip.

    ``shapes`` gives each input's and output's shape without the batch (names as in the ONNX
    model); ``spec`` is the engine's ``[tensorrt]`` recipe. One execution context: callers that
    share a plan take turns (``lock``)."""

    def __init__(self, name: str, onnx_path: Path, shapes: Mapping[str, tuple[int, ...]], inputs: list[str],
                 size: int, spec: dict[str, Any], fp16: bool, device: str = "cuda"):
        trt = require_tensorrt()
        self.shapes, self.inputs = shapes, inputs
        self.fp16, self.max_batch = fp16 and spec.get("fp16_safe", False), int(spec["max_batch"])
        self.device = torch.device(device if device.startswith("cuda") else "cuda")
        props = torch.cuda.get_device_properties(self.device)
        key = plan_key(onnx_path, props.name, (props.major, props.minor), trt.__version__, self.fp16, size,
                       self.max_batch)
        self.plan_path = cache_dir() / f"{name}-{size}-{key}.plan"
        self._logger = trt.Logger(trt.Logger.WARNING)
        if not self.plan_path.is_file():
            plan = self._build(trt, onnx_path, int(spec["workspace_mb"]))
            write_cached(self.plan_path, lambda partial: partial.write_bytes(plan))
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(self.plan_path.read_bytes())
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self.device)
        self._buffers: dict[int, dict[str, torch.Tensor]] = {}
        self.lock = threading.Lock()

    def _build(self, trt: Any, onnx_path: Path, workspace_mb: int) -> bytes:
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineBuildError(f"TensorRT could not parse {onnx_path.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
        if self.fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for name in self.inputs:
            shape = self.shapes[name]
            profile.set_shape(name, (1, *shape), (1, *shape), (self.max_batch, *shape))
        config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineBuildError(f"TensorRT failed to build a plan from {onnx_path.name} (see the log above).")
        return bytes(plan)

    def run(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The plan on ``feeds`` (CUDA or CPU tensors, one per input, same batch); returns every
        input and output as device tensors, valid until the next call with this batch size."""
        batch = next(iter(feeds.values())).shape[0]
        if batch > self.max_batch:
            raise InvalidRequest(f"batch {batch} is over this plan's maximum of {self.max_batch} (engines/*.toml).")
        if batch not in self._buffers:
            self._buffers[batch] = {name: torch.empty((batch, *shape), dtype=torch.float32, device=self.device)
                                    for name, shape in self.shapes.items()}
        io = self._buffers[batch]
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                io[name].copy_(feeds[name], non_blocking=True)
                self.context.set_input_shape(name, tuple(io[name].shape))
            for name, tensor in io.items():
                self.context.set_tensor_address(name, tensor.data_ptr())
            self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return io


class TensorRTBackend:
    """The engine built into a cached TensorRT plan for this GPU (NVIDIA only)."""

    name = "tensorrt"

    def __init__(self, engine: str = "warp", size: int = 256, device: str = "cuda", fp16: bool = True, **_: object):
        require_tensorrt()  # before any export: say what is missing first
        self.size = size
        self.grid = int(cast(int, create_engine(engine, size=size).grid))
        g = self.grid
        self.plan = TensorRTPlan(engine, export_onnx(engine, size),
                                 {"source": (NUM_POINTS, 2), "target": (NUM_POINTS, 2), "flow": (2, g, g)},
                                 ["source", "target"], size, build_spec(engine)["tensorrt"], fp16, device)
        self.plan_path, self.device = self.plan.plan_path, self.plan.device

    def run_on_device(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The engine on CUDA tensors already on the GPU; returns a device tensor (valid until the next call)."""
        return self.plan.run({"source": source, "target": target})["flow"]

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        tensors = [torch.as_tensor(a, dtype=torch.float32).to(self.device, non_blocking=True) for a in (source, target)]
        with self.plan.lock:  # the device buffers are reused: copy the result out before the next call
            return self.run_on_device(*tensors).cpu().numpy()


_BACKENDS: dict[str, Callable[..., EngineBackend]] = {
    "torch": TorchBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "tensorrt": TensorRTBackend,
}
BACKENDS = tuple(_BACKENDS)


def default_backend(device: str = "cpu") -> str:
    """What ``auto`` means: ONNX Runtime on a CPU (the whole pipeline per frame on the 2-core CI
    machine, against torch: 16.9 vs 17.2 ms at 640x480, 24.3 vs 24.9 at 1280x720, 29.6 vs 29.7 at
    1920x1080; docs/benchmarks.md),
    torch on a GPU (the TensorRT backend has not run on a GPU yet, so it is chosen only by name)."""
    if device.startswith("cuda"):
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnxruntime"


def check_device(device: str) -> str:
    """``device`` if it names one (``cpu``, ``cuda``, ``cuda:N``), else ``InvalidRequest`` saying so."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise InvalidRequest(f"unknown device {device!r}: use cpu, cuda or cuda:N (an NVIDIA GPU's index)")
    return device


def create_backend(name: str = "torch", engine: str = "warp", size: int = 256, device: str = "cpu",
                   fp16: bool = False) -> EngineBackend:
    """The engine on a backend: ``torch``, ``onnxruntime``, ``tensorrt``, or ``auto`` (``default_backend``),
    on ``device`` (``cpu``, ``cuda`` or ``cuda:N``; anything else is refused whatever the backend)."""
    check_device(device)
    if name == "auto":
        name = default_backend(device)
    if name not in _BACKENDS:
        raise InvalidRequest(f"unknown backend {name!r}: use one of auto, {', '.join(BACKENDS)}")
    return _BACKENDS[name](engine=engine, size=size, device=device, fp16=fp16)


# ONNX operators this project's engines may use, all supported by TensorRT 10's ONNX parser
# (onnx-tensorrt operator support matrix; GridSample since TensorRT 8.5, 4-D only).
TENSORRT_OPS = frozenset({
    "Add", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Div", "Equal", "Exp", "Expand", "Gather",
    "GridSample", "Less", "MatMul", "Mul", "Neg", "Pow", "ReduceSum", "Reshape", "Resize", "Shape", "Slice",
    "Sqrt", "Sub", "Transpose", "Unsqueeze", "Where", "Max", "Min", "Relu", "Sigmoid", "Conv", "Greater",
    "AveragePool", "InstanceNormalization",  # the mouth generator's pooling and GroupNorm
})


def unsupported_tensorrt_ops(onnx_path: Path) -> set[str]:
    """Operators in ``onnx_path`` outside ``TENSORRT_OPS`` (empty = TensorRT can build it)."""
    import onnx

    model = onnx.load(str(onnx_path))
    return {node.op_type for node in model.graph.node} - TENSORRT_OPS
