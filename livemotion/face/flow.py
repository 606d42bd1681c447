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


def _axis_weights(axis: torch.Tensor, anchors: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, G, N) the Gaussian's factor along one axis, exp(-(t - a)^2 / 2 sigma^2), of ``anchors``
    (B, N) coordinates seen from the lattice's coordinates ``axis`` (G,). Each factor is clamped at
    exp(-30), so a product of two stays far above float32's denormals (exp(-60) ~ 1e-26)."""
    scale = (0.5**0.5) / sigma
    distance = (axis[None, :, None] - anchors[:, None, :]) * scale
    return torch.exp((-(distance * distance)).clamp(min=-30.0))


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

    On the lattice the Gaussian separates, exp(-(dx^2 + dy^2)) = exp(-dx^2) exp(-dy^2), so the
    blend is two small matrix products over (grid, N) factors: 2 * grid * N exponentials instead
    of grid^2 * N (on the 2-core VM the warp engine's call for two faces' flows, 48 x 48 with 417
    points: ~1.4 ms, where the grid^2 * N form took ~5 ms with torch).
    """
    still = torch.exp(torch.tensor(-0.5 * 3.0**2, dtype=source.dtype))  # a still point 3 sigma away
    motion = source - target  # (B, N, 2)
    at_points = _gaussian_weights(target, target, sigma)
    at_points = at_points / (at_points.sum(-1, keepdim=True) + still)
    coefficients = motion
    for _ in range(refinements):
        coefficients = coefficients + (motion - at_points @ coefficients)
    axis = torch.linspace(0, size - 1, grid, dtype=source.dtype, device=source.device)
    across, down = _axis_weights(axis, target[..., 0], sigma), _axis_weights(axis, target[..., 1], sigma)  # (B, G, N)
    # Rows: the x flow, the y flow and the blend's total weight, each down[i, n] * value[n], summed
    # against across[j, n]: (B, 3 * G, N) @ (B, N, G).
    values = torch.cat([coefficients, torch.ones_like(coefficients[..., :1])], -1)  # (B, N, 3)
    rows = (values.transpose(1, 2)[:, :, None, :] * down[:, None]).reshape(down.shape[0], 3 * grid, -1)
    blend = (rows @ across.transpose(1, 2)).reshape(-1, 3, grid, grid)
    return blend[:, :2] / (blend[:, 2:] + still)


def pinned_flow(source: torch.Tensor, target: torch.Tensor, size: int, grid: int, sigma: float,
                refinements: int) -> torch.Tensor:
    """``backward_flow`` with the crop border pinned (``border_points``): (B, N, 2) -> (B, 2, grid, grid).
    ``sigma`` is in pixels. What ``engines.warp.WarpEngine`` computes, as a function."""
    pinned = border_points(size)[None].expand(source.shape[0], -1, -1).to(source.dtype)
    return backward_flow(torch.cat([source, pinned], 1), torch.cat([target, pinned], 1), size, grid, sigma, refinements)
