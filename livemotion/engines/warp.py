"""The geometric engine: landmark motion -> a smooth backward flow on a coarse lattice.

Needs no trained weights. Plain tensor ops only (no Python loops over pixels or points), so it
exports to ONNX and runs under ONNX Runtime and TensorRT. It returns the flow, not pixels: the
one resampling of the original frame happens in the compositor, at the frame's own resolution.
"""

from __future__ import annotations

import torch

from ..face.flow import backward_flow, border_points
from .registry import register_engine


@register_engine("warp")
class WarpEngine(torch.nn.Module):
    """The backward flow that moves a face's control points, on a coarse lattice over its aligned crop.

    forward(source (B, N, 2), target (B, N, 2) crop pixels) -> flow (B, 2, G, G) crop pixels

    ``flow[:, :, i, j]`` is where the output pixel at lattice point (row i, column j) takes its
    content from, relative to itself; lattice point (i, j) sits at crop pixel
    (j, i) * (size - 1) / (grid - 1). The engine never touches pixels: the compositor upsamples
    this smooth field to the face's region of the full frame and resamples the original pixels
    there, once (``render.compositing.warp_face``), so the edit adds no blur at any face size.
    The crop border is pinned, so the flow is zero there.

    The kernel (sigma 0.025 of the crop, about 1/10 IOD) and four corrections deliver 0.96 of the
    asked motion at the control points of real edits, where a kernel of 0.035 with two delivered
    0.90: what falls short is short-distance motion, a lid narrowing between brow and cheek or a
    lip moving against its neighbour. A lip that falls short of where the mouth's outline is
    drawn shows the fill of the opening as a dark arc across it (``render.compositing``).
    """

    pinned: torch.Tensor

    def __init__(self, size: int = 256, grid: int = 48, sigma: float = 0.025, refinements: int = 4):
        super().__init__()
        self.size, self.grid = size, grid  # 48: a lattice step of 1/12 IOD, finer than the kernel
        self.sigma_px, self.refinements = sigma * size, refinements
        self.register_buffer("pinned", border_points(size), persistent=False)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) source and target control points, crop pixels -> (B, 2, grid, grid) backward flow, crop pixels."""
        pinned = self.pinned[None].expand(source.shape[0], -1, -1).to(source.dtype)
        return backward_flow(torch.cat([source, pinned], 1), torch.cat([target, pinned], 1),
                             self.size, self.grid, self.sigma_px, self.refinements)


@register_engine("warp-fine")
class FineWarpEngine(WarpEngine):
    """``WarpEngine`` on a lattice twice as fine, with a narrower kernel and more corrections: it
    delivers more of a motion that differs over a short distance (an eyelid closing between the
    brow and the cheek: a blink reaches about 0.6 of the asked closure instead of 0.1), at about
    1.2x the cost. It serves offline work (``animate``); as the live engine it measured no better
    on the profiles' table (docs/expressions.md)."""

    def __init__(self, size: int = 256):
        super().__init__(size, grid=64, sigma=0.02, refinements=8)
