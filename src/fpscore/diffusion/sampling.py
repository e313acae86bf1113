"""Probability-flow ODE sampler of our method (METHOD.md section 9).

    dx/dt = f - (1/2) g(t)^2 s(x, t),   from t = 1 (x ~ N(0, lambda(1)^2 I)) down to t = eps,

with SciPy's adaptive RK45 (the paper's sampler, rtol = atol = 1e-3) or a
fixed-step Heun method on Karras et al.'s (2022) rho = 7 grid in lambda (steps
crowd towards t = eps where the flow is stiff; a grid uniform in t is unstable
there). The score enters as a plain callable, so the sampler can be tested
against an analytic score with no network. Optionally a final
denoising step x + lambda(eps)^2 s(x, eps) (Tweedie; Song et al.'s noise
removal) maps the state at eps to the posterior mean.

The start (``STARTS``): ``lambda1`` draws x(1) ~ N(0, lambda(1)^2 I) (METHOD.md section 9),
``unit`` draws N(0, I) (the authors' code, section 8b). Denoising a noisy copy starts at
t* < 1 instead (``t_start``; see ``fpscore.diffusion.evaluation``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp

from fpscore.config import schema_default
from fpscore.diffusion.sde import VESDE
from fpscore.names import SAMPLERS, STARTS

ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


def start_std(sde: VESDE, start: str) -> float:
    """Std of the sampler's initial state: lambda(1) or 1 (see the module docstring)."""
    if start == "lambda1":
        return sde.prior_std()
    if start == "unit":
        return 1.0
    raise ValueError(f"sampler.start: expected one of {STARTS}, got {start!r}")


@dataclass
class SampleResult:
    """final: N x C x H x W; states: K x N x C x H x W (progression, K may be 0) at `times`;
    nfe: network evaluations; sampler: what produced it (reported beside every number)."""

    final: np.ndarray
    states: np.ndarray
    times: np.ndarray
    nfe: int
    sampler: str


def heun_grid(sde: VESDE, steps: int, rho: float = 7.0, t_start: float = 1.0) -> np.ndarray:
    """steps + 1 times from t_start to eps, uniform in lambda^(1/rho) (Karras et al. 2022, eq. 5)."""
    hi, lo = sde.marginal_std(float(t_start)) ** (1 / rho), sde.marginal_std(sde.eps) ** (1 / rho)
    grid = sde.time_of_std((hi + np.linspace(0.0, 1.0, steps + 1) * (lo - hi)) ** rho)
    grid[0], grid[-1] = t_start, sde.eps
    return grid


def progression_indices(n_steps: int, count: int) -> list[int]:
    """`count` evenly spaced indices in 0..n_steps (0 = initial state, n_steps = final state)."""
    if count < 2:
        raise ValueError(f"progression_steps: expected an integer >= 2, got {count!r}")
    return sorted(set(np.round(np.linspace(0, n_steps, count)).astype(int).tolist()))


@torch.no_grad()
def ode_sample(score_fn: ScoreFn, x_init: torch.Tensor, sde: VESDE,
               method: str = schema_default("learn.sampler.method"), rtol: float = schema_default("learn.sampler.rtol"),
               atol: float = schema_default("learn.sampler.atol"), heun_steps: int = schema_default("learn.sampler.heun_steps"),
               progression_steps: int = 0, denoise: bool = schema_default("learn.sampler.denoise"),
               t_start: float = 1.0) -> SampleResult:
    """Integrate the probability-flow ODE (f = 0) from t = t_start (default 1) to eps starting at x_init.

    score_fn(x, t) returns s(x, t) for a batch x at the scalar time t; the sampler settings default
    to the schema's (learn.sampler); progression_steps 0 keeps no intermediate states.
    Progression states are taken at `progression_steps` times: RK45 evenly spaced from 1 to eps
    (its dense output), Heun at evenly spaced grid indices; the last one is the final image.
    """
    if method not in SAMPLERS:
        raise ValueError(f"sampler.method: expected one of {SAMPLERS}, got {method!r}")
    if not sde.eps < t_start <= 1.0:
        raise ValueError(f"t_start: expected a time in (eps, 1] = ({sde.eps:g}, 1], got {t_start!r}")
    shape, device, dtype = x_init.shape, x_init.device, x_init.dtype
    nfe = 0

    def drift(x: torch.Tensor, t: float) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        return -0.5 * sde.g(t) ** 2 * score_fn(x, t)

    if method == "rk45":
        if progression_steps and progression_steps < 2:
            raise ValueError(f"progression_steps: expected an integer >= 2, got {progression_steps!r}")
        t_eval = np.linspace(t_start, sde.eps, progression_steps) if progression_steps else np.array([sde.eps])

        def rhs(t, y):
            x = torch.as_tensor(y, dtype=dtype).reshape(shape).to(device)
            return drift(x, float(t)).cpu().numpy().astype(np.float64).reshape(-1)

        sol = solve_ivp(rhs, (float(t_start), sde.eps), x_init.cpu().numpy().astype(np.float64).reshape(-1),
                        method="RK45", rtol=rtol, atol=atol, t_eval=t_eval)
        if sol.status != 0:
            raise RuntimeError(f"RK45 probability-flow ODE failed: {sol.message}")
        traj = sol.y.T.reshape(len(sol.t), *shape)
        times, x_end = sol.t.copy(), torch.as_tensor(traj[-1], dtype=dtype).to(device)
        states = traj.astype(np.float32) if progression_steps else np.zeros((0, *shape), np.float32)
        name = f"rk45(rtol={rtol:g},atol={atol:g})"
    else:
        if not (isinstance(heun_steps, (int, np.integer)) and heun_steps >= 1):
            raise ValueError(f"sampler.heun_steps: expected a positive integer, got {heun_steps!r}")
        grid = heun_grid(sde, heun_steps, t_start=t_start)
        keep = set(progression_indices(heun_steps, progression_steps)) if progression_steps else set()
        x, kept, times = x_init.clone(), [], []
        for i in range(heun_steps + 1):
            if i in keep:
                kept.append(x.cpu().numpy().copy())
                times.append(grid[i])
            if i == heun_steps:
                break
            h = grid[i + 1] - grid[i]
            d1 = drift(x, float(grid[i]))
            d2 = drift(x + h * d1, float(grid[i + 1]))
            x = x + 0.5 * h * (d1 + d2)
        x_end, times = x, np.asarray(times)
        states = np.stack(kept).astype(np.float32) if kept else np.zeros((0, *shape), np.float32)
        name = f"heun({heun_steps})"
    if denoise:
        x_end = x_end + sde.marginal_std(sde.eps) ** 2 * score_fn(x_end, sde.eps)
        nfe += 1
        name += "+denoise"
        if len(states):
            states[-1] = x_end.cpu().numpy()
    return SampleResult(final=x_end.cpu().numpy().astype(np.float32), states=states, times=times, nfe=nfe,
                        sampler=name)
