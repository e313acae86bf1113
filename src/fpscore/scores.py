"""Score pre-computation over a set of images (METHOD.md §4-5): m and s for every
image channel, with one solver for the whole set and one solve-log row per
linear solve."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from fpscore.fokker_planck.assembly import FPSystem
from fpscore.fokker_planck.kde import initial_log_density
from fpscore.fokker_planck.params import FPParams
from fpscore.fokker_planck.picard import solve_channel
from fpscore.solvers.base import Solver


@dataclass
class ScoreSet:
    """m and scores (N, C, T, H, W), the time grid and g(t_n), Picard iterations and
    convergence per (image, channel), and the solve log (rows of LOG_COLUMNS)."""

    m: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    g: np.ndarray
    picard_iterations: np.ndarray
    converged: np.ndarray
    log: list[dict]


def validate_images(images) -> np.ndarray:
    """(N, C, H, H) finite values in [0, 1] as float64, or a ValueError saying what is wrong."""
    arr = np.asarray(images)
    if arr.ndim != 4 or 0 in arr.shape:
        raise ValueError(f"images: expected a non-empty array N x C x H x W, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"images: expected real numbers, got dtype {arr.dtype}")
    H, W = arr.shape[2:]
    if H != W:
        raise ValueError(f"images: expected square images (H == W; METHOD.md §4 pairs I_ij with I_ji), got {H} x {W}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        n = np.argwhere(bad)[0]
        raise ValueError(f"images: {int(bad.sum())} NaN/inf pixel value(s), first at image {n[0]}, "
                         f"channel {n[1]}, pixel ({n[2]}, {n[3]})")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"images: expected pixel values in [0, 1], got range [{lo:.6g}, {hi:.6g}]")
    return arr


def compute_scores(images, params: FPParams, solver: Solver, *, progress: bool = True,
                   image_indices=None, dtype=np.float64) -> ScoreSet:
    """Solve Algorithm 1 for every channel of every image (N, C, H, H) with ``solver``.

    ``solver.prepare(images, params)`` runs first (its log rows lead the log).
    ``image_indices`` labels the images in the log and solve contexts (default
    0..N-1; the projection solver passes the seeds' indices in the full set).
    ``dtype`` of the returned m and scores (the solves are float64 throughout).
    """
    imgs = validate_images(images)
    N, C, H, W = imgs.shape
    labels = np.arange(N) if image_indices is None else np.asarray(image_indices, dtype=int)
    if labels.shape != (N,):
        raise ValueError(f"image_indices: expected {N} labels, got shape {labels.shape}")
    times, g = params.times(), params.g()
    T = times.size
    m = np.empty((N, C, T, H, W), dtype=dtype)
    s = np.empty_like(m)
    iters = np.zeros((N, C), dtype=int)
    conv = np.zeros((N, C), dtype=bool)
    log = list(solver.prepare(imgs, params))
    system = FPSystem(H, W)
    try:
        for a in tqdm(range(N), desc=f"scores ({solver.name})", unit="image", disable=not progress):
            for c in range(C):
                m0 = initial_log_density(imgs[a, c], bins=params.kde_bins, floor=params.kde_floor)
                res = solve_channel(m0, times, g, params.dh, solver, tol=params.picard_tol,
                                    max_iter=params.picard_max_iter, system=system,
                                    image=int(labels[a]), channel=c)
                m[a, c], s[a, c] = res.m, res.s
                iters[a, c], conv[a, c] = res.iterations, res.converged
                log.extend(res.rows)
    finally:
        system.close()
    return ScoreSet(m=m, scores=s, times=times, g=g, picard_iterations=iters, converged=conv, log=log)
