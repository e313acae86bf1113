"""The linear-solver protocol of the score pre-computation (METHOD.md §3, §5).

A nonlinear driver (Picard sweeps, ``fpscore.fokker_planck.picard``, or per-level Newton,
``fpscore.fokker_planck.newton``, both through ``fpscore.fokker_planck.step.linear_step``;
called per image channel by ``fpscore.scores.compute_scores``) assembles each system
A x = b and hands it to a ``Solver`` as a ``SolveContext``:

* ``ctx.system`` is the ``FPSystem`` of this image size (one per size, values
  overwritten in place per system): ``ctx.system.csr`` is a SciPy CSR matrix and
  ``ctx.system.petsc`` a PETSc ``seqaij`` Mat; both share one value array and hold
  the current A. ``ctx.b`` is the right-hand side (flat, length H*W, float64).
* ``ctx.image``, ``ctx.channel``, ``ctx.outer_iter`` (k >= 1: Picard sweep or Newton
  iteration), ``ctx.time_level`` (n in 1..n_times-1), ``ctx.n_times`` say which system this is.
* ``ctx.prev_outer`` is the previous outer iterate at this level, ``ctx.prev_level`` the
  solution one time level earlier; ``ctx.previous()`` / ``ctx.extrapolated()`` are the
  plain and the extrapolated warm start (see there). Read-only: copy before modifying.

``solve`` returns ``(x, SolveStats)``; x must reach the TRUE relative residual
||b - A x||_2 / ||b||_2 <= ``solver.rtol`` (use ``true_relative_residual`` to
check; raise ``SystemFailure`` if it cannot), so every solver gives the same m.
The driver times assembly and ``solve`` itself and writes one log row per call.

Preparation (``fpscore.scores.prepare_solver(images, params, solver)``, run by
``compute_scores`` before a set (N, C, H, W) is solved): the driver asks
``solver.seed_request(images)`` for images to solve first and a recording solver
(None: nothing to prepare), solves them with that recorder, and hands the recorder
to ``solver.build_prepared(recorder)``; the log rows of that work lead the solve log.
``prepare(images, params)`` is that call, kept as the solver-side entry point.
For the sharded workflow the prepared state is its own file:
``save_prepared(path)`` after ``prepare`` (rule ``scores_prepare``), and
``load_prepared(path)`` in every shard job, after which ``prepare`` must do
nothing (return []). Solvers with no preparation keep the defaults.
``close()`` frees PETSc objects. A solver with ``solve_set(images, params, labels)``
(the batched engine) takes the whole set instead of single contexts: ``compute_scores``
hands it every channel at once and merges the log rows it returns.

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

from fpscore.config import schema_default

if TYPE_CHECKING:  # pragma: no cover
    from fpscore.fokker_planck.assembly import FPSystem
    from fpscore.fokker_planck.params import FPParams

#: Columns of the solve log with one row per linear solve (``scores.solve_log: solve``), in this order.
#: ``startup_seconds``: the process's one-time costs before its first timed solve (imports, compiled
#: kernels; ``fpscore.fokker_planck.step.startup_seconds``) in the first row of a ``compute_scores``
#: call, 0 elsewhere.
LOG_COLUMNS = (
    "image", "channel", "picard_iter", "time_level", "solver", "iterations",
    "initial_residual", "final_residual", "projection_residual",
    "assemble_seconds", "solve_seconds", "converged", "startup_seconds",
)
#: Columns of the solve log with one row per image, channel and time level (``scores.solve_log: level``,
#: the default): ``picard_iter`` the outer iterations at that level (Newton iterations, or Picard
#: sweeps), ``solves`` its linear solves, ``iterations`` their Krylov iterations summed and
#: ``max_iterations`` the most of one solve, ``final_residual`` the worst true relative residual,
#: the seconds summed, ``converged`` False where the level (Newton) or the channel (Picard) did not
#: converge; ``startup_seconds`` as in LOG_COLUMNS.
LEVEL_COLUMNS = (
    "image", "channel", "time_level", "solver", "picard_iter", "solves", "iterations", "max_iterations",
    "final_residual", "assemble_seconds", "solve_seconds", "converged", "startup_seconds",
)
#: The columns of each kind of solve log (names.SOLVE_LOGS).
LOG_KINDS = {"solve": LOG_COLUMNS, "level": LEVEL_COLUMNS}


class SolverError(RuntimeError):
    """A linear solve failed or could not reach the required residual."""


class SystemFailure(SolverError):
    """One system's solution misses rtol or is not finite although the solver ran as configured:
    a numerical failure of that system (typically an ill-conditioned system at a diverging
    nonlinear iterate). The nonlinear drivers flag its channel as not converged and go on;
    every other SolverError (a misconfigured or misused solver) stops the job."""


@dataclass(slots=True)
class SolveContext:
    """One linear system A x = b of one image channel, named without reference to the
    nonlinear driver that built it (read-only by convention: not frozen, because a frozen
    dataclass costs microseconds per solve in the driver's hot loop).

    ``outer_iter`` (>= 1) is the driver's iteration: the Picard sweep k, or the Newton
    iteration j + 1 at this level. ``prev_outer`` is the previous outer iterate at this
    level (Picard: m^{n,(k-1)}, m^0 at k = 1; Newton: x^{(j)}, the §5b guess at j = 0);
    ``prev_level`` is m^{n-1} of the current outer iterate (also b when f = 0).
    ``prev_outer_prev_level`` is m^{n-1,(k-1)} (Picard, k > 1) and ``prev_level2`` is
    m^{n-2} (n > 1); the driver sets them, hand-built contexts may leave them None.
    ``nonlinear`` names the driver ("picard" or "newton").
    """

    image: int
    channel: int
    outer_iter: int
    time_level: int
    n_times: int
    system: "FPSystem"
    b: np.ndarray
    prev_outer: np.ndarray
    prev_level: np.ndarray
    nonlinear: str
    prev_outer_prev_level: np.ndarray | None = None
    prev_level2: np.ndarray | None = None

    def where(self) -> str:
        """'image i, channel c, <driver> iteration k, time level n' for messages."""
        return (f"image {self.image}, channel {self.channel}, {self.nonlinear.capitalize()} iteration "
                f"{self.outer_iter}, time level {self.time_level}")

    def previous(self) -> np.ndarray:
        """The plain warm start: Newton: the current iterate x^{(j)}; Picard: m^{n,(k-1)},
        at k = 1 m^{n-1,(1)} (the solution one level earlier; m^0 is no better)."""
        if self.nonlinear == "newton" or self.outer_iter > 1:
            return self.prev_outer
        return self.prev_level

    def extrapolated(self, out: np.ndarray | None = None) -> np.ndarray:
        """First-order prediction of this solution, the warm start of ``extrapolate``.

        Newton: x^{(j)} itself (at j = 0 it already is the extrapolation 2 m^{n-1} - m^{n-2}).
        Picard k > 1: m^{n,(k-1)} + (m^{n-1,(k)} - m^{n-1,(k-1)}), the previous iterate moved by
        the change this sweep made one level earlier; k = 1: 2 m^{n-1,(1)} - m^{n-2,(1)}, linear
        in time (m^{0} alone at n = 1). Falls back to ``prev_outer`` / ``prev_level``
        when the older vectors are not given (then returned as they are, ``out`` unused).
        ``out``: an array of the same shape to write the prediction into.
        """
        if self.nonlinear == "newton":
            return self.prev_outer
        if self.outer_iter > 1:
            if self.prev_outer_prev_level is None:
                return self.prev_outer
            x = np.subtract(self.prev_level, self.prev_outer_prev_level, out=out)
            x += self.prev_outer
            return x
        if self.prev_level2 is None:
            return self.prev_level
        x = np.multiply(self.prev_level, 2.0, out=out)
        x -= self.prev_level2
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

    def __init__(self, rtol: float = schema_default("scores.rtol")):
        if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
            raise ValueError(f"rtol: expected a relative residual in (0, 1), got {rtol!r}")
        self.rtol = float(rtol)

    def seed_request(self, images: np.ndarray):
        """(image indices, recording solver) to solve before the set, or None (the default)."""
        return None

    def build_prepared(self, recorder: "Solver") -> None:
        """Build the prepared state from what ``recorder`` saw (only with a seed_request)."""

    def save_prepared(self, path: str) -> None:
        """Write what ``build_prepared`` built (e.g. seed subspaces) to ``path`` (an .npz)."""
        raise NotImplementedError(f"solver {self.name} has no prepared state to save")

    def load_prepared(self, path: str) -> None:
        """Load what ``save_prepared`` wrote; ``prepare`` then does nothing."""
        raise NotImplementedError(f"solver {self.name} has no prepared state to load")

    @abstractmethod
    def solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        """Solve ctx's system to true relative residual <= self.rtol."""

    def load(self) -> None:
        """Pay this solver's one-time costs of a process (imports, compiled kernels) now, before any solve
        is timed (``compute_scores`` calls it first and logs its seconds as start-up); default: nothing."""

    def describe(self) -> dict[str, Any]:
        """Solver settings recorded with the scores (JSON-serialisable)."""
        return {"solver": self.name, "rtol": self.rtol}

    def close(self) -> None:
        """Free resources (PETSc objects); the solver is not used afterwards."""

    def __enter__(self) -> "Solver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
