"""The variance-exploding SDE of METHOD.md section 1: g, lambda and the time levels.

    g(t)      = sigma**t
    lambda(t) = sqrt((sigma**(2t) - 1) / (2 ln sigma))    (so d lambda^2 / dt = g^2)
    t_n       = linspace(eps, 1, N)

Functions accept floats, numpy arrays or torch tensors and return the same kind.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fpscore.config import schema_default


@dataclass(frozen=True)
class VESDE:
    """sigma: diffusion base (> 1); eps: first time level; n_times: number of time levels N
    (defaults: the schema's, config section ``scores``)."""

    sigma: float = schema_default("scores.sigma")
    eps: float = schema_default("scores.eps")
    n_times: int = schema_default("scores.n_times")

    def __post_init__(self):
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma) and self.sigma > 1):
            raise ValueError(f"sigma: expected a finite number > 1, got {self.sigma!r}")
        if not (isinstance(self.eps, (int, float)) and 0 < self.eps < 1):
            raise ValueError(f"eps: expected a number in (0, 1), got {self.eps!r}")
        if not (isinstance(self.n_times, (int, np.integer)) and self.n_times >= 2):
            raise ValueError(f"n_times: expected an integer >= 2, got {self.n_times!r}")

    @property
    def log_sigma(self) -> float:
        return math.log(self.sigma)

    def g(self, t):
        """Diffusion coefficient g(t) = sigma**t."""
        return self.sigma ** t

    def marginal_std(self, t):
        """lambda(t): std of x(t) - x(0) under the SDE (f = 0)."""
        if isinstance(t, (int, float)):
            return math.sqrt(math.expm1(2 * t * self.log_sigma) / (2 * self.log_sigma))
        mod = np if isinstance(t, np.ndarray) else _torch()
        return mod.sqrt(mod.expm1(2 * t * self.log_sigma) / (2 * self.log_sigma))

    def time_of_std(self, lam: np.ndarray) -> np.ndarray:
        """Inverse of lambda: t = ln(1 + 2 ln(sigma) lambda^2) / (2 ln sigma)."""
        return np.log1p(2 * self.log_sigma * np.asarray(lam, dtype=np.float64) ** 2) / (2 * self.log_sigma)

    def times(self) -> np.ndarray:
        """The time levels t_n = linspace(eps, 1, N)."""
        return np.linspace(self.eps, 1.0, self.n_times)

    def prior_std(self) -> float:
        """Std of the sampling prior x(1) ~ N(0, lambda(1)^2 I) (METHOD.md section 9)."""
        return self.marginal_std(1.0)

    def as_dict(self) -> dict:
        return asdict(self)


def _torch():
    import torch

    return torch
