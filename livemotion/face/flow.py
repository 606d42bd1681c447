"""The smooth backward flow that carries one set of face points onto another, as plain torch functions.

The warp engine (``engines.warp``) runs it on a face's control points for every frame; the
expression library (``expression.measure``) uses it to carry luminance and shading from one
face's lattice onto another's. Plain tensor ops only (no Python loops over pixels or points), so
it exports to ONNX and runs under ONNX Runtime and TensorRT.
"""

from __future__ import annotations

import torch


def border_points(size: int, per_side: int = 16) -> torch.Tensor:
    """(4 * per_side, 2) points along the crop border, in pixels: pinned so the crop edge never moves."""
    t = torch.linspace(0, size - 1, per_side + 1)[:-1]
    edge = torch.full_like(t, size - 1.0)
    zero = torch.zeros_like(t)
    return torch.cat([torch.stack(p, dim=1) for p in ((t, zero), (edge, t), (edge.flip(0) - t, edge), (zero, edge - t))])


def _gaussian_weights(points: torch.Tensor, anchors: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, P, N) Gaussian weights exp(-|p - a|^2 / 2 sigma^2) of ``anchors`` (B, N, 2) seen from ``points`` (B or 1, P, 2)."""
    scale = (0.5**0.5) / sigma  # work in units where the weight is exp(-distance^2)
    p, a = points * scale, anchors * scale
    # |p - a|^2 = |p|^2 + |a|^2 - 2 p.a in one fused batched matmul, no (B, P, N, 2) difference tensor
    distance2 = torch.baddbmm((p**2).sum(-1)[:, :, None] + (a**2).sum(-1)[:, None, :], p.expand(a.shape[0], -1, -1),
                              a.transpose(1, 2), alpha=-2.0)
    # Clamped before exp: far points would give denormal floats, which are many times slower on CPUs.
    return torch.exp((-distance2).clamp(min=-30.0))


def backward_flow(source: torch.Tensor, target: torch.Tensor, size: int, grid: int, sigma: float,
                  refinements: int = 2) -> torch.Tensor:
    """Backward flow (B, 2, grid, grid) in pixels that carries ``source`` points to ``target``,
    sampled on a ``grid`` x ``grid`` lattice spanning the ``size``-pixel square corner to corner.

    Args:
        source, target: (B, N, 2) control points in crop pixels (x, y). Points that should stay put
            have source == target.
        size: crop side in pixels. grid: side of the coarse lattice the flow is solved on.
        sigma: Gaussian kernel width in pixels.
        refinements: residual-correction passes that make the flow meet the control points.

    The flow is a normalised Gaussian blend of per-point coefficients anchored at the targets,
    padded with one far "still" point so that motion fades to zero away from every control point.
    The coefficients start as the points' backward motion (source - target) and are corrected
    ``refinements`` times by what the blend still misses at the points. The flow is smooth, so a
    bilinear upsampling of the lattice loses nothing visible.
    """
    still = torch.exp(torch.tensor(-0.5 * 3.0**2, dtype=source.dtype))  # a still point 3 sigma away
    motion = source - target  # (B, N, 2)
    at_points = _gaussian_weights(target, target, sigma)
    at_points = at_points / (at_points.sum(-1, keepdim=True) + still)
    coefficients = motion
    for _ in range(refinements):
        coefficients = coefficients + (motion - at_points @ coefficients)
    axis = torch.linspace(0, size - 1, grid, dtype=source.dtype, device=source.device)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    lattice = torch.stack([xx, yy], dim=-1).reshape(1, grid * grid, 2)
    weight = _gaussian_weights(lattice, target, sigma)  # (B, G*G, N)
    flow = (weight @ coefficients) / (weight.sum(-1, keepdim=True) + still)  # (B, G*G, 2)
    return flow.reshape(-1, grid, grid, 2).permute(0, 3, 1, 2)


def pinned_flow(source: torch.Tensor, target: torch.Tensor, size: int, grid: int, sigma: float,
                refinements: int) -> torch.Tensor:
    """``backward_flow`` with the crop border pinned (``border_points``): (B, N, 2) -> (B, 2, grid, grid).
    ``sigma`` is in pixels. What ``engines.warp.WarpEngine`` computes, as a function."""
    pinned = border_points(size)[None].expand(source.shape[0], -1, -1).to(source.dtype)
    return backward_flow(torch.cat([source, pinned], 1), torch.cat([target, pinned], 1), size, grid, sigma, refinements)
