"""Cross-matrix Krylov projection (METHOD.md §6): seed subspaces reused for target systems.

Three pieces, each usable alone:

* subspace helpers: ``compress_basis`` (orthonormal rank-r basis of vectors met
  while solving a seed) and ``projected_guess`` (minimal-residual or Galerkin
  initial guess x0 = V y for a target system, with its projection residual);
* ``SeedSubspacePC``: a PETSc PC context of type 'python', the two-level
  correction with the seed subspace as coarse space, E = V^T A V,
  P^{-1} r = V E^{-1} V^T r + M^{-1} (r - A V E^{-1} V^T r);
* ``ProjectionSolver``: the ``projection`` solver of the numerics protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

GUESS_METHODS = ("minres", "galerkin")


# --------------------------------------------------------------------------- subspace helpers


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


@dataclass
class Projection:
    """A projected initial guess x0 = V y and its relative residual ||b - A x0|| / ||b||."""

    x0: np.ndarray
    y: np.ndarray
    residual: float


def projected_guess(A, b: np.ndarray, V: np.ndarray, method: str = "minres", AV: np.ndarray | None = None) -> Projection:
    """Initial guess for A x = b from the subspace span(V) (METHOD.md §6).

    minres:   y = argmin ||b - A V y||_2 (thin QR of A V, rank-revealing guard);
    galerkin: y = (V^T A V)^{-1} V^T b (Chan and Ng 1999).
    ``AV`` may be passed when already computed (e.g. by the preconditioner).
    """
    if method not in GUESS_METHODS:
        raise ValueError(f"guess method: unknown value {method!r}, expected one of {GUESS_METHODS}")
    b = np.asarray(b, dtype=np.float64).ravel()
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] != b.size:
        raise ValueError(f"V: expected shape ({b.size}, r), got {V.shape}")
    bnorm = float(np.linalg.norm(b))
    r = V.shape[1]
    if r == 0 or bnorm == 0.0:
        return Projection(np.zeros_like(b), np.zeros(r), 1.0 if bnorm > 0 else 0.0)
    if AV is None:
        AV = apply_operator(A, V)
    if method == "minres":
        q, R = sla.qr(AV, mode="economic", check_finite=False)
        diag = np.abs(np.diag(R))
        ok = diag > 1e-12 * max(diag.max(), np.finfo(float).tiny)
        y = np.zeros(r)
        if np.all(ok):
            y = sla.solve_triangular(R, q.T @ b, check_finite=False)
        else:  # (numerically) rank-deficient A V: least squares with a cutoff
            y = np.linalg.lstsq(AV, b, rcond=1e-12)[0]
    else:
        E = V.T @ AV
        try:
            y = sla.solve(E, V.T @ b, check_finite=False)
        except sla.LinAlgError as exc:
            raise ValueError(f"galerkin projection: V^T A V ({r}x{r}) is singular") from exc
    resid = b - AV @ y
    return Projection(V @ y, y, float(np.linalg.norm(resid)) / bnorm)


# --------------------------------------------------------------------------- two-level PC


class SeedSubspacePC:
    """PETSc PC context (type 'python'): two-level correction with a seed subspace as coarse space.

        P^{-1} r = V E^{-1} V^T r + M^{-1} (r - A V E^{-1} V^T r),   E = V^T A V,

    with M an inner one-level PETSc PC (ILU(0) by default, or Jacobi). It is an
    exact solve for systems whose solution lies in span(V). Select it with
    ``-fp_pc_type python -fp_pc_python_type fpscore.solvers.projection.SeedSubspacePC``;
    its own options live under ``<pc prefix>seedpc_``: ``-fp_seedpc_rank r``
    (use the first r basis columns; default all) and ``-fp_seedpc_pc_type
    jacobi|ilu`` (with any other option of the inner PC under the same prefix).

    The basis V (n x r, orthonormal columns) is set from outside with
    ``set_basis`` before each solve (the projection solver does it per time
    level). setUp, run by PETSc once per operator change (or after a new
    basis), computes A V, the LU of E and the inner PC; apply costs two thin
    dense products with V, one with A V and one inner PC apply.
    """

    INNER_TYPES = ("ilu", "jacobi")
    OPTION_SUFFIX = "seedpc_"

    def __init__(self) -> None:
        self.rank: int | None = None  # cap on the number of basis columns used
        self.inner_type = "ilu"
        self.setup_count = 0  # how many times setUp did its work (tests, diagnostics)
        self._V_full: np.ndarray | None = None
        self._V = np.zeros((0, 0), order="F")
        self._AV: np.ndarray | None = None
        self._E_lu = None
        self._inner = None
        self._work = None
        self._stale = True

    # -- configuration
    def set_basis(self, V: np.ndarray | None) -> None:
        """Set the coarse basis V (n, r) with orthonormal columns, or None for a one-level PC."""
        if V is not None:
            V = np.asarray(V, dtype=np.float64)
            if V.ndim != 2:
                raise ValueError(f"SeedSubspacePC basis: expected a 2-D array (n, r), got shape {V.shape}")
        self._V_full = V
        self._stale = True

    def setFromOptions(self, pc) -> None:
        from petsc4py import PETSc

        prefix = (pc.getOptionsPrefix() or "") + self.OPTION_SUFFIX
        opts = PETSc.Options(prefix)
        if opts.hasName("rank"):
            rank = opts.getInt("rank")
            if rank < 0:
                raise ValueError(f"-{prefix}rank: expected a non-negative integer, got {rank}")
            self.rank = rank
        inner = opts.getString("pc_type", self.inner_type)
        if inner not in self.INNER_TYPES:
            raise ValueError(f"-{prefix}pc_type: unknown one-level PC {inner!r}, expected one of {self.INNER_TYPES}")
        self.inner_type = inner
        self._stale = True

    # -- PETSc hooks
    def setUp(self, pc) -> None:
        """Allocate per operator: the inner PC (factored), A V and the LU of E = V^T A V."""
        from petsc4py import PETSc

        A, P = pc.getOperators()
        if self._inner is None:
            self._inner = PETSc.PC().create(comm=pc.getComm())
            self._inner.setOptionsPrefix((pc.getOptionsPrefix() or "") + self.OPTION_SUFFIX)
            self._inner.setType(self.inner_type)
            self._inner.setFromOptions()
        self._inner.setOperators(A, P)
        self._inner.setUp()
        if self._work is None or self._work.getSize() != A.getSize()[0]:
            if self._work is not None:
                self._work.destroy()
            self._work = A.createVecLeft()
        self._setup_coarse(A)
        self.setup_count += 1

    def _setup_coarse(self, A) -> None:
        V = self._V_full
        n = A.getSize()[0]
        if V is not None and V.shape[0] != n:
            raise ValueError(f"SeedSubspacePC basis: has {V.shape[0]} rows, operator has {n}")
        if V is None or V.shape[1] == 0 or self.rank == 0:
            self._V = np.zeros((n, 0), order="F")
            self._AV, self._E_lu = None, None
        else:
            self._V = np.asfortranarray(V[:, : self.rank] if self.rank else V)
            self._AV = apply_operator(A, self._V)
            E = self._V.T @ self._AV
            self._E_lu = sla.lu_factor(E, check_finite=False)
            if not np.all(np.isfinite(self._E_lu[0])) or np.min(np.abs(np.diag(self._E_lu[0]))) == 0.0:
                raise ValueError(f"SeedSubspacePC: coarse matrix E = V^T A V ({E.shape[0]}x{E.shape[0]}) is singular")
        self._stale = False

    def apply(self, pc, x, y) -> None:
        """y = P^{-1} x (two-level correction)."""
        if self._stale:  # a new basis since the last setUp, same operator
            self._setup_coarse(pc.getOperators()[0])
        if self._AV is None:
            self._inner.apply(x, y)
            return
        r = x.getArray(readonly=True)
        z = sla.lu_solve(self._E_lu, self._V.T @ r, check_finite=False)
        with self._work as w:
            np.subtract(r, self._AV @ z, out=w)
        self._inner.apply(self._work, y)
        with y as ya:
            ya += self._V @ z

    def reset(self, pc) -> None:
        """Free what setUp allocated (the basis itself is kept)."""
        for obj in (self._inner, self._work):
            if obj is not None:
                obj.destroy()
        self._inner, self._work = None, None
        self._AV, self._E_lu = None, None
        self._stale = True

    def view(self, pc, viewer) -> None:
        r = 0 if self._V_full is None else self._V_full.shape[1]
        used = r if self.rank is None else min(r, self.rank)
        viewer.printfASCII(
            f"  SeedSubspacePC: two-level, coarse space = seed subspace of rank {used} (basis has {r}), "
            f"one-level PC {self.inner_type}, setups {self.setup_count}\n"
        )
