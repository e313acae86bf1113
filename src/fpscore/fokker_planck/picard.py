"""Algorithm 1 of METHOD.md §5: the fixed-point (Picard) iteration over time.

For k = 1, 2, ...: sweep n = 1..N-1, solving A^{n,(k)} m^{n,(k)} = b^{n,(k)} with
A built from the previous iterate's score s~ = D_h m^{n,(k-1)} (m^{n,(0)} = m^0),
until ||m^(k) - m^(k-1)||_2 / ||m^(k-1)||_2 < tol. Each linear solve is done by a
``Solver`` (fpscore.solvers.base) and logged; not converging within max_iter is
a RuntimeWarning plus converged=False in the log rows, never silent. A linear solve that
fails numerically (``SystemFailure``) or a non-finite sweep ends the iteration the same way,
with the last complete sweep as the result.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from fpscore.fokker_planck.assembly import FPSystem, rhs
from fpscore.fokker_planck.lattice import d_h
from fpscore.fokker_planck.scheme import linearised
from fpscore.fokker_planck.step import ChannelResult, driver_inputs, linear_step
from fpscore.solvers.base import Solver, SystemFailure, vnorm

__all__ = ["ChannelResult", "solve_channel"]


def _sweep_values(system: FPSystem, g: np.ndarray, dts: np.ndarray, m_old: np.ndarray, h: float,
                  drift: np.ndarray | None, scheme: str, boundary: str) -> np.ndarray:
    """Values of A^{n,(k)} for n = 1..T-1 (rows): Picard's linearisation at the previous iterate
    m_old (T, H, W) (``scheme.linearised``), every level at once."""
    dts3 = dts[:, None, None]
    a = 0.5 * g[1:, None, None] ** 2 * dts3
    fields, _ = linearised(m_old[1:], a=a, h=h, scheme=scheme, boundary=boundary, newton=False,
                           dt_f=None if drift is None else dts3 * drift[1:])
    return system.pattern.values(fields)


def solve_channel(m0: np.ndarray, times: np.ndarray, g: np.ndarray, h: float, solver: Solver, *,
                  tol: float, max_iter: int, scheme: str, boundary: str, system: FPSystem | None = None,
                  drift: np.ndarray | None = None, source: np.ndarray | None = None,
                  image: int = 0, channel: int = 0) -> ChannelResult:
    """Run Algorithm 1 for one channel from m^0 (H x W) on the time grid ``times`` with g(t_n) = ``g``.

    ``drift`` f^n and ``source`` q^n (T x H x W, default zero) enter as
    v = f^n - g_n^2 s~ / 2 and b = m^{n-1} - dt D_h f^n + dt q^n (q only for
    manufactured-solution tests). ``scheme``, ``boundary``: the discretisation (§2b; Picard
    freezes the previous iterate's score, nu and upwind side). ``system`` (FPSystem of this
    size) is reused when given.
    """
    inputs = driver_inputs(m0, times, g, drift, source, system)
    m0, times, g, dts, drift, source, system = (inputs.m0, inputs.times, inputs.g, inputs.dts, inputs.drift,
                                                inputs.source, inputs.system)
    shape, T = m0.shape, times.size

    n_unknowns = m0.size
    m_old = np.broadcast_to(m0.reshape(-1), (T, n_unknowns)).copy()  # m^{(0)}, one flat row per level
    plain_rhs = drift is None and source is None  # then b = m^{n-1}: handed over without a copy
    rows: list[dict] = []
    converged, change, k, failure = False, np.inf, 0, None
    for k in range(1, max_iter + 1):
        m = np.empty_like(m_old)
        m[0] = m_old[0]
        t0 = time.perf_counter()
        values = _sweep_values(system, g, dts, m_old.reshape(T, *shape), h, drift, scheme, boundary)  # every level's A, vectorised
        sweep_assembly = (time.perf_counter() - t0) / (T - 1)
        for n in range(1, T):
            t0 = time.perf_counter() - sweep_assembly
            system.set_values(values[n - 1])
            if plain_rhs:
                b = m[n - 1]
            else:
                b = rhs(m[n - 1], dts[n - 1], h, None if drift is None else drift[n],
                        None if source is None else source[n], boundary=boundary)
            t1 = time.perf_counter()
            try:
                x, row = linear_step(solver, system, b, image=image, channel=channel, outer_iter=k, time_level=n,
                                     n_times=T, prev_outer=m_old[n], prev_level=m[n - 1],
                                     prev_outer_prev_level=m_old[n - 1] if k > 1 else None,
                                     prev_level2=m[n - 2] if n > 1 else None, nonlinear="picard",
                                     assemble_seconds=t1 - t0)
            except SystemFailure as err:
                failure = str(err)
                break
            m[n] = x
            rows.append(row)
        if failure is None:
            change = vnorm(m - m_old) / max(vnorm(m_old), np.finfo(float).tiny)
            if not math.isfinite(change):
                failure = f"solver {solver.name} produced a non-finite iterate (Picard iteration {k})"
        if failure is not None:
            change = np.inf
            break
        m_old = m
        if change < tol:
            converged = True
            break
    if failure is not None:
        warnings.warn(f"Picard iteration broke down for image {image}, channel {channel}: {failure}; the channel "
                      f"keeps sweep {k - 1} and is flagged as not converged", RuntimeWarning, stacklevel=2)
    elif not converged:
        warnings.warn(f"Picard iteration did not converge for image {image}, channel {channel}: relative change "
                      f"{change:.3e} >= tol {tol:.1e} after {max_iter} iterations", RuntimeWarning, stacklevel=2)
    if not converged:
        for row in rows:
            row["converged"] = False
    return ChannelResult(m=m_old.reshape(T, *shape), s=d_h(m_old.reshape(T, *shape), h, boundary=boundary), iterations=k, converged=converged, change=change,
                         rows=rows, solves=len(rows))
