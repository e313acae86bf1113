"""Lattice operators of METHOD.md §2 and §2b on (..., H, W) arrays, numpy or torch alike.

D_h is the SUM of the two centred first differences (a scalar field, the paper's
definition); Lap_h is the 5-point Laplacian; ``one_sided`` gives the backward and
forward sums p-, p+ of Osher-Sethian's upwind form. The ghost cells outside the image
follow ``boundary`` (``names.BOUNDARIES``): "zero" (the paper's: 0 in the ghosts) or
"reflect" (zero flux: a ghost holds its boundary pixel's value). Unknowns are stored
row-major: k = i*W + j. The same code runs on numpy arrays (the per-channel drivers) and
torch tensors (the batched engine), so both discretise alike by construction.
"""
from __future__ import annotations

import numpy as np

from fpscore.names import BOUNDARIES


def zeros_like(u):
    """A zero array of u's shape, dtype and device (numpy or torch)."""
    return np.zeros_like(u) if isinstance(u, np.ndarray) else u.new_zeros(u.shape)


def check_boundary(boundary: str) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary: unknown value {boundary!r}, expected one of {', '.join(BOUNDARIES)}")
    return boundary


def _as_field(u):
    if isinstance(u, np.ndarray) or not hasattr(u, "new_zeros"):
        u = np.asarray(u, dtype=np.float64)
    if u.ndim < 2:
        raise ValueError(f"expected an array (..., H, W), got shape {tuple(u.shape)}")
    return u


def shifted_sums(u, boundary: str):
    """(u_{i+1,j} + u_{i,j+1}, u_{i-1,j} + u_{i,j-1}): the forward and backward neighbour sums,
    with the ghost cells of ``boundary``; in-place shifted adds (no padded copy)."""
    u = _as_field(u)
    fwd, bwd = zeros_like(u), zeros_like(u)
    fwd[..., :-1, :] += u[..., 1:, :]
    fwd[..., :, :-1] += u[..., :, 1:]
    bwd[..., 1:, :] += u[..., :-1, :]
    bwd[..., :, 1:] += u[..., :, :-1]
    if check_boundary(boundary) == "reflect":
        fwd[..., -1, :] += u[..., -1, :]
        fwd[..., :, -1] += u[..., :, -1]
        bwd[..., 0, :] += u[..., 0, :]
        bwd[..., :, 0] += u[..., :, 0]
    return fwd, bwd


def d_h(u, h: float, *, boundary: str):
    """(D_h u)_ij = (u_{i+1,j} - u_{i-1,j} + u_{i,j+1} - u_{i,j-1}) / (2h)."""
    fwd, bwd = shifted_sums(u, boundary)
    fwd -= bwd
    fwd *= 1.0 / (2.0 * h)
    return fwd


def lap_h(u, h: float, *, boundary: str):
    """(Lap_h u)_ij = (u_{i+1,j} + u_{i-1,j} + u_{i,j+1} + u_{i,j-1} - 4 u_ij) / h^2."""
    u = _as_field(u)
    fwd, bwd = shifted_sums(u, boundary)
    fwd += bwd
    fwd -= 4.0 * u
    fwd *= 1.0 / (h * h)
    return fwd


def one_sided(u, h: float, *, boundary: str):
    """(p-, p+) = ((2 u_ij - u_{i-1,j} - u_{i,j-1}) / h, (u_{i+1,j} + u_{i,j+1} - 2 u_ij) / h)."""
    u = _as_field(u)
    fwd, bwd = shifted_sums(u, boundary)
    p_minus = (2.0 * u - bwd) / h
    p_plus = (fwd - 2.0 * u) / h
    return p_minus, p_plus
