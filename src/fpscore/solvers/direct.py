"""``spsolve``: SciPy's sparse direct solve (SuperLU), the paper's reference solver."""
from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import spsolve

from fpscore.solvers.base import SolveContext, Solver, SolverError, SolveStats, true_relative_residual

_MAX_REFINEMENTS = 3


class SpsolveSolver(Solver):
    """Factor and solve each system from scratch, as the paper's baseline does.

    If rounding leaves the true residual above rtol (ill-conditioned systems),
    a few steps of iterative refinement follow; ``iterations`` counts solves.
    """

    name = "spsolve"

    def solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        A = ctx.system.csr
        x = spsolve(A, ctx.b)
        res = true_relative_residual(ctx.system, x, ctx.b)
        solves = 1
        while res > self.rtol and solves <= _MAX_REFINEMENTS:
            x = x + spsolve(A, ctx.b - A @ x)
            res = true_relative_residual(ctx.system, x, ctx.b)
            solves += 1
        if not res <= self.rtol:
            raise SolverError(f"spsolve: relative residual {res:.3e} > rtol {self.rtol:.1e} after "
                              f"{_MAX_REFINEMENTS} refinements (image {ctx.image}, channel {ctx.channel}, "
                              f"Picard iteration {ctx.picard_iter}, time level {ctx.time_level})")
        return x, SolveStats(iterations=solves, initial_residual=1.0, final_residual=res)
