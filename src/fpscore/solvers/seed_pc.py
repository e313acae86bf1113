"""``SeedSubspacePC``: the two-level seed-subspace preconditioner of METHOD.md §6 as a
PETSc PC context of type 'python' (``-pc_python_type fpscore.solvers.seed_pc.SeedSubspacePC``)."""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from fpscore.solvers.subspace import apply_operator


class SeedSubspacePC:
    """PETSc PC context (type 'python'): two-level correction with a seed subspace as coarse space.

        P^{-1} r = V E^{-1} V^T r + M^{-1} (r - A V E^{-1} V^T r),   E = V^T A V,

    with M an inner one-level PETSc PC (ILU(0) by default, Jacobi or SOR). It is an
    exact solve for systems whose solution lies in span(V). Select it with
    ``-fp_pc_type python -fp_pc_python_type fpscore.solvers.seed_pc.SeedSubspacePC``;
    its own options live under ``<pc prefix>seedpc_``: ``-fp_seedpc_rank r``
    (use the first r basis columns; default all) and ``-fp_seedpc_pc_type
    ilu|jacobi|sor`` (with any other option of the inner PC under the same prefix).

    The basis V (n x r, orthonormal columns) is set from outside with
    ``set_basis`` before each solve (the projection solver does it per time
    level). setUp, run by PETSc once per operator change (or after a new
    basis), computes A V, the LU of E and the inner PC; apply costs two thin
    dense products with V, one with A V and one inner PC apply.
    """

    INNER_TYPES = ("ilu", "jacobi", "sor")
    OPTION_SUFFIX = "seedpc_"

    def __init__(self) -> None:
        self.rank: int | None = None  # cap on the number of basis columns used
        self.inner_type = "ilu"
        self.setup_count = 0  # how many times setUp did its work (tests, diagnostics)
        self._V_full: np.ndarray | None = None
        self._AV_given: np.ndarray | None = None
        self._V = np.zeros((0, 0), order="F")
        self._AV: np.ndarray | None = None
        self._E_lu = None
        self._inner = None
        self._work = None
        self._stale = True

    # -- configuration
    def set_basis(self, V: np.ndarray | None, AV: np.ndarray | None = None) -> None:
        """Set the coarse basis V (n, r) with orthonormal columns, or None for a one-level PC.

        ``AV`` = A V for the operator of the next setup may be handed over when the
        caller computed it anyway (it is used once, then recomputed per operator).
        """
        if V is not None:
            V = np.asarray(V, dtype=np.float64)
            if V.ndim != 2:
                raise ValueError(f"SeedSubspacePC basis: expected a 2-D array (n, r), got shape {V.shape}")
            if AV is not None and np.shape(AV) != V.shape:
                raise ValueError(f"SeedSubspacePC: A V has shape {np.shape(AV)}, basis has {V.shape}")
        self._V_full = V
        self._AV_given = None if V is None else AV
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
            cols = V.shape[1] if self.rank is None else min(self.rank, V.shape[1])
            self._V = np.asfortranarray(V[:, :cols])
            given, self._AV_given = self._AV_given, None
            self._AV = np.asfortranarray(given[:, :cols]) if given is not None else apply_operator(A, self._V)
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


# --------------------------------------------------------------------------- the solver
