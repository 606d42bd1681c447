"""The mouth generator: a small U-Net that redraws the mouth region the warp cannot draw (lips,
teeth, the mouth's interior), trained by the project itself (``livemotion train-mouth``).

It works on the mouth crop (``face.alignment.align_mouth``, ``SIZE`` pixels, 1.25 IODs wide):

    forward(warped (B, 3, S, S), shape (B, 2, S, S), reference (B, 3, S, S)), all 0..1
        -> (output (B, 3, S, S), attention (B, 1, S, S))

- ``warped``: the frame after the warp, in the mouth crop (what geometry alone draws);
- ``shape``: the target lip shape, rasterised: the outer lips' area and the inner opening (``lip_shape``);
- ``reference``: the same person's open mouth (teeth where they show), from the stream or a profile.

Like GANimation, it draws a colour image and an attention mask and keeps the warped pixels where
the attention is 1: ``output = attention * warped + (1 - attention) * colour`` (``compose``). So
pixels it does not need stay as the warp drew them, and attention 1 gives the input back.
"""

from __future__ import annotations

import hashlib
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import InvalidRequest
from ..face.mesh import INNER_LIP_CONTOUR, OUTER_LIP_CONTOUR
from .backends import TensorRTPlan, build_spec, cache_dir, require_tensorrt, write_cached
from .registry import register_engine

SIZE = 64  # the mouth crop's side in pixels: about 50 pixels per IOD, the lips ~40 pixels wide
MODEL_VERSION = 1


def compose(warped: torch.Tensor, colour: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """``attention * warped + (1 - attention) * colour``: (B, 3, S, S), attention (B, 1, S, S) in 0..1."""
    return attention * warped + (1.0 - attention) * colour


def lip_shape(points: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(2, size, size) float32 0..1: the outer lips' area and the inner opening of landmarks
    ``points`` (NUM_LANDMARKS, 2) given in mouth-crop pixels, softened by a pixel."""
    layers = []
    for contour in (OUTER_LIP_CONTOUR, INNER_LIP_CONTOUR):
        mask = np.zeros((size, size), np.float32)
        cv2.fillPoly(mask, [np.round(points[list(contour)] * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
        layers.append(cv2.GaussianBlur(mask, (0, 0), 0.7))
    return np.stack(layers)


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.GroupNorm(4, outputs), nn.SiLU(),
                         nn.Conv2d(outputs, outputs, 3, padding=1), nn.GroupNorm(4, outputs), nn.SiLU())


@register_engine("mouth")
class MouthGenerator(nn.Module):
    """A three-level U-Net (``base`` channels at full size, doubling per level) over the mouth crop.
    ~110 k parameters at base 16: small enough to train on two CPU cores and to run per frame."""

    def __init__(self, size: int = SIZE, base: int = 16):
        super().__init__()
        self.size, self.base = size, base
        self.down1, self.down2, self.down3 = _block(8, base), _block(base, 2 * base), _block(2 * base, 4 * base)
        self.pool = nn.AvgPool2d(2)
        self.up2, self.up1 = _block(6 * base, 2 * base), _block(3 * base, base)
        self.head = nn.Conv2d(base, 4, 1)
        nn.init.zeros_(self.head.weight)
        # Untrained, it keeps the warped pixels (attention ~0.95 everywhere) and learns where not to.
        self.head.bias = nn.Parameter(torch.tensor([0.0, 0.0, 0.0, 3.0]))

    def forward(self, warped: torch.Tensor, shape: torch.Tensor,
                reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, attention); see the module's text for the shapes."""
        x1 = self.down1(torch.cat([warped, shape, reference], 1))
        x2 = self.down2(self.pool(x1))
        x3 = self.down3(self.pool(x2))
        y2 = self.up2(torch.cat([nn.functional.interpolate(x3, scale_factor=2.0, mode="nearest"), x2], 1))
        y1 = self.up1(torch.cat([nn.functional.interpolate(y2, scale_factor=2.0, mode="nearest"), x1], 1))
        head = self.head(y1)
        colour, attention = torch.sigmoid(head[:, :3]), torch.sigmoid(head[:, 3:])
        return compose(warped, colour, attention), attention


def mouth_onnx(model: MouthGenerator) -> bytes:
    """``model`` as an ONNX model (dynamic batch; names and opset from ``engines/mouth.toml``) for
    ONNX Runtime or a TensorRT build."""
    spec = build_spec("mouth")["onnx"]
    size = model.size
    example = (torch.zeros(1, 3, size, size), torch.zeros(1, 2, size, size), torch.zeros(1, 3, size, size))
    names = spec["inputs"] + spec["outputs"]
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        path = Path(folder) / "mouth.onnx"
        torch.onnx.export(model.eval(), example, str(path), input_names=spec["inputs"], output_names=spec["outputs"],
                          dynamic_axes={name: {0: "batch"} for name in names}, opset_version=spec["opset"],
                          dynamo=False)
        return path.read_bytes()


def export_mouth_onnx(model: MouthGenerator) -> Path:
    """``mouth_onnx(model)`` as a file in the engines' cache (``backends.cache_dir``), named by its
    content: what a TensorRT build reads."""
    exported = mouth_onnx(model)
    path = cache_dir() / f"mouth-{model.size}-{hashlib.sha256(exported).hexdigest()[:12]}.onnx"
    if not path.is_file():
        write_cached(path, lambda partial: partial.write_bytes(exported))
    return path


def mouth_tensorrt(model: MouthGenerator, device: str = "cuda", exported: Path | None = None) -> TensorRTPlan:
    """``model`` built into a cached TensorRT plan (``backends.TensorRTPlan``, recipe
    ``engines/mouth.toml``: fp32, its fp16 not yet measured), from ``exported`` when the caller has
    already exported it (``export_mouth_onnx``); ``BackendUnavailable`` without TensorRT 10+ and an
    NVIDIA GPU."""
    require_tensorrt()  # say what is missing before exporting anything
    spec, s = build_spec("mouth"), model.size
    channels = {"warped": 3, "shape": 2, "reference": 3, "output": 3, "attention": 1}
    shapes = {name: (channels[name], s, s) for name in spec["onnx"]["inputs"] + spec["onnx"]["outputs"]}
    return TensorRTPlan("mouth", exported or export_mouth_onnx(model), shapes, spec["onnx"]["inputs"], s,
                        spec["tensorrt"], False, device)


def shipped_mouth_model() -> Path:
    """The mouth generator that ships with livemotion: trained by ``livemotion train-mouth`` on the
    clips named, with their licences, in ``mouth-clips.txt`` beside it."""
    return Path(str(resources.files("livemotion.engines") / "mouth.pt"))


def save_mouth_model(model: MouthGenerator, path: str | Path, trained_on: list[str], steps: int) -> None:
    """The weights and what made them, as one torch file (small: package data when shipped)."""
    torch.save({"version": MODEL_VERSION, "size": model.size, "base": model.base, "steps": steps,
                "trained_on": trained_on, "weights": model.state_dict()}, str(path))


def load_mouth_model(path: str | Path) -> tuple[MouthGenerator, dict[str, Any]]:
    """The model in ``path`` (eval mode) and its record (steps, clips); ``InvalidRequest`` in one
    line for anything that is not a mouth model of this version."""
    retrain = "train one with `livemotion train-mouth --videos CLIPS... --out FILE`"
    try:
        record = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(record, dict) or record.get("version") != MODEL_VERSION:
            raise InvalidRequest(f"{path} is not a livemotion mouth model of this version: {retrain}")
        model = MouthGenerator(int(record["size"]), int(record["base"]))
        model.load_state_dict(record["weights"])
    except InvalidRequest:
        raise
    except FileNotFoundError:
        raise InvalidRequest(f"no mouth model at {path}: {retrain}") from None
    except Exception as error:  # a truncated file, another pickle, other shapes: all one answer
        raise InvalidRequest(f"{path} is not a livemotion mouth model ({type(error).__name__}): {retrain}") from None
    return model.eval(), {key: value for key, value in record.items() if key != "weights"}
