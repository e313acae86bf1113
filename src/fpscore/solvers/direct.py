"""``spsolve``: SciPy's sparse direct solve (SuperLU), the paper's reference solver."""
from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import spsolve

from fpscore.solvers.base import SolveContext, Solver, SolveStats, SystemFailure, true_relative_residual

_MAX_REFINEMENTS = 3


def direct_solve(system, b: np.ndarray, rtol: float, where: str = "") -> tuple[np.ndarray, float, int]:
    """SuperLU solve of system.csr x = b plus up to a few refinement steps until the true
    relative residual is <= rtol; returns x, that residual and the number of solves."""
    A = system.csr
    x = spsolve(A, b)
    res = true_relative_residual(system, x, b)
    solves = 1
    while res > rtol and solves <= _MAX_REFINEMENTS:
        x = x + spsolve(A, b - A @ x)
        res = true_relative_residual(system, x, b)
        solves += 1
    if not res <= rtol:
        raise SystemFailure(f"spsolve: relative residual {res:.3e} > rtol {rtol:.1e} after "
                          f"{_MAX_REFINEMENTS} refinements ({where})")
    return x, res, solves


class SpsolveSolver(Solver):
    """Factor and solve each system from scratch, as the paper's baseline does.

    If rounding leaves the true residual above rtol (ill-conditioned systems),
    a few steps of iterative refinement follow; ``iterations`` counts solves.
    """

    name = "spsolve"

    def solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        x, res, solves = direct_solve(ctx.system, ctx.b, self.rtol, ctx.where())
        return x, SolveStats(iterations=solves, initial_residual=1.0, final_residual=res)
