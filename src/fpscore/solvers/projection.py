"""Cross-matrix Krylov projection (METHOD.md §6): seed subspaces reused for target systems.

``ProjectionSolver``, the ``projection`` solver of the numerics protocol, built
from two pieces usable alone: the subspace helpers (``fpscore.solvers.subspace``:
``compress_basis``, ``projected_guess``) and the two-level PC
(``fpscore.solvers.seed_pc.SeedSubspacePC``, a PETSc PC context of type 'python',
P^{-1} r = V E^{-1} V^T r + M^{-1} (r - A V E^{-1} V^T r), E = V^T A V).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fpscore.config import schema_default
from fpscore.fileio import atomic_outputs
from fpscore.names import GUESS_METHODS, PROJECTION_BASES as BASES, PROJECTION_VARIANTS as VARIANTS, SEED_CHOICES
from fpscore.solvers.base import SolverError, SolveStats, true_relative_residual, vnorm
from fpscore.solvers.ksp import KspSolver
from fpscore.solvers.seed_pc import SeedSubspacePC
from fpscore.solvers.subspace import compress_basis, projected_guess, relative_residual_norm, solve_normal
from fpscore.solvers.seeds import nearest_seed, select_seeds

# --------------------------------------------------------------------------- the solver
_PC_DOTTED = f"{SeedSubspacePC.__module__}.SeedSubspacePC"
_PREPARED_VERSION = 1


class _SeedRecorder(KspSolver):
    """The seed solves: the configured KSP, recording per (channel, time level) the
    solutions met at every outer (Picard or Newton) iteration and/or the Krylov directions (the
    increments of the GMRES iterates), compressed on the fly to at most
    ``keep`` columns so memory stays O(keep * HW) per level."""

    name = "projection"

    def __init__(self, *, rtol, options, warm_start, extrapolate, record_solutions, record_krylov, keep):
        super().__init__(rtol=rtol, options=options, warm_start=warm_start, extrapolate=extrapolate)
        self.record_solutions, self.record_krylov, self.keep = record_solutions, record_krylov, keep
        self.vectors: dict[tuple[int, int, int], list[np.ndarray]] = {}  # (image, channel, n) -> columns
        self.solutions: dict[tuple[int, int, int, int], np.ndarray] = {}  # (image, channel, k, n) -> x
        self._monitored: set[int] = set()
        self._iterates: list[np.ndarray] = []

    def initial_guess(self, ctx):
        ksp = self.ksp_for(ctx.system.n)
        if self.record_krylov and id(ksp) not in self._monitored:
            ksp.setMonitor(self._monitor)
            self._monitored.add(id(ksp))
        self._iterates = []
        return super().initial_guess(ctx)

    def _monitor(self, ksp, its, rnorm) -> None:
        self._iterates.append(ksp.buildSolution().getArray().copy())

    def solve(self, ctx):
        x, stats = super().solve(ctx)
        key = (ctx.image, ctx.channel, ctx.time_level)
        cols = self.vectors.setdefault(key, [])
        if self.record_solutions:
            cols.append(x.copy())
        if self.record_krylov and len(self._iterates) > 1:
            its = np.stack(self._iterates, axis=1)
            cols.extend(np.diff(its, axis=1).T)  # Krylov directions x_j - x_{j-1}
        if len(cols) > 2 * self.keep:
            cols[:] = list(compress_basis(np.stack(cols, axis=1), self.keep).T)
        self.solutions[(ctx.image, ctx.channel, ctx.outer_iter, ctx.time_level)] = x.copy()
        return x, stats


def _check_choice(key: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"projection.{key}: unknown value {value!r}, expected one of {', '.join(map(str, allowed))}")


def _check_int(key: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"projection.{key}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


_PROJECTION = schema_default("scores.projection")  # the constructor's defaults


class ProjectionSolver(KspSolver):
    """Cross-matrix Krylov projection (METHOD.md §6) on top of the ``ksp`` solver.

    prepare (``seed_request`` / ``build_prepared``, driven by ``fpscore.scores.prepare_solver``):
    pick seeds (``n_seeds``, ``seed_choice`` first|medoid); the driver solves them (Picard or
    Newton) with a recording KSP, which keeps, per (seed, channel, time level n),
    the seed solutions of every outer iteration and/or the Krylov directions
    (``basis`` solutions|krylov|both), and compress them to an orthonormal V_n
    of rank <= ``rank``. Every image uses the subspaces of its nearest seed.

    solve (target system at (image, channel, k, n)):
      * variant ``guess``: x0 = projected guess from span(V_n) (``guess`` minres
        or galerkin), then the KSP from x0 to the true relative residual rtol;
      * variant ``pc``: the KSP with the two-level ``SeedSubspacePC`` (coarse
        space V_n, the configured ``-pc_type`` as one-level PC M) from the warm
        start (or zero);
      * ``both``: both.
    ``warm_start`` augments the projection space with the target's own vectors
    (``_own_vectors``; ``history`` >= 2 adds Picard differences), so the
    minimal-residual guess is never worse than the plain warm start. ``lag`` > 0
    keeps one PC per time level and refactors it only at k = 1, every ``lag``
    Picard iterations, or when its iteration count grew by more than one.

    Log: ``projection_residual`` = min_y ||b - A V_n y|| / ||b||, the seed
    subspace alone (the paper's quantity, for the dissimilarity figure);
    ``initial_residual`` = the residual of the guess actually used.

    Seed systems met again in the same process return the solution of the
    seed solve (checked against rtol) instead of being solved twice; after
    ``load_prepared`` (sharded workflow) they are solved like any target.
    """

    name = "projection"

    def __init__(self, rtol: float = schema_default("scores.rtol"),
                 ksp_options: str = schema_default("scores.ksp_options"),
                 warm_start: bool = schema_default("scores.warm_start"), n_seeds: int = _PROJECTION["n_seeds"],
                 seed_choice: str = _PROJECTION["seed_choice"], rank: int = _PROJECTION["rank"],
                 variant: str = _PROJECTION["variant"], basis: str = _PROJECTION["basis"],
                 guess: str = _PROJECTION["guess"], history: int = _PROJECTION["history"],
                 lag: int = _PROJECTION["lag"], extrapolate: bool = schema_default("scores.extrapolate")):
        _check_choice("variant", variant, VARIANTS)
        _check_choice("basis", basis, BASES)
        _check_choice("seed_choice", seed_choice, SEED_CHOICES)
        _check_choice("guess", guess, GUESS_METHODS)
        self.n_seeds = _check_int("n_seeds", n_seeds, 1)
        self.rank = _check_int("rank", rank, 1)
        self.history = _check_int("history", history, 1)
        self.lag = _check_int("lag", lag, 0)
        self.seed_choice, self.variant, self.basis, self.guess = seed_choice, variant, basis, guess
        super().__init__(rtol=rtol, options=ksp_options, warm_start=warm_start, extrapolate=extrapolate)
        self.ksp_options = ksp_options
        if variant in ("pc", "both"):  # the configured PC becomes the one-level part M of the two-level PC
            inner = [(f"{SeedSubspacePC.OPTION_SUFFIX}{n}" if n.startswith("pc_") else n, v) for n, v in self.parsed]
            self.parsed = inner + [("pc_type", "python"), ("pc_python_type", _PC_DOTTED)]
        self._seeds = np.zeros(0, dtype=int)
        self._nearest: dict[int, int] = {}
        self._bases: dict[tuple[int, int, int], np.ndarray] = {}
        self._cache: dict[tuple[int, int, int, int], np.ndarray] = {}
        self._prepared = False
        self._hist_key: tuple[int, int] | None = None
        self._hist: dict[int, list[np.ndarray]] = {}
        self._last_projection = math.nan
        self._pcs: dict[tuple[int, int], dict] = {}  # (size, time level) -> lagged PC state
        self._current_pc: dict | None = None

    # ---- preparation: the seed solves ------------------------------------------------------
    def seed_request(self, images: np.ndarray):
        """Select the seeds of the set; returns (seed indices, recording solver) for the
        driver to solve them with (``fpscore.scores.prepare_solver``), or None once prepared."""
        if self._prepared:
            return None
        imgs = np.asarray(images)
        self._seeds = select_seeds(imgs, self.n_seeds, self.seed_choice)
        nearest, _, _ = nearest_seed(imgs, self._seeds)
        self._nearest = {i: int(s) for i, s in enumerate(nearest)}
        recorder = _SeedRecorder(rtol=self.rtol, options=self.ksp_options, warm_start=self.warm_start,
                                 extrapolate=self.extrapolate,
                                 record_solutions=self.basis in ("solutions", "both"),
                                 record_krylov=self.basis in ("krylov", "both"), keep=self.rank)
        return self._seeds, recorder

    def build_prepared(self, recorder: "_SeedRecorder") -> None:
        """The per-level bases V_n from what the recorder met while the driver solved the seeds."""
        self._bases = {key: compress_basis(np.stack(cols, axis=1), self.rank)
                       for key, cols in recorder.vectors.items()}
        self._cache = recorder.solutions
        self._prepared = True

    def save_prepared(self, path: str) -> None:
        """Write seeds, nearest-seed map and bases to an .npz, atomically."""
        if not self._prepared:
            raise RuntimeError("projection: save_prepared called before prepare")
        keys = sorted(self._bases)
        arrays = {
            "version": np.array(_PREPARED_VERSION), "settings": np.array(repr(self._settings())),
            "seeds": self._seeds, "nearest": np.array([self._nearest[i] for i in range(len(self._nearest))]),
            "basis_keys": np.array(keys, dtype=np.int64).reshape(-1, 3),
            "basis_ranks": np.array([self._bases[k].shape[1] for k in keys], dtype=np.int64),
            "bases": np.concatenate([self._bases[k] for k in keys], axis=1) if keys else np.zeros((0, 0)),
        }
        with atomic_outputs(path, suffix=".npz") as (tmp,):
            np.savez(tmp, **arrays)

    def load_prepared(self, path: str) -> None:
        """Load what ``save_prepared`` wrote (settings must match this solver's)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as err:
            raise ValueError(f"prepared projection state {path}: not a readable .npz ({err})") from None
        missing = {"version", "settings", "seeds", "nearest", "basis_keys", "basis_ranks", "bases"} - set(data)
        if missing or int(data["version"]) != _PREPARED_VERSION:
            raise ValueError(f"prepared projection state {path}: missing keys {sorted(missing)} or version "
                             f"{data.get('version')} != {_PREPARED_VERSION}")
        if str(data["settings"]) != repr(self._settings()):
            raise ValueError(f"prepared projection state {path} was made with {data['settings']}, "
                             f"this solver has {self._settings()!r}")
        self._seeds = data["seeds"].astype(int)
        self._nearest = {i: int(s) for i, s in enumerate(data["nearest"])}
        offsets = np.concatenate([[0], np.cumsum(data["basis_ranks"])])
        self._bases = {tuple(int(v) for v in key): np.asfortranarray(data["bases"][:, offsets[i]:offsets[i + 1]])
                       for i, key in enumerate(data["basis_keys"])}
        self._cache = {}
        self._prepared = True

    def _settings(self) -> dict[str, Any]:
        return {"n_seeds": self.n_seeds, "seed_choice": self.seed_choice, "rank": self.rank, "basis": self.basis,
                "ksp_options": self.ksp_options, "warm_start": self.warm_start, "extrapolate": self.extrapolate,
                "rtol": self.rtol}

    # ---- target solves ----------------------------------------------------------------------
    def solve(self, ctx):
        if not self._prepared:
            raise SolverError("projection: solve called before prepare (or load_prepared)")
        cached = self._cache.pop((ctx.image, ctx.channel, ctx.outer_iter, ctx.time_level), None)
        if cached is not None:
            res = true_relative_residual(ctx.system, cached, ctx.b)
            if res <= self.rtol:
                x, stats = cached, SolveStats(iterations=0, initial_residual=res, final_residual=res,
                                              extra={"seed": True})  # nothing projected: residual NaN
                self._remember(ctx, x)
                return x, stats
        self._last_projection = math.nan
        self._current_pc = None
        x, stats = super().solve(ctx)
        stats.projection_residual = self._last_projection
        state = self._current_pc
        if state is not None:  # lagged PC: refactor next time if it now costs iterations
            if state["refreshed"]:
                state["its"] = stats.iterations
            elif stats.iterations > state["its"] + 1:
                state["worse"] = True
        self._remember(ctx, x)
        return x, stats

    def _remember(self, ctx, x: np.ndarray) -> None:
        """Keep the last ``history`` Picard iterates per level of the current image channel."""
        if self.history < 2:
            return
        key = (ctx.image, ctx.channel)
        if key != self._hist_key:
            self._hist_key, self._hist = key, {}
        past = self._hist.setdefault(ctx.time_level, [])
        past.append(x)  # solvers return fresh arrays; nothing modifies them
        del past[: -self.history]

    def _own_vectors(self, ctx) -> list[np.ndarray]:
        """The target's own vectors augmenting the seed space (with ``warm_start``).

        m^{n-1,(k)} (this sweep, one level earlier) and m^{n,(k-1)} (the previous
        iterate; m^0 at k = 1); with ``extrapolate`` or ``history`` >= 2 also the
        change m^{n-1,(k)} - m^{n-1,(k-1)} (k = 1 with ``extrapolate``: m^{n-1,(1)} -
        m^{n-2,(1)}), so the span holds ``SolveContext.extrapolated()``; with ``history``
        h >= 2 also m^{n,(k-1)} - m^{n,(k-j)}, j = 2..h, so that the minimal-residual
        guess can extrapolate the Picard iteration. Newton: m^{n-1} and the current
        iterate x^{(j)} (already the extrapolation at j = 0), plus the history differences.
        The warm start is the second vector (Picard k = 1: the first).
        """
        if not self.warm_start:
            return []
        vecs = [ctx.prev_level, ctx.prev_outer]
        picard = ctx.nonlinear != "newton"  # Newton's x^{(j)} already holds the extrapolation
        if picard and ctx.outer_iter > 1 and ctx.prev_outer_prev_level is not None and (self.extrapolate or self.history >= 2):
            vecs.append(ctx.prev_level - ctx.prev_outer_prev_level)
        elif picard and ctx.outer_iter == 1 and ctx.prev_level2 is not None and self.extrapolate:
            vecs.append(ctx.prev_level - ctx.prev_level2)
        if self.history < 2 or self._hist_key != (ctx.image, ctx.channel):
            return vecs
        older = self._hist.get(ctx.time_level, [])[:-1][-(self.history - 1):]  # iterates before prev_outer
        vecs += [ctx.prev_outer - x for x in older]  # same span as the iterates, better conditioned
        return vecs

    def _basis(self, ctx) -> np.ndarray:
        seed = self._nearest.get(ctx.image)
        if seed is None:
            raise SolverError(f"projection: image {ctx.image} is not in the prepared set "
                              f"({len(self._nearest)} images)")
        V = self._bases.get((seed, ctx.channel, ctx.time_level))
        return np.zeros((ctx.system.n, 0), order="F") if V is None else V

    def _level_pc(self, ctx, ksp):
        """Lagged setup: one PC per time level, refactored at Picard iteration 1 of every
        image channel and then every ``lag`` iterations; in between it keeps the factors
        of an earlier A^{n,(k')} of the same level (PETSc's reuse-preconditioner flag)."""
        from petsc4py import PETSc

        key = (ctx.system.n, ctx.time_level)
        state = self._pcs.get(key)
        if state is None:
            keys = self._insert(self.parsed)  # configure like the KSP's own PC
            try:
                pc = PETSc.PC().create(comm=PETSc.COMM_SELF)
                pc.setOptionsPrefix(self.prefix)
                pc.setType(PETSc.PC.Type.ILU)
                pc.setFromOptions()
            finally:
                self._remove(keys)
            pc.setOperators(ctx.system.petsc)
            state = self._pcs[key] = {"pc": pc, "owner": None, "k": 0, "its": 0, "worse": False}
        pc = state["pc"]
        owner = (ctx.image, ctx.channel)
        refresh = state["owner"] != owner or ctx.outer_iter - state["k"] >= self.lag or state["worse"]
        state["refreshed"] = refresh
        if refresh:
            state.update(owner=owner, k=ctx.outer_iter, worse=False)
        self._current_pc = state
        pc.setReusePreconditioner(not refresh)
        ksp.setPC(pc)
        return pc

    def initial_guess(self, ctx):
        V = self._basis(ctx)
        ksp = self.ksp_for(ctx.system.n)
        pc = self._level_pc(ctx, ksp) if self.lag else ksp.getPC()
        r = V.shape[1]
        if self.variant == "pc":
            AV = ctx.system.csr @ V  # once here; handed to the PC, which would compute it anyway
            pc.getPythonContext().set_basis(V, AV=AV)
            self._last_projection = relative_residual_norm(AV.T @ AV, AV.T @ ctx.b, vnorm(ctx.b))
            return super().initial_guess(ctx)  # the warm start (or zero)
        own = self._own_vectors(ctx)
        W = np.empty((V.shape[0], r + len(own)))  # C order: scipy's CSR x dense product runs row-wise
        W[:, :r] = V
        for j, vec in enumerate(own):
            W[:, r + j] = vec
        AW = ctx.system.csr @ W
        if self.variant == "both":
            pc.getPythonContext().set_basis(V, AV=AW[:, :r])
        G, c = AW.T @ AW, AW.T @ ctx.b
        bnorm = vnorm(ctx.b)
        self._last_projection = relative_residual_norm(G[:r, :r], c[:r], bnorm)  # seed subspace alone
        if self.guess == "galerkin":
            y = projected_guess(None, ctx.b, W, "galerkin", AV=AW).y
            return W @ y if vnorm(ctx.b - AW @ y) < bnorm else None  # Galerkin can be worse than zero
        if not own:
            return W @ solve_normal(G, c)
        # Minimal residual as a correction of the warm start x_w = W e_j (r_w = b - A x_w): the
        # normal equations then lose digits relative to ||r_w||, not ||b|| (late Picard
        # iterations start 1e-8 below ||b||, where a projection of b would be worse than x_w).
        j = r + (0 if ctx.outer_iter == 1 and ctx.nonlinear != "newton" else 1)  # ctx.previous(), as KspSolver
        z = solve_normal(G, c - G[:, j])
        z[j] += 1.0
        return W @ z

    def close(self) -> None:
        for state in self._pcs.values():
            state["pc"].destroy()
        self._pcs.clear()
        super().close()

    def describe(self) -> dict[str, Any]:
        return {"solver": self.name, **self._settings(), "variant": self.variant, "guess": self.guess,
                "history": self.history, "lag": self.lag}
