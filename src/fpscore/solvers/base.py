"""The linear-solver protocol of the score pre-computation (METHOD.md §3, §5).

The fixed-point driver (``fpscore.fokker_planck.picard.solve_channel``, called
per image channel by ``fpscore.scores.compute_scores``) assembles each system
A^{n,(k)} x = b^{n,(k)} and hands it to a ``Solver`` as a ``SolveContext``:

* ``ctx.system`` is the ``FPSystem`` of this image size (one per size, values
  overwritten in place per system): ``ctx.system.csr`` is a SciPy CSR matrix and
  ``ctx.system.petsc`` a PETSc ``seqaij`` Mat; both share one value array and hold
  the current A. ``ctx.b`` is the right-hand side (flat, length H*W, float64).
* ``ctx.image``, ``ctx.channel``, ``ctx.picard_iter`` (k >= 1), ``ctx.time_level``
  (n in 1..n_times-1), ``ctx.n_times`` say which system this is.
* ``ctx.guess_iter`` is m^{n,(k-1)} of the same (image, channel, n) (at k = 1 it
  is m^0, the definition of m^{(0)}); ``ctx.guess_time`` is m^{n-1,(k)}, the
  solution one time level earlier in this sweep (it is also b when f = 0).
  ``ctx.extrapolated()`` predicts m^{n,(k)} from both (see there).
  Read-only: copy before modifying.

``solve`` returns ``(x, SolveStats)``; x must reach the TRUE relative residual
||b - A x||_2 / ||b||_2 <= ``solver.rtol`` (use ``true_relative_residual`` to
check; raise ``SolverError`` if it cannot), so every solver gives the same m.
The driver times assembly and ``solve`` itself and writes one log row per call.

``prepare(images, params)`` runs once before a set (N, C, H, W) is solved; the
projection solver solves its seed images there (by calling
``compute_scores(seed_images, params, inner_solver, image_indices=...)`` with a
recording inner solver) and returns the log rows of that work so they enter
the solve log. For the sharded workflow the prepared state is its own file:
``save_prepared(path)`` after ``prepare`` (rule ``scores_prepare``), and
``load_prepared(path)`` in every shard job, after which ``prepare`` must do
nothing (return []). Solvers with no preparation keep the defaults.
``close()`` frees PETSc objects.

Shard independence: the result for an image must not depend on which other
images the same solver object solved before (the merged scores must be
byte-identical whatever the shard size); state carried between images (PETSc's
guess space) breaks that and must be documented where it is offered.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from fpscore.fokker_planck.assembly import FPSystem
    from fpscore.fokker_planck.params import FPParams

#: Columns of the solve log, one row per linear solve (in this order).
LOG_COLUMNS = (
    "image", "channel", "picard_iter", "time_level", "solver", "iterations",
    "initial_residual", "final_residual", "projection_residual",
    "assemble_seconds", "solve_seconds", "converged",
)


class SolverError(RuntimeError):
    """A linear solve failed or could not reach the required residual."""


@dataclass(slots=True)
class SolveContext:
    """One linear system A^{n,(k)} x = b^{n,(k)} of one image channel (read-only by convention:
    not frozen, because a frozen dataclass costs microseconds per solve in the driver's hot loop).

    ``prev_iter_time`` is m^{n-1,(k-1)} (k > 1) and ``prev_time2`` is m^{n-2,(k)}
    (n > 1); the driver sets them, hand-built contexts may leave them None.
    """

    image: int
    channel: int
    picard_iter: int
    time_level: int
    n_times: int
    system: "FPSystem"
    b: np.ndarray
    guess_iter: np.ndarray
    guess_time: np.ndarray
    prev_iter_time: np.ndarray | None = None
    prev_time2: np.ndarray | None = None

    def extrapolated(self, out: np.ndarray | None = None) -> np.ndarray:
        """First-order prediction of m^{n,(k)}, the warm start of ``extrapolate``.

        k > 1: m^{n,(k-1)} + (m^{n-1,(k)} - m^{n-1,(k-1)}), the previous iterate moved by the
        change this sweep made one level earlier; k = 1: 2 m^{n-1,(1)} - m^{n-2,(1)}, linear
        in time (m^{0} alone at n = 1). Falls back to ``guess_iter`` / ``guess_time``
        when the older vectors are not given (then returned as they are, ``out`` unused).
        ``out``: an array of the same shape to write the prediction into.
        """
        if self.picard_iter > 1:
            if self.prev_iter_time is None:
                return self.guess_iter
            x = np.subtract(self.guess_time, self.prev_iter_time, out=out)
            x += self.guess_iter
            return x
        if self.prev_time2 is None:
            return self.guess_time
        x = np.multiply(self.guess_time, 2.0, out=out)
        x -= self.prev_time2
        return x


@dataclass(slots=True)
class SolveStats:
    """What a solver reports about one solve (the driver adds the timings)."""

    iterations: int
    initial_residual: float
    final_residual: float
    projection_residual: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)


def vnorm(x: np.ndarray) -> float:
    """2-norm without BLAS: numpy's threaded OpenBLAS, woken between PETSc calls, spins
    against PETSc on few cores (measured 3x slower whole runs on 2 cores)."""
    x = np.ravel(x)
    return math.sqrt(float(np.einsum("i,i->", x, x)))


def true_relative_residual(system: "FPSystem", x: np.ndarray, b: np.ndarray, bnorm: float | None = None) -> float:
    """||b - A x||_2 / ||b||_2 with A the system's current values (||b|| = 0 -> ||A x||)."""
    nb = vnorm(b) if bnorm is None else bnorm
    nr = vnorm(b - system.csr @ x)
    return nr / nb if nb > 0 else nr


class Solver(ABC):
    """Base class of the score solvers: subclass, set ``name``, implement ``solve``."""

    name: str = "base"

    def __init__(self, rtol: float = 1e-10):
        if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
            raise ValueError(f"rtol: expected a relative residual in (0, 1), got {rtol!r}")
        self.rtol = float(rtol)

    def prepare(self, images: np.ndarray, params: "FPParams") -> list[dict]:
        """Work before the set (N, C, H, W) is solved; returns solve-log rows. Default: none."""
        return []

    def save_prepared(self, path: str) -> None:
        """Write what ``prepare`` built (e.g. seed subspaces) to ``path`` (an .npz)."""
        raise NotImplementedError(f"solver {self.name} has no prepared state to save")

    def load_prepared(self, path: str) -> None:
        """Load what ``save_prepared`` wrote; ``prepare`` then does nothing."""
        raise NotImplementedError(f"solver {self.name} has no prepared state to load")

    @abstractmethod
    def solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        """Solve ctx's system to true relative residual <= self.rtol."""

    def describe(self) -> dict[str, Any]:
        """Solver settings recorded with the scores (JSON-serialisable)."""
        return {"solver": self.name, "rtol": self.rtol}

    def close(self) -> None:
        """Free resources (PETSc objects); the solver is not used afterwards."""

    def __enter__(self) -> "Solver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
