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

Warm start (``warm_start=True``): the initial guess is ``SolveContext.previous()``:
Picard: the previous fixed-point iterate at the same time level, m^{n,(k-1)}; at
k = 1 (no iterate yet) m^{n-1,(1)}, the solution one time level earlier; Newton: the
current Newton iterate x^{(j)} (at j = 0 the §5b guess 2 m^{n-1} - m^{n-2}). With
``extrapolate=True`` (the default) it is ``SolveContext.extrapolated()`` instead
(Picard: that iterate moved by the change the current sweep made one level earlier,
k = 1: linear in time, which halves the initial residual and saves ~8% of the Krylov
iterations; Newton: the same as the plain warm start).

PETSc's own guess reuse (``-ksp_guess_type pod`` / ``fischer``): PETSc resets
the guess space whenever the operator's values change (KSPGuessSetUp) unless
the PC is marked for reuse, and marking it for reuse would freeze the
preconditioner at the first matrix. This solver refreshes the PC for the new
matrix itself (KSPSetUp with reuse off) and then marks it for reuse, so the
solve keeps the guess space across time levels, fixed-point iterations and
images while the preconditioner stays current. The space then holds solutions
of other operators: the guess is a projection on them (a warm start from many
earlier solutions), not Fischer's exact A-orthogonal projection; it replaces
the warm start when both are set. Keeping the space across images makes an
image's result depend (at the rtol level) on what was solved before it, so
shard-size independence of the merged scores does not hold bit for bit there.
"""
from __future__ import annotations

import re
import shlex
import warnings
from typing import Any

import numpy as np

from fpscore.config import schema_default
from fpscore.solvers.direct import direct_solve
from fpscore.solvers.base import SolveContext, Solver, SolverError, SolveStats, true_relative_residual

DEFAULT_PREFIX = "fp_"
_MAX_TIGHTEN = 6
_MAX_IT = 200  # default iteration cap of one KSP solve (-ksp_max_it overrides); healthy solves need < 30


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

    def __init__(self, rtol: float = schema_default("scores.rtol"),
                 options: str = schema_default("scores.ksp_options"),
                 warm_start: bool = schema_default("scores.warm_start"), prefix: str = DEFAULT_PREFIX,
                 extrapolate: bool = schema_default("scores.extrapolate")):
        super().__init__(rtol)
        self.options = options
        self.parsed = parse_options(options)
        self.warm_start = bool(warm_start)
        self.extrapolate = bool(extrapolate)
        self.prefix = prefix
        names = {n for n, _ in self.parsed}
        self.uses_guess = "ksp_guess_type" in names
        self._force_unpreconditioned = not ({"ksp_norm_type", "ksp_pc_side"} & names)
        self._slots: dict[int, _Slot] = {}  # one KSP per system size n = H*W
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

    def _new_ksp(self):
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
                ksp = self._new_ksp()
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

    def _configure(self, system) -> "_Slot":
        """Build the KSP of this system's size with the options in the database (first use of a size)."""
        PETSc = _petsc()
        n = system.n
        A = system.petsc
        keys = self._insert(self.parsed)
        try:
            try:
                ksp = self._new_ksp()
                ksp.setOperators(A)
                ksp.setUp()  # sub-solver options are read at the first setup
            except PETSc.Error as err:
                self._remove(keys)
                raise ValueError(f"ksp_options: PETSc rejected {self._culprit(A)!r} in {self.options!r}: "
                                 f"{_message(err)}") from None
            self._slots[n] = _Slot(ksp, A, n)
            opts = PETSc.Options()
            unused = [f"-{k[len(self.prefix):]}" for k in keys if not opts.used(k)]
            if unused:
                raise ValueError(f"ksp_options: PETSc did not use {', '.join(unused)} (misspelt, or not "
                                 f"applicable to this solver) in {self.options!r}")
        finally:
            self._remove(keys)
        return self._slots[n]

    def _slot_for(self, system) -> "_Slot":
        """The KSP slot of this system's size (configured on first use), operating on its Mat."""
        slot = self._slots.get(system.n)
        if slot is None:
            return self._configure(system)
        A = system.petsc
        if slot.A is not A:
            slot.ksp.setOperators(A)
            slot.A = A
        return slot

    # ---- solving --------------------------------------------------------------------------
    def solve(self, ctx: SolveContext) -> tuple[np.ndarray, SolveStats]:
        return self._solve(ctx, self._slot_for(ctx.system))

    def ksp_for(self, n: int):
        """The PETSc KSP of system size n (H*W), once its first solve has configured it.

        For subclasses (projection): ``initial_guess(ctx)`` is called after the KSP of
        ctx's size exists and right before every ``ksp.solve``; ``_insert(parsed)`` /
        ``_remove(keys)`` put options (without prefix) into PETSc's database and take
        them out again, as for this solver's own configuration; ``self.parsed`` may be
        reassigned after ``__init__``.
        """
        try:
            return self._slots[n].ksp
        except KeyError:
            raise KeyError(f"ksp: no KSP configured yet for systems of size {n}") from None

    def initial_guess(self, ctx: SolveContext) -> np.ndarray | None:
        """Warm-start vector for ctx, or None for a zero guess (subclasses may override)."""
        if not self.warm_start:
            return None
        if self.extrapolate:  # written straight into the KSP's initial-guess buffer when there is one
            slot = self._slots.get(ctx.system.n)
            return ctx.extrapolated(out=None if slot is None else slot.x_buf)
        return ctx.previous()

    def _solve(self, ctx: SolveContext, slot: "_Slot") -> tuple[np.ndarray, SolveStats]:
        ksp = slot.ksp
        np.copyto(slot.b_buf, ctx.b)
        guess = None if slot.preonly else self.initial_guess(ctx)  # preonly (a direct solve) takes no guess
        if guess is None:
            slot.x_buf.fill(0.0)
        elif guess is not slot.x_buf:
            np.copyto(slot.x_buf, guess)
        slot.x.stateIncrease()  # the buffers were written behind PETSc's back
        slot.b.stateIncrease()
        ksp.setInitialGuessNonzero(guess is not None)
        if self.uses_guess:  # keep PETSc's guess space across operator changes, PC kept current
            slot.pc.setReusePreconditioner(False)
            ksp.setUp()
            slot.pc.setReusePreconditioner(True)
        bnorm = slot.b.norm()
        iterations, initial, rtol = 0, None, self.rtol
        if guess is not None and not (slot.unpreconditioned or self.uses_guess):
            # no unpreconditioned residual history to read it from: measure it before x is overwritten
            initial = true_relative_residual(ctx.system, slot.x_buf, ctx.b, bnorm)
        try:
            for _ in range(_MAX_TIGHTEN + 1):
                ksp.solve(slot.b, slot.x)
                iterations += ksp.getIterationNumber()
                if initial is None:
                    initial = self._initial_residual(slot, guess, bnorm)
                res = slot.residual(bnorm)
                if res <= self.rtol or slot.preonly or ksp.getConvergedReason() < 0:
                    break
                # stopped on a recursive or preconditioned residual: continue from x, tighter
                rtol = max(rtol * 0.5 * self.rtol / res, 1e-16)
                ksp.setTolerances(rtol=rtol)
                ksp.setInitialGuessNonzero(True)
        except _petsc().Error as err:
            raise SolverError(f"ksp: PETSc failed ({_where(ctx)}): {_message(err)}") from None
        finally:
            if rtol != self.rtol:
                ksp.setTolerances(rtol=self.rtol)
        x = slot.x_buf.copy()
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
            x, res, _ = direct_solve(ctx.system, ctx.b, self.rtol, _where(ctx))
            stats.final_residual = res
            stats.extra.update(fallback="spsolve", ksp_reason=int(reason), ksp_iterations=iterations)
        return x, stats

    def _initial_residual(self, slot: "_Slot", guess, bnorm: float) -> float:
        """||b - A x0|| / ||b|| of the initial guess, from the unpreconditioned residual history
        (after the first solve; NaN where there is none: x0 is overwritten by then)."""
        if guess is None and not self.uses_guess:
            return 1.0
        if slot.unpreconditioned:
            hist = slot.ksp.getConvergenceHistory()
            if len(hist):
                return float(hist[0]) / (bnorm or 1.0)
        return float("nan")

    def describe(self) -> dict[str, Any]:
        return {"solver": self.name, "rtol": self.rtol, "ksp_options": self.options, "warm_start": self.warm_start,
                "extrapolate": self.extrapolate}

    def close(self) -> None:
        for slot in self._slots.values():
            slot.destroy()
        self._slots.clear()


class _Slot:
    """The KSP of one system size with its vectors, whose values live in numpy buffers."""

    def __init__(self, ksp, A, n: int):
        PETSc = _petsc()
        self.ksp, self.A, self.pc = ksp, A, ksp.getPC()
        self.preonly = ksp.getType() == PETSc.KSP.Type.PREONLY
        self.unpreconditioned = ksp.getNormType() == PETSc.KSP.NormType.UNPRECONDITIONED
        self.b_buf, self.x_buf, self.r_buf = np.zeros(n), np.zeros(n), np.zeros(n)
        self.b, self.x, self.r = (PETSc.Vec().createWithArray(buf, comm=PETSc.COMM_SELF)
                                  for buf in (self.b_buf, self.x_buf, self.r_buf))

    def residual(self, bnorm: float) -> float:
        """TRUE relative residual ||b - A x|| / ||b|| of the current x (one MatMult)."""
        self.A.mult(self.x, self.r)
        self.r.aypx(-1.0, self.b)
        rn = self.r.norm()
        return rn / bnorm if bnorm > 0 else rn

    def destroy(self) -> None:
        for obj in (self.ksp, self.b, self.x, self.r):
            obj.destroy()


def _where(ctx: SolveContext) -> str:
    return ctx.where()


def _message(err: Exception) -> str:
    """PETSc's own messages from an error, without the call trace."""
    lines = [ln.split("] ", 1)[-1].strip() for ln in str(err).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("error code") and not re.search(r"\(\) at \S+:\d+$", ln)]
    return "; ".join(dict.fromkeys(lines)) or str(err)
