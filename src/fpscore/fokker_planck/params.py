"""Numerical parameters of the score pre-computation (METHOD.md §1-5) and the time grid."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fpscore.config import schema_default
from fpscore.diffusion.sde import VESDE
from fpscore.names import BOUNDARIES, NEWTON_STOPS, NONLINEAR, SCHEMES


@dataclass(frozen=True)
class FPParams:
    """sigma, eps, n_times: SDE and time grid (§1); dh: lattice spacing h (§2);
    kde_bins, kde_floor: initial density (§4); picard_tol, picard_max_iter: §5;
    rtol: true relative residual every linear solve must reach; boundary, scheme: the ghost cells
    and the discretisation of (D m)^2 (§2b); nonlinear: the driver,
    "picard" (Algorithm 1, §5) or "newton" (per-level Newton, §5b) with newton_tol,
    newton_max_iter (relative-change tolerance and iteration cap per time level), newton_stop
    (``newton.newton_done``) and newton_monotone (``newton.newton_diverging``).
    Defaults: the schema's (config section ``scores``)."""

    sigma: float = schema_default("scores.sigma")
    eps: float = schema_default("scores.eps")
    n_times: int = schema_default("scores.n_times")
    dh: float = schema_default("scores.dh")
    kde_bins: int = schema_default("scores.kde_bins")
    kde_floor: float = schema_default("scores.kde_floor")
    picard_tol: float = schema_default("scores.picard_tol")
    picard_max_iter: int = schema_default("scores.picard_max_iter")
    rtol: float = schema_default("scores.rtol")
    nonlinear: str = schema_default("scores.nonlinear")
    boundary: str = schema_default("scores.boundary")
    scheme: str = schema_default("scores.scheme")
    newton_tol: float = schema_default("scores.newton_tol")
    newton_max_iter: int = schema_default("scores.newton_max_iter")
    newton_stop: str = schema_default("scores.newton_stop")
    newton_monotone: bool = schema_default("scores.newton_monotone")

    def __post_init__(self):
        checks = {
            "sigma": self.sigma > 1 and math.isfinite(self.sigma),
            "eps": 0 < self.eps < 1,
            "n_times": isinstance(self.n_times, (int, np.integer)) and self.n_times >= 2,
            "dh": self.dh > 0 and math.isfinite(self.dh),
            "kde_bins": isinstance(self.kde_bins, (int, np.integer)) and self.kde_bins >= 8,
            "kde_floor": 0 < self.kde_floor < 1,
            "picard_tol": 0 < self.picard_tol < 1,
            "picard_max_iter": isinstance(self.picard_max_iter, (int, np.integer)) and self.picard_max_iter >= 1,
            "rtol": 0 < self.rtol < 1,
            "nonlinear": self.nonlinear in NONLINEAR,
            "boundary": self.boundary in BOUNDARIES,
            "scheme": self.scheme in SCHEMES,
            "newton_tol": 0 < self.newton_tol < 1,
            "newton_max_iter": isinstance(self.newton_max_iter, (int, np.integer)) and self.newton_max_iter >= 1,
            "newton_stop": self.newton_stop in NEWTON_STOPS,
            "newton_monotone": isinstance(self.newton_monotone, (bool, np.bool_)),
        }
        expected = {
            "sigma": "a finite number > 1", "eps": "a number in (0, 1)", "n_times": "an integer >= 2",
            "dh": "a finite number > 0", "kde_bins": "an integer >= 8", "kde_floor": "a number in (0, 1)",
            "picard_tol": "a number in (0, 1)", "picard_max_iter": "an integer >= 1", "rtol": "a number in (0, 1)",
            "nonlinear": f"one of {', '.join(NONLINEAR)}", "boundary": f"one of {', '.join(BOUNDARIES)}",
            "scheme": f"one of {', '.join(SCHEMES)}", "newton_tol": "a number in (0, 1)",
            "newton_max_iter": "an integer >= 1", "newton_stop": f"one of {', '.join(NEWTON_STOPS)}",
            "newton_monotone": "true or false",
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"{key}: expected {expected[key]}, got {getattr(self, key)!r}")

    @property
    def sde(self) -> VESDE:
        """The VE SDE of these parameters: the one definition of g and the time grid."""
        return VESDE(sigma=self.sigma, eps=self.eps, n_times=self.n_times)

    def times(self) -> np.ndarray:
        """The time levels t_n (VESDE.times)."""
        return self.sde.times()

    def g(self) -> np.ndarray:
        """g(t_n) = sigma**t_n."""
        return self.sde.g(self.times())

    def as_dict(self) -> dict:
        return asdict(self)
