"""The learned mouth in the frame: the mouth generator (``engines.mouth``) redraws the edited
frame's mouth crop, and its output is laid back where its attention asks for it.

``LearnedMouth`` keeps a reference of the person's own open mouth from the live stream (the most
open mouth of the last few seconds, before any edit), so the generator sees their teeth and lips.
Pixels the generator leaves alone (attention 1) keep their bytes; outside the mouth crop nothing
changes.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import cv2
import numpy as np
import torch

from ..engines.backends import build_spec, onnx_session
from ..engines.mouth import SIZE, MouthGenerator, lip_shape, load_mouth_model, mouth_onnx, mouth_tensorrt
from ..errors import InvalidRequest
from ..face.alignment import align_mouth
from ..face.canonical import canonical_landmarks, inner_lip_gap
from ..types import FaceTrack
from .compositing import pixel_box

_REFERENCE_FRAMES = 90  # the reference is the most open mouth of the last ~3 s of the live stream
_EDGE = 4  # pixels over which the pasted crop fades out at its border, so no seam shows


def _border_taper(size: int, edge: int = _EDGE) -> np.ndarray:
    """(size, size) float32: 1 inside, falling to 0 over ``edge`` pixels at the crop's border."""
    ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / edge, 0.0, 1.0).astype(np.float32)
    return np.minimum(ramp[:, None], ramp[None, :])


MOUTH_BACKENDS = ("torch", "onnxruntime", "tensorrt")


class LearnedMouth:
    """Redraws the mouth of edited frames with a trained generator (``model``: a model or its file),
    run by torch (CPU) or, with ``backend="onnxruntime"``, exported to ONNX in memory and run by
    ONNX Runtime (what users get by default on a CPU; the same pixels within 2 levels), or with
    ``"tensorrt"`` built into a cached TensorRT plan (an NVIDIA GPU; recipe ``engines/mouth.toml``).
    ``exported``: the model's ONNX file when the caller has exported it already (``export_mouth_onnx``)."""

    def __init__(self, model: MouthGenerator | str | Path, backend: str = "torch", exported: Path | None = None):
        self.model = load_mouth_model(model)[0] if isinstance(model, (str, Path)) else model.eval()
        if backend not in MOUTH_BACKENDS:
            raise InvalidRequest(f"the learned mouth runs on {', '.join(MOUTH_BACKENDS)}, not {backend!r}")
        self._session = onnx_session(exported or mouth_onnx(self.model)) if backend == "onnxruntime" else None
        self.plan = mouth_tensorrt(self.model, exported=exported) if backend == "tensorrt" else None
        names = build_spec("mouth")["onnx"]  # the exported model's inputs and outputs (``engines/mouth.toml``)
        self._inputs, self._outputs = tuple(names["inputs"]), tuple(names["outputs"])
        self._recent: deque[tuple[float, np.ndarray]] = deque(maxlen=_REFERENCE_FRAMES)
        self._taper = _border_taper(SIZE)

    def draw(self, warped: np.ndarray, shape: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The generator on one crop: (SIZE, SIZE, 3) colour in 0..1 and (SIZE, SIZE) attention."""
        inputs = [np.ascontiguousarray(x[None], dtype=np.float32) for x in (
            warped.transpose(2, 0, 1) / 255.0, shape, reference.transpose(2, 0, 1) / 255.0)]
        if self._session is not None:
            output, attention = self._session.run(None, dict(zip(self._inputs, inputs)))
        elif self.plan is not None:
            with self.plan.lock:  # its device buffers are reused: copy out before the next call
                drawn = self.plan.run(dict(zip(self._inputs, map(torch.from_numpy, inputs))))
                output, attention = (drawn[name].cpu().numpy() for name in self._outputs)
        else:
            with torch.inference_mode():
                output, attention = (t.numpy() for t in self.model(*map(torch.from_numpy, inputs)))
        return output[0].transpose(1, 2, 0), attention[0, 0]

    def observe(self, image: np.ndarray, track: FaceTrack) -> None:
        """Remember this live frame's mouth (before any edit), for the reference."""
        crop = align_mouth(track, SIZE)
        gap = float(inner_lip_gap(canonical_landmarks(track)))
        self._recent.append((gap, cv2.warpAffine(image, crop.to_crop, (SIZE, SIZE), flags=cv2.INTER_AREA,
                                                 borderMode=cv2.BORDER_REFLECT101)))

    @property
    def reference(self) -> np.ndarray | None:
        """(SIZE, SIZE, 3) uint8 the most open mouth seen lately, or None before any frame."""
        return max(self._recent, key=lambda item: item[0])[1] if self._recent else None

    def __call__(self, edited: np.ndarray, track: FaceTrack, target: np.ndarray) -> np.ndarray:
        """``edited`` (H, W, 3) uint8 with its mouth redrawn for the lips at ``target`` (NUM_LANDMARKS, 2)
        frame pixels; the live ``track`` places the crop."""
        crop = align_mouth(track, SIZE)
        warped = cv2.warpAffine(edited, crop.to_crop, (SIZE, SIZE), flags=cv2.INTER_AREA,
                                borderMode=cv2.BORDER_REFLECT101)
        remembered = self.reference
        reference = remembered if remembered is not None else warped
        output, attention = self.draw(warped, lip_shape(crop.points_to_crop(target[:, :2])), reference)
        drawn = (output * 255.0).clip(0, 255).astype(np.float32)
        weight = (1.0 - attention) * self._taper  # where the generator's own colour shows
        return _paste(edited, drawn, weight, crop.to_crop)


def _paste(frame: np.ndarray, drawn: np.ndarray, weight: np.ndarray, to_crop: np.ndarray) -> np.ndarray:
    """``frame`` with ``drawn`` (crop pixels) blended in by ``weight`` (crop pixels, 0..1), mapped
    back through ``to_crop``; pixels where the weight is under 1/255 keep their bytes."""
    size = drawn.shape[0]
    corners = cv2.transform(np.array([[[0, 0], [size, 0], [0, size], [size, size]]], np.float32),
                            cv2.invertAffineTransform(to_crop))[0]
    found = pixel_box(corners, 0, 0, frame.shape)
    if found is None:
        return frame
    x0, y0, x1, y1 = found
    shifted = to_crop.copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)  # box pixel (0, 0) is frame pixel (x0, y0)
    box = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    colour = cv2.warpAffine(drawn, shifted, box, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(weight.astype(np.float32), shifted, box, flags=flags, borderValue=0.0)
    region = frame[y0:y1, x0:x1].astype(np.float32)
    blended = region + alpha[..., None] * (colour - region)
    out = frame.copy()
    changed = alpha >= 1.0 / 255.0
    out[y0:y1, x0:x1][changed] = np.round(blended[changed]).clip(0, 255).astype(np.uint8)
    return out
