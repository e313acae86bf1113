"""Seed-subspace helpers of the cross-matrix Krylov projection (METHOD.md §6).

``compress_basis`` turns the vectors met while solving a seed into an
orthonormal rank-r basis; ``projected_guess`` gives the minimal-residual or
Galerkin initial guess x0 = V y of a target system with its projection residual.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from fpscore.names import GUESS_METHODS
from fpscore.solvers.base import vnorm


def compress_basis(vectors: np.ndarray, rank: int, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis (n, r') of the dominant span of the columns of ``vectors`` (n, p), r' <= rank.

    Columns are scaled to unit norm first (so a solution and a small Krylov
    vector weigh alike), then a thin SVD keeps the ``rank`` leading left
    singular vectors whose singular value exceeds rtol * the largest; the
    result is Fortran-ordered so PETSc can wrap it as a dense Mat.
    """
    vecs = np.asarray(vectors, dtype=np.float64)
    if vecs.ndim != 2:
        raise ValueError(f"vectors: expected a 2-D array (n, p), got shape {vecs.shape}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank: expected a positive integer, got {rank!r}")
    norms = np.linalg.norm(vecs, axis=0)
    keep = norms > 0
    if not np.any(keep):
        return np.zeros((vecs.shape[0], 0), order="F")
    scaled = vecs[:, keep] / norms[keep]
    u, s, _ = sla.svd(scaled, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    r = int(min(rank, np.count_nonzero(s > rtol * s[0])))
    return np.asfortranarray(u[:, :r])


def apply_operator(A, V: np.ndarray) -> np.ndarray:
    """A @ V for a PETSc Mat or anything with ``@`` (SciPy sparse, NumPy), as an (n, r) array."""
    V = np.asarray(V, dtype=np.float64)
    if V.shape[1] == 0:
        return np.zeros_like(V, order="F")
    if hasattr(A, "matMult"):  # PETSc Mat: one sparse x dense product
        from petsc4py import PETSc

        Vd = PETSc.Mat().createDense(V.shape, array=np.asfortranarray(V), comm=PETSc.COMM_SELF)
        AVd = A.matMult(Vd)
        AV = np.array(AVd.getDenseArray(), order="F", copy=True)
        AVd.destroy()
        Vd.destroy()
        return AV
    return np.asfortranarray(A @ V)


def least_squares(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """argmin_y ||b - M y||_2 for a thin M (n, p), p small, in O(n p^2) with one BLAS product.

    Normal equations (see ``solve_normal``); cheaper than a Householder QR of
    M, which dominated the solve time in profiles.
    """
    return solve_normal(M.T @ M, M.T @ b)


def solve_normal(G: np.ndarray, c: np.ndarray, reg: float = 1e-14) -> np.ndarray:
    """y with G y = c for a Gram matrix G = M^T M, c = M^T b, M thin.

    The columns are scaled to unit norm and a tiny ridge ``reg`` is added to the
    scaled diagonal, so (numerically) dependent columns do no harm: the answer is
    then the least-squares solution up to a relative perturbation of about reg,
    and the Krylov solve that follows still reaches rtol. One LAPACK solve; the
    price of the normal equations (a squared condition number) is what the ridge
    contains.
    """
    d = np.sqrt(np.diagonal(G))
    scale = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    Gs = G * scale[:, None] * scale[None, :]
    i = np.arange(G.shape[0])
    Gs[i, i] = np.where(d > 0, Gs[i, i] + reg, 1.0)  # a zero column gets y = 0
    return np.linalg.solve(Gs, c * scale) * scale


@dataclass
class Projection:
    """A projected initial guess x0 = V y and its relative residual ||b - A x0|| / ||b||."""

    x0: np.ndarray
    y: np.ndarray
    residual: float


def projected_guess(A, b: np.ndarray, V: np.ndarray, method: str = "minres", AV: np.ndarray | None = None) -> Projection:
    """Initial guess for A x = b from the subspace span(V) (METHOD.md §6).

    minres:   y = argmin ||b - A V y||_2 (normal equations with a cutoff, see least_squares);
    galerkin: y = (V^T A V)^{-1} V^T b (Chan and Ng 1999).
    ``AV`` may be passed when already computed (e.g. by the preconditioner).
    """
    if method not in GUESS_METHODS:
        raise ValueError(f"guess method: unknown value {method!r}, expected one of {GUESS_METHODS}")
    b = np.asarray(b, dtype=np.float64).ravel()
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] != b.size:
        raise ValueError(f"V: expected shape ({b.size}, r), got {V.shape}")
    bnorm = vnorm(b)
    r = V.shape[1]
    if r == 0 or bnorm == 0.0:
        return Projection(np.zeros_like(b), np.zeros(r), 1.0 if bnorm > 0 else 0.0)
    if AV is None:
        AV = apply_operator(A, V)
    if method == "minres":
        y = least_squares(AV, b)
    else:
        E = V.T @ AV
        try:
            y = sla.solve(E, V.T @ b, check_finite=False)
        except sla.LinAlgError as exc:
            raise ValueError(f"galerkin projection: V^T A V ({r}x{r}) is singular") from exc
    return Projection(V @ y, y, vnorm(b - AV @ y) / bnorm)


def relative_residual_norm(G: np.ndarray, c: np.ndarray, bnorm: float) -> float:
    """min_y ||b - M y|| / ||b|| from the Gram data G = M^T M, c = M^T b (||b - My||^2 =
    ||b||^2 - c^T y at the least-squares y). Rounding limits it to about 1e-8 relative:
    a diagnostic, not a convergence test."""
    if G.shape[0] == 0 or bnorm == 0.0:
        return 1.0 if bnorm > 0 else 0.0
    y = solve_normal(G, c)
    return math.sqrt(max(bnorm * bnorm - float(c @ y), 0.0)) / bnorm
