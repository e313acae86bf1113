"""The stepwise engine's run state (``batched.BatchedSolver``'s torch engine, METHOD.md §5c): one
batch of channels through per-level Newton (§5b) or Picard sweeps (Algorithm 1) in torch float64,
each linear step one BiCGStab over the active systems, then rounds from where it stopped, then
SuperLU for what still misses rtol; it collects the log rows and the flagged channels. The solver
(device, kernel, the set, the fused engine) is in ``batched``.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from fpscore.fokker_planck.lattice import d_h
from fpscore.fokker_planck.newton import newton_diverging, newton_done
from fpscore.fokker_planck.scheme import linearised
from fpscore.fokker_planck.step import Flag, log_row, residual_met
from fpscore.solvers.base import SystemFailure
from fpscore.solvers.batched_ops import Stencil, relative_residual

if TYPE_CHECKING:
    from fpscore.solvers.batched import BatchedSolver

#: The causes of the flags of an unconverged Newton level (both engines).
NEWTON_DIVERGING = "Newton iteration did not converge: the relative change stopped shrinking (newton_monotone)"


def newton_max_iter_cause(params) -> str:
    return (f"Newton iteration did not converge: relative change >= newton_tol {params.newton_tol:.1e} after "
            f"{params.newton_max_iter} iterations")


class StepwiseRun:
    """One batch of channels through a nonlinear driver; collects the log rows, the flagged channels
    (``flags``: the first failure of each, ``step.Flag``) and where SuperLU took over. ``krylov``:
    the BiCGStab function (``batched.krylov_kernel``); ``rounds``, ``safety``: the solver's
    ``_ROUNDS`` and ``_SAFETY``."""

    def __init__(self, solver: BatchedSolver, stencil: Stencil, params, drift, images: np.ndarray,
                 channels: np.ndarray, *, krylov, rounds: int, safety: float):
        self.solver, self.stencil, self.params, self.drift = solver, stencil, params, drift
        self.krylov, self.rounds, self.safety = krylov, rounds, safety
        self.images, self.channels = images, channels
        self.h = params.dh
        self.times, self.g = params.times(), params.g()
        self.dts = np.diff(self.times)
        self.rows: list[dict] = []
        self._flags: dict[int, Flag] = {}
        self.fallback_places: list[str] = []

    @property
    def flags(self) -> list[Flag]:
        return [self._flags[a] for a in sorted(self._flags)]

    def _flag_channels(self, channels, level: int, cause: str) -> None:
        """Record the first failure of each of the batch's ``channels`` (level 0: the whole Picard iteration)."""
        for a in channels:
            if a not in self._flags:
                self._flags[a] = Flag(int(self.images[a]), int(self.channels[a]), int(level), cause)

    # ---- one linear step for the systems ``sub`` --------------------------------------------
    def step(self, n: int, x, m_prev, newton: bool):
        """The systems of one Newton (or Picard) step at level n and iterates x (k, n_pix):
        (Coefficients, b), by ``scheme.linearised`` (the definition the per-channel drivers use)."""
        p, H, W = self.params, self.stencil.H, self.stencil.W
        dt = self.dts[n - 1]
        f = None if self.drift is None else self.drift[n].reshape(1, H, W)
        fields, extra = linearised(x.reshape(-1, H, W), a=0.5 * self.g[n] ** 2 * dt, h=self.h, scheme=p.scheme,
                                   boundary=p.boundary, newton=newton, dt_f=None if f is None else dt * f)
        b = m_prev
        if f is not None:
            b = b - dt * d_h(f, self.h, boundary=p.boundary).reshape(1, -1)
        if extra is not None:
            b = b + extra.reshape(b.shape[0], -1)
        return self.stencil.coefficients(fields), b

    def linear(self, n: int, outer: np.ndarray, sub: np.ndarray, coef, b, x0, nonlinear: str, t_assemble: float):
        """Solve the systems (coef, b) of the channels ``sub`` at level n from x0; returns x (k, n) and
        the failed systems (bool, k): those that keep x0 (``SystemFailure``), without a log row."""
        import torch

        solver = self.solver
        t0 = time.perf_counter()
        x = x0.clone()
        its, init = self.krylov(self.stencil, coef, b, x, self.safety * solver.rtol, solver.max_it)
        final = relative_residual(self.stencil, coef, x, b)
        todo = torch.nonzero(~(final <= solver.rtol)).flatten()  # NaN (a breakdown) included
        for _ in range(self.rounds - 1):  # on from where they stopped, for those that missed the true residual
            if len(todo) == 0:
                break
            c_todo, xs, bs = coef.take(todo), x[todo], b[todo]
            broken = ~torch.isfinite(xs).all(1)
            xs[broken] = x0[todo][broken]  # a breakdown starts again from the warm start
            k_its, _ = self.krylov(self.stencil, c_todo, bs, xs, self.safety * solver.rtol, solver.max_it)
            x[todo] = xs
            its[todo] += k_its
            final[todo] = relative_residual(self.stencil, c_todo, xs, bs)
            todo = todo[~(final[todo] <= solver.rtol)]
        x_np = None
        k = len(sub)
        if len(todo):  # a direct solve (SuperLU) for what BiCGStab could not do
            x_np = x.cpu().numpy()
            final_np = final.cpu().numpy()
            self.fallback_places.extend(self._direct(n, coef, b[i], i, sub, outer, nonlinear, x_np, final_np)
                                        for i in todo.cpu().numpy())
            x = torch.as_tensor(x_np, device=x.device)
            final = torch.as_tensor(final_np, device=x.device)
        elapsed = time.perf_counter() - t0
        its_np, init_np, final_np = its.cpu().numpy(), init.cpu().numpy(), final.cpu().numpy()
        failed = ~residual_met(final_np, solver.rtol)  # SystemFailure of a per-channel driver
        for i, a in enumerate(sub):
            if failed[i]:
                continue
            self.rows.append(log_row(image=int(self.images[a]), channel=int(self.channels[a]),
                                     outer_iter=int(outer[i]), time_level=n, solver=solver.name,
                                     iterations=int(its_np[i]), initial_residual=init_np[i],
                                     final_residual=final_np[i], projection_residual=np.nan,
                                     assemble_seconds=t_assemble / k, solve_seconds=elapsed / k))
        if failed.any():
            x[torch.as_tensor(failed, device=x.device)] = x0[torch.as_tensor(failed, device=x.device)]
        return x, failed

    def _direct(self, n, coef, b, i, sub, outer, nonlinear, x_out, res_out) -> str:
        """SuperLU solve of system i of this step into x_out[i], res_out[i] (NaN when it misses rtol:
        ``linear`` then counts the system as failed); returns where it is."""
        from fpscore.fokker_planck.assembly import FPSystem
        from fpscore.solvers.direct import direct_solve

        H, W = self.stencil.H, self.stencil.W
        system = FPSystem(H, W)
        system.set_fields(self.stencil.fields(coef, i))
        a = sub[i]
        place = (f"image {self.images[a]}, channel {self.channels[a]}, {nonlinear.capitalize()} iteration "
                 f"{outer[i]}, time level {n}")
        self.solver.fallbacks += 1
        try:
            x_out[i], res_out[i], _ = direct_solve(system, b.cpu().numpy(), self.solver.rtol, place)
        except SystemFailure:
            res_out[i] = np.nan
        return place

    # ---- the drivers ------------------------------------------------------------------------
    def newton(self, m0):
        """Per-level Newton (§5b) for the batch: m (k, T, n) numpy, iterations, converged, solves."""
        import torch

        p = self.params
        k, T = m0.shape[0], p.n_times
        m = torch.empty((T, k, m0.shape[1]), dtype=torch.float64, device=m0.device)
        m[0] = m0
        most = np.zeros(k, dtype=int)
        conv = np.ones(k, dtype=bool)
        solves = np.zeros(k, dtype=int)
        broke = np.zeros(k, dtype=bool)  # channels whose iteration broke down at some level
        for n in range(1, T):
            x = m[0].clone() if n == 1 else 2.0 * m[n - 1] - m[n - 2]
            active = np.arange(k)
            previous = np.full(k, np.inf)  # the last change of every system (newton_done)
            first_row = len(self.rows)
            lost = []  # channels of this level that broke down
            diverged = []  # channels of this level whose change stopped shrinking (newton_monotone)
            for j in range(1, p.newton_max_iter + 1):
                t0 = time.perf_counter()
                xa = x[active]
                coef, b = self.step(n, xa, m[n - 1][active], newton=True)
                x_new, failed = self.linear(n, np.full(len(active), j), active, coef, b, xa, "newton",
                                            time.perf_counter() - t0)
                change = (torch.linalg.vector_norm(x_new - xa, dim=1)
                          / torch.linalg.vector_norm(xa, dim=1).clamp_min(np.finfo(float).tiny)).cpu().numpy()
                failed |= ~np.isfinite(change)  # an overflowing iterate breaks down too
                ok = ~failed
                x[active[ok]] = x_new[torch.as_tensor(ok, device=x.device)]
                solves[active[ok]] += 1
                most[active] = np.maximum(most[active], j)
                done = newton_done(change, previous[active], p.newton_tol, p.newton_stop) & ok
                grew = (newton_diverging(change, previous[active]) & ok & ~done if p.newton_monotone
                        else np.zeros_like(done))
                previous[active] = change
                lost.extend(active[failed].tolist())
                diverged.extend(active[grew].tolist())
                active = active[~done & ok & ~grew]
                if len(active) == 0:
                    break
            if lost:
                broke[lost] = True
                self._flag_channels(lost, n, f"Newton iteration broke down: a linear solve missed rtol "
                                             f"{self.solver.rtol:.1e} even directly, or the iterate overflowed")
            if len(active):
                self._flag_channels(active, n, newton_max_iter_cause(p))
            if diverged:
                self._flag_channels(diverged, n, NEWTON_DIVERGING)
            unconverged = np.concatenate([active, np.asarray(lost, dtype=int), np.asarray(diverged, dtype=int)])
            if len(unconverged):
                conv[unconverged] = False
                self._flag(first_row, unconverged)
            m[n] = x
        return m.transpose(0, 1).cpu().numpy(), most, conv, solves

    def _flag(self, first_row: int, channels) -> None:
        """converged=False in the log rows from ``first_row`` on of the batch's ``channels``."""
        keys = {(self.images[a], self.channels[a]) for a in channels}
        for row in self.rows[first_row:]:
            if (row["image"], row["channel"]) in keys:
                row["converged"] = False

    def picard(self, m0):
        """Algorithm 1 for the batch, each channel with its own stopping test."""
        import torch

        p = self.params
        k, T, npix = m0.shape[0], p.n_times, m0.shape[1]
        m_old = m0[None].expand(T, k, npix).clone()
        iters = np.zeros(k, dtype=int)
        conv = np.zeros(k, dtype=bool)
        solves = np.zeros(k, dtype=int)
        rows_of = {a: [] for a in range(k)}
        active = np.arange(k)
        broke = np.zeros(k, dtype=bool)
        for it in range(1, p.picard_max_iter + 1):
            ka = len(active)
            m = torch.empty((T, ka, npix), dtype=torch.float64, device=m0.device)
            m[0] = m_old[0][active]
            failed = np.zeros(ka, dtype=bool)  # this sweep's breakdowns (they keep the last sweep)
            for n in range(1, T):
                t0 = time.perf_counter()
                coef, b = self.step(n, m_old[n][active], m[n - 1], newton=False)
                if it > 1:
                    x0 = m_old[n][active] + (m[n - 1] - m_old[n - 1][active])
                else:
                    x0 = m[n - 1] if n == 1 else 2.0 * m[n - 1] - m[n - 2]
                first = len(self.rows)
                m[n], failed_n = self.linear(n, np.full(ka, it), active, coef, b, x0, "picard",
                                             time.perf_counter() - t0)
                failed |= failed_n
                for r, a in zip(range(first, len(self.rows)), active[~failed_n]):
                    rows_of[a].append(r)
            old = m_old[:, active]
            change = (torch.linalg.vector_norm((m - old).transpose(0, 1).reshape(ka, -1), dim=1)
                      / torch.linalg.vector_norm(old.transpose(0, 1).reshape(ka, -1), dim=1)
                      .clamp_min(np.finfo(float).tiny)).cpu().numpy()
            failed |= ~np.isfinite(change)
            ok = torch.as_tensor(~failed, device=m.device)
            kept = active[~failed]
            m_old[:, kept] = m[:, ok]
            iters[active] = it
            solves[kept] += T - 1
            broke[active[failed]] = True
            done = (change < p.picard_tol) & ~failed
            conv[active[done]] = True
            active = active[~done & ~failed]
            if len(active) == 0:
                break
        unconverged = np.flatnonzero(~conv)
        for a in unconverged:
            for r in rows_of[a]:
                self.rows[r]["converged"] = False
        if broke.any():
            self._flag_channels(np.flatnonzero(broke), 0, f"Picard iteration broke down: a linear solve missed rtol "
                                                          f"{self.solver.rtol:.1e} even directly, or the iterate "
                                                          "overflowed; it keeps its last complete sweep")
        if len(active):
            self._flag_channels(active, 0, f"Picard iteration did not converge after {p.picard_max_iter} sweeps")
        return m_old.transpose(0, 1).cpu().numpy(), iters, conv, solves
