"""The linear step shared by the nonlinear drivers (Picard sweeps, per-level Newton).

``linear_step`` builds the ``SolveContext`` of one system by keyword (driver-neutral
names: outer iteration, previous outer iterate), calls the solver, checks the true
residual it reports and returns the solution with its solve-log row. ``check_solution``
and ``log_row`` are the two halves the batched engine reuses for its own systems.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fpscore.solvers.base import SolveContext, Solver, SystemFailure

#: Slack on the residual a solver reports before the driver rejects it (rounding only).
RESIDUAL_SLACK = 1.0 + 1e-6


@dataclass
class ChannelResult:
    """m and s (T, H, W) of one channel, the outer-iteration history and one log row per linear solve.

    ``iterations``: Picard sweeps, or the largest Newton iteration count over the levels;
    ``solves``: linear solves of this channel; ``change``: the last relative change.
    """

    m: np.ndarray
    s: np.ndarray
    iterations: int
    converged: bool
    change: float
    rows: list[dict] = field(default_factory=list)
    solves: int = 0


def where(image: int, channel: int, nonlinear: str, outer_iter: int, time_level: int) -> str:
    return (f"image {image}, channel {channel}, {nonlinear.capitalize()} iteration {outer_iter}, "
            f"time level {time_level}")


def residual_met(final_residual, rtol: float):
    """Whether reported true relative residuals (a scalar or an array) meet rtol; NaN does not."""
    return np.asarray(final_residual) <= rtol * RESIDUAL_SLACK


def check_solution(name: str, rtol: float, x: np.ndarray, final_residual: float, place: str) -> None:
    """SystemFailure unless the reported true relative residual is <= rtol (NaN fails too)."""
    if not residual_met(final_residual, rtol):
        if not np.all(np.isfinite(x)):
            raise SystemFailure(f"solver {name} returned non-finite values ({place})")
        raise SystemFailure(f"solver {name} reached relative residual {final_residual:.3e} > rtol {rtol:.1e} "
                          f"({place})")


def log_row(*, image: int, channel: int, outer_iter: int, time_level: int, solver: str, iterations: int,
            initial_residual: float, final_residual: float, projection_residual: float,
            assemble_seconds: float, solve_seconds: float, converged: bool = True) -> dict:
    """One solve-log row (LOG_COLUMNS; the column picard_iter holds the outer iteration)."""
    return {
        "image": image, "channel": channel, "picard_iter": outer_iter, "time_level": time_level,
        "solver": solver, "iterations": int(iterations), "initial_residual": float(initial_residual),
        "final_residual": float(final_residual), "projection_residual": float(projection_residual),
        "assemble_seconds": assemble_seconds, "solve_seconds": solve_seconds, "converged": converged,
    }


def linear_step(solver: Solver, system, b: np.ndarray, *, image: int, channel: int, outer_iter: int,
                time_level: int, n_times: int, prev_outer: np.ndarray, prev_level: np.ndarray,
                prev_outer_prev_level: np.ndarray | None = None, prev_level2: np.ndarray | None = None,
                nonlinear: str = "picard", assemble_seconds: float = 0.0) -> tuple[np.ndarray, dict]:
    """Solve system x = b (the system's current values) with ``solver``; returns x and its log row.

    Raises SystemFailure if the solver's true relative residual misses its rtol.
    """
    t1 = time.perf_counter()
    ctx = SolveContext(image, channel, outer_iter, time_level, n_times, system, b, prev_outer, prev_level,
                       prev_outer_prev_level, prev_level2, nonlinear)
    x, stats = solver.solve(ctx)
    t2 = time.perf_counter()
    check_solution(solver.name, solver.rtol, x, stats.final_residual,
                   where(image, channel, nonlinear, outer_iter, time_level))
    row = log_row(image=image, channel=channel, outer_iter=outer_iter, time_level=time_level, solver=solver.name,
                  iterations=stats.iterations, initial_residual=stats.initial_residual,
                  final_residual=stats.final_residual, projection_residual=stats.projection_residual,
                  assemble_seconds=assemble_seconds, solve_seconds=t2 - t1)
    return x, row


def per_level(name: str, arr: np.ndarray | None, T: int, shape: tuple[int, int]) -> np.ndarray | None:
    """A (T, H, W) float64 field per time level, or None; ValueError naming ``name`` otherwise."""
    if arr is None:
        return None
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape != (T, *shape):
        raise ValueError(f"{name}: expected one H x W field per time level, shape {(T, *shape)}, got {arr.shape}")
    return arr


def check_grid(m0: np.ndarray, times: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """m0 (H, W) finite, times increasing, g of equal length >= 2 (float64), or a ValueError."""
    m0 = np.asarray(m0, dtype=np.float64)
    if m0.ndim != 2 or not np.all(np.isfinite(m0)):
        raise ValueError(f"m0: expected a finite H x W array, got shape {m0.shape}")
    times = np.asarray(times, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if times.size < 2 or g.shape != times.shape or np.any(np.diff(times) <= 0):
        raise ValueError(f"times/g: expected increasing times and g of equal length >= 2, got {times.shape}, {g.shape}")
    return m0, times, g


@dataclass
class DriverInputs:
    """What both nonlinear drivers start from, checked: m^0, the time grid and its steps, the
    per-level drift and source (or None) and the FPSystem of this size."""

    m0: np.ndarray
    times: np.ndarray
    g: np.ndarray
    dts: np.ndarray
    drift: np.ndarray | None
    source: np.ndarray | None
    system: object


def driver_inputs(m0, times, g, drift, source, system) -> DriverInputs:
    """Check a driver's arguments and build (or check) its FPSystem."""
    from fpscore.fokker_planck.assembly import FPSystem

    m0, times, g = check_grid(m0, times, g)
    T, shape = times.size, m0.shape
    if system is None:
        system = FPSystem(*shape)
    elif system.shape != shape:
        raise ValueError(f"system is for {system.shape}, image channel is {shape}")
    return DriverInputs(m0, times, g, np.diff(times), per_level("drift", drift, T, shape),
                        per_level("source", source, T, shape), system)
