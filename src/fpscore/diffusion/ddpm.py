"""DDPM baseline (Ho et al. 2020): linear beta schedule, ancestral sampling, optional DDIM.

Indices are 0-based: step s = 0..T-1 is the paper's t = s + 1. The network
predicts epsilon; data live in [-1, 1] (images are mapped by 2 x - 1 and back).
Ancestral sampling uses sigma_t^2 = beta_t (Ho et al.'s CIFAR-10 choice) and no
noise at the last step; DDIM (Song et al. 2021) is deterministic (eta = 0).
Both can start part-way down (``start_step``: denoising a noisy copy, see
``closest_step``) instead of at x_T ~ N(0, I).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from fpscore.config import schema_default
from fpscore.diffusion.sampling import SampleResult, progression_indices


@dataclass(frozen=True)
class DDPMSchedule:
    """timesteps T, linear betas from beta_start to beta_end."""

    timesteps: int = schema_default("learn.ddpm.timesteps")
    beta_start: float = schema_default("learn.ddpm.beta_start")
    beta_end: float = schema_default("learn.ddpm.beta_end")

    def __post_init__(self):
        if not (isinstance(self.timesteps, (int, np.integer)) and self.timesteps >= 2):
            raise ValueError(f"ddpm.timesteps: expected an integer >= 2, got {self.timesteps!r}")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError(f"ddpm.beta_start, ddpm.beta_end: expected 0 < beta_start <= beta_end < 1, got "
                             f"{self.beta_start!r}, {self.beta_end!r}")

    @property
    def betas(self) -> np.ndarray:
        return np.linspace(self.beta_start, self.beta_end, self.timesteps, dtype=np.float64)

    @property
    def alphas(self) -> np.ndarray:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> np.ndarray:
        return np.cumprod(self.alphas)

    @property
    def alpha_bars_prev(self) -> np.ndarray:
        return np.concatenate([[1.0], self.alpha_bars[:-1]])

    @property
    def posterior_variance(self) -> np.ndarray:
        """Variance of q(x_{t-1} | x_t, x_0): beta_t (1 - abar_{t-1}) / (1 - abar_t)."""
        return self.betas * (1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)

    @property
    def noise_to_signal(self) -> np.ndarray:
        """sqrt(1 - abar_s) / sqrt(abar_s) per step: the std of the noise relative to the signal at step s."""
        return np.sqrt(1.0 - self.alpha_bars) / np.sqrt(self.alpha_bars)

    def closest_step(self, ratio: float) -> int:
        """The 0-based step whose noise-to-signal ratio is closest to `ratio` (> 0)."""
        if not (np.isfinite(ratio) and ratio > 0):
            raise ValueError(f"noise-to-signal ratio: expected a number > 0, got {ratio!r}")
        return int(np.argmin(np.abs(self.noise_to_signal - ratio)))

    def as_dict(self) -> dict:
        return asdict(self)


def _start(schedule: DDPMSchedule, start_step: int | None) -> int:
    s = schedule.timesteps - 1 if start_step is None else start_step
    if not (isinstance(s, (int, np.integer)) and 0 <= s < schedule.timesteps):
        raise ValueError(f"start_step: expected an integer in 0..{schedule.timesteps - 1}, got {start_step!r}")
    return int(s)


EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def ancestral_sample(eps_fn: EpsFn, x_init: torch.Tensor, schedule: DDPMSchedule, generator: torch.Generator,
                     progression_steps: int = 0, progress: bool = False,
                     start_step: int | None = None) -> SampleResult:
    """Ancestral sampling from x_init at 0-based step start_step (default T - 1: x_T ~ N(0, I)) down to x_0.

    eps_fn(x, steps) predicts epsilon for a batch at 0-based steps (float tensor B); x_0 is returned in
    [0, 1] units.
    """
    T = _start(schedule, start_step) + 1
    betas, alphas, abars = schedule.betas, schedule.alphas, schedule.alpha_bars
    keep = set(progression_indices(T, progression_steps)) if progression_steps else set()
    x, states, times = x_init.clone(), [], []
    for i, s in enumerate(_iter(range(T - 1, -1, -1), progress, "ddpm ancestral")):
        if i in keep:
            states.append(x.cpu().numpy().copy())
            times.append((s + 1) / schedule.timesteps)
        eps = eps_fn(x, torch.full((x.shape[0],), float(s), device=x.device))
        x = (x - betas[s] / np.sqrt(1.0 - abars[s]) * eps) / np.sqrt(alphas[s])
        if s > 0:
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = x + np.sqrt(betas[s]) * noise
    return _result(x, states, times, keep, T, nfe=T, sampler="ddpm-ancestral")


def ddim_timesteps(timesteps: int, steps: int) -> np.ndarray:
    """The ascending sub-sequence of `steps` 0-based steps DDIM visits (from 0 to T-1)."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"ddpm.ddim_steps: expected 1..{timesteps}, got {steps!r}")
    return np.unique(np.round(np.linspace(0, timesteps - 1, steps)).astype(int))


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, x_init: torch.Tensor, schedule: DDPMSchedule, steps: int,
                progression_steps: int = 0, progress: bool = False, start_step: int | None = None) -> SampleResult:
    """Deterministic DDIM (eta = 0) over `steps` steps (at most start_step + 1) from x_init at step
    start_step (default T - 1: x_T ~ N(0, I)) down to x_0 (returned in [0, 1] units)."""
    first = _start(schedule, start_step)
    if start_step is not None:
        steps = min(steps, first + 1)
    seq = ddim_timesteps(first + 1, steps)
    abars = schedule.alpha_bars
    keep = set(progression_indices(len(seq), progression_steps)) if progression_steps else set()
    x, states, times = x_init.clone(), [], []
    for i, s in enumerate(_iter(seq[::-1], progress, "ddim")):
        if i in keep:
            states.append(x.cpu().numpy().copy())
            times.append((s + 1) / schedule.timesteps)
        eps = eps_fn(x, torch.full((x.shape[0],), float(s), device=x.device))
        x0 = (x - np.sqrt(1.0 - abars[s]) * eps) / np.sqrt(abars[s])
        prev = abars[seq[len(seq) - 2 - i]] if i < len(seq) - 1 else 1.0
        x = np.sqrt(prev) * x0 + np.sqrt(1.0 - prev) * eps
    return _result(x, states, times, keep, len(seq), nfe=len(seq), sampler=f"ddim-{len(seq)}")


def _iter(seq, progress: bool, desc: str):
    if not progress:
        return seq
    from tqdm import tqdm

    return tqdm(seq, desc=desc, leave=False)


def _result(x, states, times, keep, n_steps, nfe, sampler) -> SampleResult:
    final = x.cpu().numpy()
    if n_steps in keep:  # the last progression state is the final image
        states.append(final.copy())
        times.append(0.0)
    to_unit = lambda a: ((a + 1.0) / 2.0).astype(np.float32)  # noqa: E731  [-1, 1] -> [0, 1]
    stacked = np.stack([to_unit(s) for s in states]) if states else np.zeros((0, *final.shape), np.float32)
    return SampleResult(final=to_unit(final), states=stacked, times=np.asarray(times, dtype=np.float64),
                        nfe=nfe, sampler=sampler)
