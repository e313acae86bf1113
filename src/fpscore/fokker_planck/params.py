"""Numerical parameters of the score pre-computation (METHOD.md §1-5) and the time grid."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fpscore.config import check, schema_default
from fpscore.diffusion.sde import VESDE
from fpscore.names import NONLINEAR  # noqa: F401  (fpscore.scores imports it from here)


@dataclass(frozen=True)
class FPParams:
    """sigma, eps, n_times: SDE and time grid (§1); dh: lattice spacing h (§2);
    kde_bins, kde_floor: initial density (§4); picard_tol, picard_max_iter: §5;
    rtol: true relative residual every linear solve must reach; boundary, scheme: the ghost cells
    and the discretisation of (D m)^2 (§2b); nonlinear: the driver,
    "picard" (Algorithm 1, §5) or "newton" (per-level Newton, §5b) with newton_tol,
    newton_max_iter (relative-change tolerance and iteration cap per time level), newton_stop
    (``newton.newton_done``) and newton_monotone (``newton.newton_diverging``).
    Defaults and allowed values: the schema's (config section ``scores``)."""

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
        check("scores", asdict(self))  # ValueError naming the key: "scores.rtol: expected a number in (0, 1), ..."

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
