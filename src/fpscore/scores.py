"""Score pre-computation over a set of images (METHOD.md §4-5): m and s for every image channel, with
one solver for the whole set (``compute_scores``: the solver's preparation, then the batched engine's
``solve_set`` or a per-channel driver, Picard or Newton), the ``ScoreSet`` it returns (with the solve log
in memory, ``step.SolveLog``: one entry per linear solve) and the validity of every channel. Only the
computation: the score file is written by ``fpscore.score_files``, the solve log by ``fpscore.solve_logs``."""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

from fpscore.data import check_images
from fpscore.fokker_planck.params import NONLINEAR, FPParams
from fpscore.fokker_planck.scheme import validity
from fpscore.fokker_planck.step import Flag, SolveLog, flag_summary, startup_seconds
from fpscore.solvers.base import Solver


@dataclass
class ScoreSet:
    """m and scores (N, C, T, H, W), the time grid and g(t_n), outer iterations (Picard
    sweeps, or the most Newton iterations at any level), convergence and linear solves
    per (image, channel), the solve log (``step.SolveLog``: one entry per linear solve, the
    first with the start-up seconds), the flagged channels (``step.Flag``) and the validity per channel
    (``scheme.validity``): ``within_bound`` (m stayed within the maximum-principle bound),
    ``nu_active`` (share of pixel-levels with artificial diffusion) and ``valid`` = converged
    and within the bound: the channels a method may learn from."""

    m: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    g: np.ndarray
    picard_iterations: np.ndarray
    converged: np.ndarray
    log: SolveLog
    solves: np.ndarray | None = None
    within_bound: np.ndarray | None = None
    nu_active: np.ndarray | None = None
    flags: list | None = None

    @property
    def valid(self) -> np.ndarray:
        return self.converged & self.within_bound


def _with_validity(result: ScoreSet, params: FPParams, m: np.ndarray, s: np.ndarray) -> ScoreSet:
    """``result`` with the validity of its channels, computed from float64 m and s."""
    check = validity(m, s, params.dh, params.scheme, params.boundary)
    result.within_bound, result.nu_active = check.within_bound, check.nu_active
    return result


def validate_images(images) -> np.ndarray:
    """(N, C, H, H) finite values in [0, 1] as float64 (``fpscore.data.check_images``)."""
    return check_images(images).astype(np.float64)


def channel_driver(nonlinear: str):
    """The per-channel driver of ``nonlinear`` ("picard": Algorithm 1, "newton": §5b)."""
    if nonlinear == "picard":
        from fpscore.fokker_planck.picard import solve_channel

        return solve_channel
    if nonlinear == "newton":
        from fpscore.fokker_planck.newton import solve_channel_newton

        return solve_channel_newton
    raise ValueError(f"nonlinear: unknown driver {nonlinear!r}; expected one of {', '.join(NONLINEAR)}")


def prepare_solver(images, params: FPParams, solver: Solver) -> SolveLog:
    """The solver's work before the set: solve the images of ``solver.seed_request`` with
    its recording solver (this driver, ``params.nonlinear``), then ``solver.build_prepared``;
    returns the log of those solves (empty when the solver asks for none)."""
    imgs = validate_images(images)
    request = solver.seed_request(imgs)
    if request is None:
        return SolveLog()
    indices, recorder = request
    indices = np.asarray(indices, dtype=int)
    with recorder:
        result = compute_scores(imgs[indices], params, recorder, progress=False, image_indices=indices)
    solver.build_prepared(recorder)
    return result.log


def compute_scores(images, params: FPParams, solver: Solver, *, progress: bool = True,
                   image_indices=None, dtype=np.float64, nonlinear: str | None = None,
                   out: dict | None = None) -> ScoreSet:
    """m and s of every channel of every image (N, C, H, H) with ``solver``.

    The nonlinear driver is ``params.nonlinear`` (``nonlinear`` overrides it): Picard
    sweeps (Algorithm 1) or per-level Newton (§5b). ``solver.load()`` runs first (its one-time
    costs, logged as start-up: ``step.startup_seconds``), then ``prepare_solver`` (its log
    entries lead the log). ``image_indices`` labels the images in the log and solve
    contexts (default 0..N-1; the projection's seeds keep their indices in the full set).
    ``dtype`` of the returned m and scores (the solves are float64 throughout). A solver
    with ``solve_set`` (the batched engine) solves all channels at once instead. Channels
    flagged as not converged are reported once, at the end: one RuntimeWarning (``step.flag_summary``).
    ``out``: {"m": array, "scores": array} (N, C, T, H, W) of ``dtype`` to write m and the scores into
    (e.g. ``score_files.NpzInPlace.arrays``: the score file itself); the ScoreSet then holds them.
    """
    if nonlinear is not None:
        params = replace(params, nonlinear=nonlinear)
    imgs = validate_images(images)
    N, C, H, W = imgs.shape
    labels = np.arange(N) if image_indices is None else np.asarray(image_indices, dtype=int)
    if labels.shape != (N,):
        raise ValueError(f"image_indices: expected {N} labels, got shape {labels.shape}")
    times, g = params.times(), params.g()
    t0 = time.perf_counter()
    solver.load()
    startup = startup_seconds(time.perf_counter() - t0)
    prepared = prepare_solver(imgs, params, solver)
    if hasattr(solver, "solve_set"):
        res = solver.solve_set(imgs, params, labels, progress=progress, dtype=dtype, out=out)
        result = ScoreSet(m=res.m, scores=res.s, times=times, g=g, picard_iterations=res.iterations,
                          converged=res.converged, log=SolveLog.concat([prepared, res.log]), solves=res.solves,
                          within_bound=res.within_bound, nu_active=res.nu_active, flags=res.flags)
        if res.within_bound is None:
            result = _with_validity(result, params, res.m, res.s)
    else:
        result = _per_channel(imgs, params, solver, labels, progress, dtype, prepared, out)
    if len(result.log):
        result.log.columns["startup_seconds"][0] += startup
    if result.flags:
        warnings.warn(f"scores ({solver.name}): {flag_summary(result.flags)}", RuntimeWarning, stacklevel=2)
    return result


def output_arrays(out: dict | None, shape: tuple, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(m, scores) arrays of ``shape`` and ``dtype``: those of ``out`` (checked) or new ones."""
    if out is None:
        m = np.empty(shape, dtype=dtype)
        return m, np.empty_like(m)
    arrays = (out["m"], out["scores"])
    for key, a in zip(("m", "scores"), arrays):
        if a.shape != tuple(shape) or a.dtype != np.dtype(dtype) or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"out[{key!r}]: expected a writable C-ordered {np.dtype(dtype)} array of shape "
                             f"{tuple(shape)}, got {a.dtype} {a.shape}")
    return arrays


_FLAG_MESSAGE = re.compile(r"^(Newton|Picard) iteration (did not converge|broke down)")


def _per_channel(imgs, params, solver, labels, progress, dtype, prepared: SolveLog, out=None) -> ScoreSet:
    """compute_scores with a per-channel driver: channel by channel; a flagged channel's warnings
    become its ``Flag`` (the first one's message, its first unconverged level); other warnings pass.
    (The per-channel drivers, the CSR assembly and scipy.sparse are imported here: a batched score job
    never loads them.)"""
    from tqdm.auto import tqdm

    from fpscore.fokker_planck.assembly import FPSystem
    from fpscore.fokker_planck.kde import initial_log_density
    N, C, H, W = imgs.shape
    times, g = params.times(), params.g()
    T = times.size
    drive = channel_driver(params.nonlinear)
    stopping = (dict(tol=params.picard_tol, max_iter=params.picard_max_iter) if params.nonlinear == "picard"
                else dict(tol=params.newton_tol, max_iter=params.newton_max_iter, stop=params.newton_stop,
                          monotone=params.newton_monotone))
    m, s = output_arrays(out, (N, C, T, H, W), dtype)
    iters = np.zeros((N, C), dtype=int)
    solves = np.zeros((N, C), dtype=int)
    conv = np.zeros((N, C), dtype=bool)
    within = np.zeros((N, C), dtype=bool)
    nu_active = np.zeros((N, C))
    rows: list[dict] = []
    flags: list[Flag] = []
    system = FPSystem(H, W)
    try:
        for a in tqdm(range(N), desc=f"scores ({solver.name})", unit="image", disable=not progress):
            for c in range(C):
                m0 = initial_log_density(imgs[a, c], bins=params.kde_bins, floor=params.kde_floor)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    res = drive(m0, times, g, params.dh, solver, **stopping, scheme=params.scheme,
                                boundary=params.boundary, system=system, image=int(labels[a]), channel=c)
                mine = [w for w in caught if issubclass(w.category, RuntimeWarning)
                        and _FLAG_MESSAGE.match(str(w.message))] if not res.converged else []
                for w in caught:
                    if not any(w is x for x in mine):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                if not res.converged:
                    bad = [row["time_level"] for row in res.rows if not row["converged"]]
                    level = min(bad) if bad and params.nonlinear == "newton" else 0
                    flags.append(Flag(int(labels[a]), c, level, "did not converge",
                                      text=str(mine[0].message) if mine else None))
                m[a, c], s[a, c] = res.m, res.s
                check = validity(res.m, res.s, params.dh, params.scheme, params.boundary)
                within[a, c], nu_active[a, c] = check.within_bound, check.nu_active
                iters[a, c], conv[a, c], solves[a, c] = res.iterations, res.converged, res.solves
                rows.extend(res.rows)
    finally:
        system.close()
    return ScoreSet(m=m, scores=s, times=times, g=g, picard_iterations=iters, converged=conv,
                    log=SolveLog.concat([prepared, SolveLog.from_rows(rows)]), solves=solves, within_bound=within,
                    nu_active=nu_active, flags=flags)
