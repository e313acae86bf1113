"""Linear solvers of the Fokker-Planck systems: the protocol (``base``) and a factory.

Solvers by name: ``spsolve`` (SciPy SuperLU, the paper's reference),
``ksp`` (PETSc KSP from an options string), ``projection`` (cross-matrix
Krylov projection, METHOD.md §6) and ``batched`` (all channels of a set at once,
torch on CPU or CUDA, METHOD.md §5c). PETSc and torch are imported only by the
solvers that need them.
"""
from __future__ import annotations

from typing import Any

from fpscore.config import schema_default
from fpscore.names import SOLVERS as SOLVER_NAMES
from fpscore.solvers.base import LOG_COLUMNS, SolveContext, Solver, SolverError, SolveStats, SystemFailure

__all__ = ["LOG_COLUMNS", "SOLVER_NAMES", "SolveContext", "SolveStats", "Solver", "SolverError", "SystemFailure",
           "make_solver"]


def make_solver(name: str, *, rtol: float = schema_default("scores.rtol"),
                ksp_options: str = schema_default("scores.ksp_options"),
                warm_start: bool = schema_default("scores.warm_start"),
                extrapolate: bool = schema_default("scores.extrapolate"), projection: dict[str, Any] | None = None,
                batched: dict[str, Any] | None = None) -> Solver:
    """Build a solver by name with its settings (config section ``scores``; defaults: the schema's).

    ``ksp_options``, ``warm_start`` and ``extrapolate`` apply to ``ksp`` and to the
    Krylov part of ``projection``; ``projection`` holds n_seeds, seed_choice, rank, variant;
    ``batched`` holds device (auto|cpu|cuda), threads, batch_size, max_it.
    """
    if name == "spsolve":
        from fpscore.solvers.direct import SpsolveSolver
        return SpsolveSolver(rtol=rtol)
    if name == "ksp":
        from fpscore.solvers.ksp import KspSolver
        return KspSolver(rtol=rtol, options=ksp_options, warm_start=warm_start, extrapolate=extrapolate)
    if name == "projection":
        from fpscore.solvers.projection import ProjectionSolver
        return ProjectionSolver(rtol=rtol, ksp_options=ksp_options, warm_start=warm_start, extrapolate=extrapolate,
                                **(projection or {}))
    if name == "batched":
        from fpscore.solvers.batched import BatchedSolver
        return BatchedSolver(rtol=rtol, **(batched or {}))
    raise ValueError(f"solver: unknown solver {name!r}; expected one of {', '.join(SOLVER_NAMES)}")
