"""``ksp``: PETSc KSP configured from a PETSc options string (METHOD.md §3, §6 baselines).

One KSP per image size, under the options prefix ``fp_``: defaults (GMRES +
ILU(0)), then the config's options (``"-ksp_type bcgs -pc_type jacobi"``, no
prefix) through ``setFromOptions``. An option PETSc rejects, or one it never
reads (a typo), is a ValueError naming it. The options are put into PETSc's
database only while this solver configures its KSP (first solve of a size)
and removed right after, so several solvers with different options can live
in one process.

Residuals: the KSP monitors the unpreconditioned residual (right
preconditioning where the method needs it) relative to ||b||; after every solve
the TRUE relative residual ||b - A x|| / ||b|| is computed, and if rounding or a
user-chosen preconditioned norm left it above rtol, the solve continues from x
with a tightened tolerance until it is met. If the KSP diverges or stagnates
(systems of a diverging fixed-point iteration), the system is solved directly
(SuperLU) with a RuntimeWarning, so ``ksp`` and ``spsolve`` give the same m.

Warm start (``warm_start=True``): the initial guess is the previous fixed-point
iterate at the same time level, m^{n,(k-1)}; at k = 1 (no iterate yet) it is
m^{n-1,(1)}, the solution one time level earlier.

PETSc's own guess reuse (``-ksp_guess_type pod`` / ``fischer``): PETSc resets
the guess space whenever the operator's values change (KSPGuessSetUp) unless
the PC is marked for reuse, and marking it for reuse would freeze the
preconditioner at the first matrix. This solver refreshes the PC for the new
matrix itself (KSPSetUp with reuse off) and then marks it for reuse, so the
solve keeps the guess space across time levels, fixed-point iterations and
images while the preconditioner stays current. The space then holds solutions
of other operators: the guess is a projection on them (a warm start from many
earlier solutions), not Fischer's exact A-orthogonal projection.
"""
from __future__ import annotations

import re
import shlex
import warnings
from typing import Any

import numpy as np

from fpscore.solvers.direct import direct_solve
from fpscore.solvers.base import SolveContext, Solver, SolverError, SolveStats, true_relative_residual, vnorm

DEFAULT_PREFIX = "fp_"
_MAX_TIGHTEN = 6
_MAX_IT = 1000  # default iteration cap of one KSP solve (-ksp_max_it overrides)


def parse_options(options: str) -> list[tuple[str, str | None]]:
    """'-ksp_type gmres -ksp_monitor' -> [('ksp_type', 'gmres'), ('ksp_monitor', None)]."""
    if not isinstance(options, str):
        raise ValueError(f"ksp_options: expected a string of PETSc options, got {options!r}")
    try:
        tokens = shlex.split(options)
    except ValueError as err:
        raise ValueError(f"ksp_options: cannot parse {options!r}: {err}") from None
    parsed: list[tuple[str, str | None]] = []
    for tok in tokens:
        if tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
            parsed.append((tok.lstrip("-"), None))
        elif parsed and parsed[-1][1] is None:
            parsed[-1] = (parsed[-1][0], tok)
        else:
            raise ValueError(f"ksp_options: value {tok!r} does not follow an option name in {options!r}")
    for name, _ in parsed:
        if name.startswith(DEFAULT_PREFIX):
            raise ValueError(f"ksp_options: give options without the {DEFAULT_PREFIX} prefix, got -{name}")
    return parsed


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _petsc():
    from petsc4py import PETSc

    return PETSc


class KspSolver(Solver):
    """PETSc KSP from an options string, optionally warm-started (see module docstring)."""

    name = "ksp"

    def __init__(self, rtol: float = 1e-10, options: str = "", warm_start: bool = False,
                 prefix: str = DEFAULT_PREFIX):
        super().__init__(rtol)
        self.options = options
        self.parsed = parse_options(options)
        self.warm_start = bool(warm_start)
        self.prefix = prefix
        names = {n for n, _ in self.parsed}
        self.uses_guess = "ksp_guess_type" in names
        self._force_unpreconditioned = not ({"ksp_norm_type", "ksp_pc_side"} & names)
        self._ksps: dict[int, tuple[Any, Any, Any]] = {}  # n -> (ksp, b, x)
        self._ops: dict[int, Any] = {}  # n -> Mat currently set as operator
        self._types: dict[int, str] = {}  # n -> KSP type
        self.fallbacks = 0  # systems solved directly after the KSP failed
        self._warned: set[tuple[int, int]] = set()

    # ---- configuration -------------------------------------------------------------------
    def _insert(self, parsed) -> list[str]:
        opts = _petsc().Options()
        keys = []
        for name, value in parsed:
            key = self.prefix + name
            opts.setValue(key, "" if value is None else value)
            keys.append(key)
        return keys

    def _remove(self, keys) -> None:
        opts = _petsc().Options()
        for key in keys:
            if opts.hasName(key):
                opts.delValue(key)

    def _new_ksp(self, n: int):
        """KSP with our defaults, then setFromOptions with the options inserted (caller removes them)."""
        PETSc = _petsc()
        ksp = PETSc.KSP().create(comm=PETSc.COMM_SELF)
        ksp.setOptionsPrefix(self.prefix)
        ksp.setType(PETSc.KSP.Type.GMRES)
        ksp.getPC().setType(PETSc.PC.Type.ILU)
        # no divergence test by default: a poor initial guess (PETSc's pod guess can start 1e7 above ||b||)
        # is corrected by iterating on, not abandoned
        ksp.setTolerances(rtol=self.rtol, atol=0.0, divtol=1e300, max_it=_MAX_IT)
        ksp.setFromOptions()
        if self._force_unpreconditioned and ksp.getType() != PETSc.KSP.Type.PREONLY:
            ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        ksp.setConvergenceHistory(length=_MAX_IT + 1, reset=True)
        return ksp

    def _culprit(self, A) -> str:
        """The first option whose addition makes configuration or setup fail (to name it in the error)."""
        for i in range(1, len(self.parsed) + 1):
            keys = self._insert(self.parsed[:i])
            ksp = None
            try:
                ksp = self._new_ksp(0)
                ksp.setOperators(A)
                ksp.setUp()
            except _petsc().Error:
                name, value = self.parsed[i - 1]
                return f"-{name}" + ("" if value is None else f" {value}")
            finally:
                if ksp is not None:
                    ksp.destroy()
                self._remove(keys)
        return self.options

    def _configure(self, ctx: SolveContext):
        """Build the KSP of this size and run its first solve with the options in the database."""
        PETSc = _petsc()
        n = ctx.system.n
        A = ctx.system.petsc
        keys = self._insert(self.parsed)
        try:
            try:
                ksp = self._new_ksp(n)
                ksp.setOperators(A)
                ksp.setUp()  # sub-solver options are read at the first setup
            except PETSc.Error as err:
                self._remove(keys)
                raise ValueError(f"ksp_options: PETSc rejected {self._culprit(A)!r} in {self.options!r}: "
                                 f"{_message(err)}") from None
            b, x = A.createVecs()
            self._ksps[n] = (ksp, b, x)
            self._ops[n] = A
            self._types[n] = ksp.getType()
            opts = PETSc.Options()
            unused = [f"-{k[len(self.prefix):]}" for k in keys if not opts.used(k)]
            if unused:
                raise ValueError(f"ksp_options: PETSc did not use {', '.join(unused)} (misspelt, or not "
                                 f"applicable to this solver) in {self.options!r}")
        finally:
            self._remove(keys)
        return self._solve(ctx)

    # ---- solving --------------------------------------------------------------------------
    def solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        if ctx.system.n not in self._ksps:
            return self._configure(ctx)
        A = ctx.system.petsc
        if self._ops[ctx.system.n] is not A:
            self._ksps[ctx.system.n][0].setOperators(A)
            self._ops[ctx.system.n] = A
        return self._solve(ctx)

    def initial_guess(self, ctx: SolveContext) -> np.ndarray | None:
        """Warm-start vector for ctx, or None for a zero guess."""
        if not self.warm_start:
            return None
        return ctx.guess_iter if ctx.picard_iter > 1 else ctx.guess_time

    def _solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        PETSc = _petsc()
        ksp, b, x = self._ksps[ctx.system.n]
        b.array[:] = ctx.b
        guess = self.initial_guess(ctx)
        if self._types[ctx.system.n] == PETSc.KSP.Type.PREONLY:
            guess = None  # a direct solve (-ksp_type preonly -pc_type lu) takes no initial guess
        if guess is None:
            x.set(0.0)
        else:
            x.array[:] = guess
        ksp.setInitialGuessNonzero(guess is not None)
        if self.uses_guess:  # keep PETSc's guess space across operator changes, PC kept current
            pc = ksp.getPC()
            pc.setReusePreconditioner(False)
            ksp.setUp()
            pc.setReusePreconditioner(True)
        bnorm = vnorm(ctx.b)
        iterations, initial, rtol = 0, None, self.rtol
        try:
            for _ in range(_MAX_TIGHTEN + 1):
                ksp.solve(b, x)
                iterations += ksp.getIterationNumber()
                if initial is None:
                    initial = self._initial_residual(ksp, ctx, guess, bnorm)
                xa = x.array
                res = true_relative_residual(ctx.system, xa, ctx.b, bnorm)
                if (res <= self.rtol or self._types[ctx.system.n] == PETSc.KSP.Type.PREONLY
                        or ksp.getConvergedReason() < 0):
                    break
                # stopped on a recursive or preconditioned residual: continue from x, tighter
                rtol = max(rtol * 0.5 * self.rtol / res, 1e-16)
                ksp.setTolerances(rtol=rtol)
                ksp.setInitialGuessNonzero(True)
        except PETSc.Error as err:
            raise SolverError(f"ksp: PETSc failed ({_where(ctx)}): {_message(err)}") from None
        finally:
            if rtol != self.rtol:
                ksp.setTolerances(rtol=self.rtol)
        stats = SolveStats(iterations=iterations, initial_residual=initial, final_residual=res)
        if not res <= self.rtol:  # KSP diverged or stagnated: a direct solve, never a silent miss
            reason = ksp.getConvergedReason()
            self.fallbacks += 1
            if (ctx.image, ctx.channel) not in self._warned:  # once per channel: a diverging channel has many
                self._warned.add((ctx.image, ctx.channel))
                warnings.warn(f"ksp: KSP stopped at true relative residual {res:.3e} > rtol {self.rtol:.1e} after "
                              f"{iterations} iterations (reason {reason}, {_where(ctx)}; options {self.options!r}); "
                              "falling back to a direct solve (further fallbacks of this channel not reported)",
                              RuntimeWarning, stacklevel=2)
            xa, res, solves = direct_solve(ctx.system, ctx.b, self.rtol, _where(ctx))
            stats.final_residual = res
            stats.extra.update(fallback="spsolve", ksp_reason=int(reason), ksp_iterations=iterations)
        return xa.copy(), stats

    def _initial_residual(self, ksp, ctx: SolveContext, guess, bnorm: float) -> float:
        """||b - A x0|| / ||b|| of the initial guess (PETSc's own guess: from the residual history)."""
        PETSc = _petsc()
        if guess is None and not self.uses_guess:
            return 1.0
        hist = ksp.getConvergenceHistory()
        if len(hist) and ksp.getNormType() == PETSc.KSP.NormType.UNPRECONDITIONED:
            return float(hist[0]) / (bnorm or 1.0)
        if self.uses_guess:
            return float("nan")
        return 1.0 if guess is None else true_relative_residual(ctx.system, guess, ctx.b)

    def describe(self) -> dict[str, Any]:
        return {"solver": self.name, "rtol": self.rtol, "ksp_options": self.options, "warm_start": self.warm_start}

    def close(self) -> None:
        for ksp, b, x in self._ksps.values():
            ksp.destroy()
            b.destroy()
            x.destroy()
        self._ksps.clear()
        self._ops.clear()
        self._types.clear()


def _where(ctx: SolveContext) -> str:
    return (f"image {ctx.image}, channel {ctx.channel}, Picard iteration {ctx.picard_iter}, "
            f"time level {ctx.time_level}")


def _message(err: Exception) -> str:
    """PETSc's own messages from an error, without the call trace."""
    lines = [ln.split("] ", 1)[-1].strip() for ln in str(err).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("error code") and not re.search(r"\(\) at \S+:\d+$", ln)]
    return "; ".join(dict.fromkeys(lines)) or str(err)
