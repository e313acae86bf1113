"""Tables T2 (score pre-computation per solver) and T3 (the linear systems), the score error against the
reference solver and figure F8's points, from the solve logs (see ``fpscore.tables``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fpscore.tables.base import require_columns

PAPER_T2_REDUCTION = "15.8-43.7%"
REFERENCE_SOLVER = "spsolve"


def outer_iterations(log: pd.DataFrame) -> pd.Series:
    """Outer iterations per (dataset, resolution, solver, image, channel): the largest picard_iter of the
    log, i.e. Picard sweeps (Algorithm 1) or, with Newton, the Newton iterations of its hardest level
    (a per-solve or a per-level log alike)."""
    return log.groupby(["dataset", "resolution", "solver", "image", "channel"])["picard_iter"].max()


def is_per_level(log: pd.DataFrame) -> bool:
    """Whether a solve log has one row per time level (LEVEL_COLUMNS: a ``solves`` column)."""
    return "solves" in log.columns


def per_level(log: pd.DataFrame) -> pd.DataFrame:
    """A solve log with one row per (dataset, resolution, solver, image, channel, time level), as
    ``scores.solve_log: level`` writes it (``step.SolveLog.levels``): the outer iterations the largest,
    solves counted, Krylov iterations summed and their largest, the worst final residual, seconds
    summed, converged where every solve is. A per-level log is returned as it is."""
    if is_per_level(log):
        return log
    require_columns(log, ["solver", "image", "channel", "picard_iter", "time_level", "iterations", "final_residual",
                   "assemble_seconds", "solve_seconds", "converged"], "solve log")
    keys = [c for c in ("dataset", "resolution", "solver", "image", "channel", "time_level") if c in log.columns]
    if "startup_seconds" not in log.columns:  # a log written before start-up was logged
        log = log.assign(startup_seconds=0.0)
    out = log.groupby(keys, sort=False).agg(
        picard_iter=("picard_iter", "max"), solves=("iterations", "size"), iterations=("iterations", "sum"),
        max_iterations=("iterations", "max"), final_residual=("final_residual", "max"),
        assemble_seconds=("assemble_seconds", "sum"), solve_seconds=("solve_seconds", "sum"),
        converged=("converged", "all"), startup_seconds=("startup_seconds", "sum"))
    return out.reset_index()


def t2_solvers(log: pd.DataFrame, score_errors: pd.DataFrame | None = None) -> pd.DataFrame:
    """T2: per dataset, resolution and solver, time and accuracy of all linear solves, from a solve log
    of either kind (``per_level``: the same numbers).

    total_s = assembly + solve seconds over every logged solve (seed solves of
    the projection included); reduction_pct = 100 (1 - total_s / total_s of
    spsolve), the paper's measure; solve_reduction_pct the same on solve seconds;
    startup_s the one-time costs of the processes before their first timed solve (imports,
    compiled kernels: ``startup_seconds``), outside total_s.
    ``score_errors`` (dataset, resolution, solver, score_rel_error) joins in when given.
    """
    require_columns(log, ["dataset", "resolution", "solver", "image", "channel", "picard_iter", "iterations",
                   "final_residual", "assemble_seconds", "solve_seconds", "converged"], "solve log")
    log = per_level(log)
    keys = ["dataset", "resolution", "solver"]
    g = log.groupby(keys, sort=False)
    table = pd.DataFrame({
        "systems": g["solves"].sum(),
        "assemble_s": g["assemble_seconds"].sum(),
        "solve_s": g["solve_seconds"].sum(),
        "startup_s": g["startup_seconds"].sum() if "startup_seconds" in log.columns else np.nan,
        "mean_iterations": g["iterations"].sum() / g["solves"].sum(),
        "max_iterations": g["max_iterations"].max(),
        "max_final_residual": g["final_residual"].max(),
        "all_converged": g["converged"].all(),
    })
    table["ms_per_solve"] = 1000.0 * table["solve_s"] / table["systems"]
    table["total_s"] = table["assemble_s"] + table["solve_s"]
    per_channel = outer_iterations(log)
    table["outer_iterations"] = per_channel.groupby(keys).mean().reindex(table.index)
    table["solves_per_channel"] = table["systems"] / per_channel.groupby(keys).size().reindex(table.index)
    table = table.reset_index()
    ref = table[table["solver"] == REFERENCE_SOLVER].set_index(["dataset", "resolution"])
    if ref.empty:
        raise ValueError(f"solve log has no rows of the reference solver {REFERENCE_SOLVER!r} "
                         f"(solvers: {sorted(table['solver'].unique())})")
    idx = pd.MultiIndex.from_frame(table[["dataset", "resolution"]])
    table["reduction_pct"] = 100.0 * (1.0 - table["total_s"].to_numpy() / ref["total_s"].reindex(idx).to_numpy())
    table["solve_reduction_pct"] = 100.0 * (1.0 - table["solve_s"].to_numpy()
                                            / ref["solve_s"].reindex(idx).to_numpy())
    if score_errors is not None:
        require_columns(score_errors, keys + ["score_rel_error"], "score errors")
        table = table.merge(score_errors[keys + ["score_rel_error"]], on=keys, how="left")
    table["paper_reduction"] = PAPER_T2_REDUCTION
    order = ["dataset", "resolution", "solver", "systems", "total_s", "assemble_s", "solve_s", "startup_s",
             "ms_per_solve", "mean_iterations", "max_iterations", "outer_iterations", "solves_per_channel",
             "max_final_residual", "all_converged", "reduction_pct", "solve_reduction_pct", "score_rel_error",
             "paper_reduction"]
    return table[[c for c in order if c in table.columns]]


def require_per_solve(log: pd.DataFrame, what: str) -> None:
    """ValueError unless ``log`` has one row per linear solve (LOG_COLUMNS), naming the option that writes it."""
    if is_per_level(log):
        raise ValueError(f"{what} needs a solve log with one row per linear solve; this one has one row per time "
                         "level (scores.solve_log: level): compute the scores with --solve-log solve "
                         "(scores.solve_log: solve; the workflow does for the runs it compares)")


def score_errors(reference: np.ndarray, candidates: dict[str, np.ndarray]) -> pd.DataFrame:
    """Relative L2 error of each solver's scores against the reference (spsolve) scores.

    Arrays are N x C x T x H x W (memory-mapped ones are read one image at a time);
    score_rel_error = ||s - s_ref|| / ||s_ref|| over everything, max_image_rel_error the
    worst single image.
    """
    ref_norm2 = np.array([np.square(np.asarray(r, dtype=np.float64)).sum() for r in reference])
    rows = []
    for solver, scores in candidates.items():
        if scores.shape != reference.shape:
            raise ValueError(f"scores of solver {solver!r} have shape {scores.shape}, "
                             f"reference has {reference.shape}")
        err2 = np.array([np.square(np.asarray(s, dtype=np.float64) - np.asarray(r, dtype=np.float64)).sum()
                         for s, r in zip(scores, reference)])
        total = float(np.sqrt(err2.sum() / ref_norm2.sum()))
        per_image = np.sqrt(err2) / np.where(ref_norm2 > 0, np.sqrt(ref_norm2), np.inf)
        rows.append(dict(solver=solver, score_rel_error=total, max_image_rel_error=float(per_image.max())))
    return pd.DataFrame(rows, columns=["solver", "score_rel_error", "max_image_rel_error"])


def stencil_nnz(h: int, w: int) -> int:
    """Non-zeros of the H W x H W five-point matrix with zero padding (METHOD.md section 3).

    Every row has 5 entries minus the neighbours outside the image: the first
    and last rows of pixels lose one each (2 W), the first and last columns too (2 H).
    """
    return 5 * h * w - 2 * h - 2 * w


def t3_systems(log: pd.DataFrame, ranks: dict[str, int] | None = None) -> pd.DataFrame:
    """T3: per dataset and resolution, system size, non-zeros, fixed-point iterations, projection residuals.

    ``ranks`` maps solver name to the subspace rank it used (NaN for the others).
    Projection residual statistics come from the rows where it was recorded.
    """
    require_per_solve(log, "T3")
    require_columns(log, ["dataset", "resolution", "solver", "image", "channel", "picard_iter", "time_level",
                   "projection_residual"], "solve log")
    ranks = ranks or {}
    picard = outer_iterations(log)
    rows = []
    for (dataset, res, solver), group in log.groupby(["dataset", "resolution", "solver"], sort=False):
        res = int(res)
        proj = group["projection_residual"].dropna()
        iters = picard.loc[(dataset, res, solver)]
        rows.append(dict(
            dataset=dataset, resolution=res, solver=solver, unknowns=res * res, nnz=stencil_nnz(res, res),
            density=stencil_nnz(res, res) / float(res * res) ** 2,
            image_channels=len(iters), time_levels=int(group["time_level"].max()),
            picard_mean=float(iters.mean()), picard_min=int(iters.min()), picard_max=int(iters.max()),
            rank=ranks.get(solver, np.nan), projected_systems=len(proj),
            proj_residual_median=float(proj.median()) if len(proj) else np.nan,
            proj_residual_mean=float(proj.mean()) if len(proj) else np.nan,
            proj_residual_max=float(proj.max()) if len(proj) else np.nan))
    table = pd.DataFrame(rows)
    table["rank"] = table["rank"].astype("Int64")  # an integer where a subspace was used, <NA> elsewhere
    return table


def projection_vs_dissimilarity(log: pd.DataFrame, distance: np.ndarray) -> pd.DataFrame:
    """Per target (image, channel): its pixel L2 distance to its seed and its projection residuals.

    ``log``: solve-log rows of one projecting run (projection_residual NaN where
    nothing was projected, e.g. the seed solves); ``distance``: N x C distances of
    every image channel to its nearest seed (``fpscore.solvers.seeds.nearest_seed``).
    Residual columns: median, min and max over the image channel's projected solves.
    """
    require_per_solve(log, "the projection residual against dissimilarity (F8)")
    require_columns(log, ["image", "channel", "projection_residual"], "solve log")
    distance = np.asarray(distance, dtype=np.float64)
    projected = log.dropna(subset=["projection_residual"])
    if projected.empty:
        raise ValueError("solve log has no projected solves (projection_residual is NaN everywhere)")
    images, channels = projected["image"].to_numpy(int), projected["channel"].to_numpy(int)
    if distance.ndim != 2 or images.max() >= distance.shape[0] or channels.max() >= distance.shape[1]:
        raise ValueError(f"distances of shape {distance.shape} do not cover image {images.max()}, "
                         f"channel {channels.max()} of the solve log")
    g = projected.groupby(["image", "channel"])["projection_residual"]
    out = pd.DataFrame({"residual_median": g.median(), "residual_min": g.min(), "residual_max": g.max(),
                        "solves": g.size()}).reset_index()
    out.insert(2, "dissimilarity", distance[out["image"].to_numpy(int), out["channel"].to_numpy(int)])
    return out
