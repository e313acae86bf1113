"""Per-level Newton of METHOD.md §5b: the fixed point of Algorithm 1, time step by time step.

At level n the implicit-Euler equation
    m - dt g^2/2 Lap_h m - dt g^2/2 (D_h m)^2 + dt f (D_h m) = m^{n-1} - dt D_h f (+ dt q)
is solved by Newton's linearisation (D m)^2 ~ 2 s~ (D m) - s~^2, s~ = D_h x^{(j)}:
A_N = I - dt g^2/2 Lap_h + dt diag(f - g^2 s~) D_h (the pattern of A), b_N = m^{n-1} - dt D_h f
- dt g^2/2 s~^2 (the centred scheme; every scheme and boundary of §2b through
``scheme.linearised``, its semismooth Jacobian), from x^{(0)} = m^0 (n = 1) or 2 m^{n-1} - m^{n-2}, until the relative change
is below ``tol`` (``newton_done``; with stop="predicted": the change that quadratic
convergence predicts for the next iteration), or, with monotone=True, as soon as the change
stops shrinking (``newton_diverging``: such a level is flagged). Each linear solve goes through
``linear_step`` (one log row; its ``picard_iter`` column holds the Newton iteration at that
level). A level that does not converge within ``max_iter`` is a RuntimeWarning plus
converged=False in its rows. A linear solve that fails numerically (``SystemFailure``: the
system at a diverging iterate is too ill-conditioned to reach rtol) or a non-finite change
ends that level's iteration at its last finite iterate, with the same warning and flag
(the first breakdown of a channel is reported); the later levels go on from it.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from fpscore.config import schema_default
from fpscore.fokker_planck.assembly import FPSystem, step_system
from fpscore.fokker_planck.lattice import d_h
from fpscore.fokker_planck.step import ChannelResult, driver_inputs, linear_step
from fpscore.names import NEWTON_STOPS
from fpscore.solvers.base import Solver, SystemFailure, vnorm


def newton_done(change, previous, tol: float, stop: str):
    """Whether a level's Newton iteration stops (scalars or arrays, one per system).

    stop="change" (METHOD.md §5b): the last relative change is below ``tol``; the solve that
    shows it only confirms convergence (its iterate moves by less than ``tol``). stop="predicted":
    the change the next iteration would make, change^3 / previous^2 under quadratic convergence
    (e_{j+1} ~ C e_j^2 with C ~ change / previous^2), is below ``tol`` — the same test one
    solve earlier; ``previous`` is inf at the first iteration, where only the change counts.
    """
    change = np.asarray(change, dtype=float)
    if stop == "change":
        return change < tol
    if stop != "predicted":
        raise ValueError(f"newton_stop: expected one of {', '.join(NEWTON_STOPS)}, got {stop!r}")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        predicted = np.where(np.isfinite(previous), change * (change / previous) ** 2, np.inf)
    return (change < tol) | (predicted < tol)


def newton_diverging(change, previous):
    """Whether a level's Newton iteration is diverging (scalars or arrays, one per system): its
    relative change did not shrink, change >= previous (``previous`` inf at the first iteration).

    The natural monotonicity test of damped Newton methods (contraction factor
    ||dx_j|| / ||dx_{j-1}|| >= 1): from the extrapolated start a healthy level converges
    quadratically, while a level that does not converge hovers at changes of 1e-2..1. On the
    CIFAR-sized stand-in it changes no flag and no converged channel
    (benchmarks/shard_variants_benchmark.py).
    """
    change, previous = np.asarray(change, dtype=float), np.asarray(previous, dtype=float)
    return np.isfinite(previous) & ~(change < previous)


def solve_channel_newton(m0: np.ndarray, times: np.ndarray, g: np.ndarray, h: float, solver: Solver, *,
                         tol: float, max_iter: int, scheme: str, boundary: str,
                         stop: str = schema_default("scores.newton_stop"),
                         monotone: bool = schema_default("scores.newton_monotone"),
                         system: FPSystem | None = None,
                         drift: np.ndarray | None = None, source: np.ndarray | None = None,
                         image: int = 0, channel: int = 0) -> ChannelResult:
    """Per-level Newton for one channel from m^0 (H x W); arguments as ``picard.solve_channel``;
    ``scheme``, ``boundary``: the discretisation (§2b);
    ``stop``: the stopping test of ``newton_done``; ``monotone``: end a diverging level early
    (``newton_diverging``)."""
    inputs = driver_inputs(m0, times, g, drift, source, system)
    m0, times, g, dts, drift, source, system = (inputs.m0, inputs.times, inputs.g, inputs.dts, inputs.drift,
                                                inputs.source, inputs.system)
    shape, T = m0.shape, times.size
    m = np.empty((T, m0.size))
    m[0] = m0.reshape(-1)
    rows: list[dict] = []
    converged, broke, worst, most = True, False, 0.0, 0
    tiny = np.finfo(float).tiny
    for n in range(1, T):
        x = m[0].copy() if n == 1 else 2.0 * m[n - 1] - m[n - 2]
        level_rows, change, previous, j, failure, done, diverged = [], np.inf, np.inf, 0, None, False, False
        for j in range(1, max_iter + 1):
            t0 = time.perf_counter()
            b = step_system(system, x.reshape(shape), m[n - 1], g[n], dts[n - 1], h, scheme=scheme,
                            boundary=boundary, newton=True, drift=None if drift is None else drift[n],
                            source=None if source is None else source[n])
            t1 = time.perf_counter()
            try:
                x_new, row = linear_step(solver, system, b, image=image, channel=channel, outer_iter=j,
                                         time_level=n, n_times=T, prev_outer=x, prev_level=m[n - 1],
                                         prev_level2=m[n - 2] if n > 1 else None, nonlinear="newton",
                                         assemble_seconds=t1 - t0)
            except SystemFailure as err:
                failure = str(err)
                break
            level_rows.append(row)
            new_change = vnorm(x_new - x) / max(vnorm(x), tiny)
            if not math.isfinite(new_change):
                failure = f"solver {solver.name} produced a non-finite iterate (Newton iteration {j})"
                break
            previous, change, x = change, new_change, x_new
            done = newton_done(change, previous, tol, stop)
            diverged = monotone and not done and newton_diverging(change, previous)
            if done or diverged:
                break
        if not done:
            converged = False
            if failure is None:
                why = (f"the relative change grew from {previous:.3e} to {change:.3e} at iteration {j} "
                       "(newton_monotone)" if diverged else
                       f"relative change {change:.3e} >= newton_tol {tol:.1e} after {max_iter} iterations")
                warnings.warn(f"Newton iteration did not converge for image {image}, channel {channel}, time level "
                              f"{n}: {why}", RuntimeWarning, stacklevel=2)
            elif not broke:
                warnings.warn(f"Newton iteration broke down for image {image}, channel {channel}, time level {n}: "
                              f"{failure}; the level keeps its last finite iterate, the channel is flagged as not "
                              "converged (its later breakdowns are not reported)", RuntimeWarning, stacklevel=2)
            broke = broke or failure is not None
            change = np.inf if failure is not None else change
            for row in level_rows:
                row["converged"] = False
        m[n] = x
        rows.extend(level_rows)
        worst, most = max(worst, change), max(most, j)
    m = m.reshape(T, *shape)
    return ChannelResult(m=m, s=d_h(m, h, boundary=boundary), iterations=most, converged=converged, change=worst, rows=rows,
                         solves=len(rows))
