"""The paper's tables as pandas DataFrames, computed from the logs the workflow wrote.

Pure functions: tidy DataFrames (or the dicts of training summaries) in, one DataFrame per
table out, and each table's caption (no file I/O: ``fpscore.logs`` reads the logs,
``fpscore.rendering`` writes CSV, Markdown and LaTeX, ``fpscore.cli.table`` joins them).
Columns named ``paper_*`` hold the paper's published values (Lau, Na, Wan 2025),
placed beside ours for comparison, never used in any computation.

Inputs (one row per ...):

* solve log (linear solve): the columns of ``fpscore.solvers.base.LOG_COLUMNS``
  plus ``dataset`` and ``resolution``; ``final_residual`` and
  ``projection_residual`` are relative (||b - A x|| / ||b||). T2 takes the other kind
  too, one row per image, channel and time level (``LEVEL_COLUMNS``, ``scores.solve_log:
  level``), and computes the same numbers from either (``per_level``); T3 and the
  projection's points need one row per linear solve.
* denoising runs (T1, run of one method): experiment, dataset, resolution,
  target_ssim, method (ours|ddpm, and dsm: the like-for-like denoising score
  matching baseline, where it was trained), reached (bool), train_seconds (training
  seconds to the target, or until the cap when not reached), precompute_seconds
  (assembly + solve seconds of the image's scores for ours, 0 for ddpm and dsm).
* budget metrics (T4, method of one budget experiment): experiment, dataset,
  resolution, budget_seconds, method (ours|ddpm[|dsm]), mean_ssim, fid (NaN when
  unavailable), fid_status ("ok" or "unavailable: <reason>"), and where ``fpscore fid``
  wrote them (``SET_METRICS``): kid, kid_std, n_generated, n_reference, fid_floor, kid_floor,
  n_floor, network.

T1 and T4 compare ours with DDPM; where the runs include dsm (in every experiment or
in none), dsm columns follow the DDPM ones, and without dsm the tables have no dsm
columns at all.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# The paper's published numbers (Table 1, the abstract, Figures 4-5 captions).
PAPER_T1 = pd.DataFrame(
    [("CIFAR-10", 32, 0.99, 60.27, 1634.93, 27.1),
     ("CelebA", 64, 0.99, 122.45, 14131.53, 115.4),
     ("CelebA", 128, 0.90, 186.09, 11319.86, 60.8)],
    columns=["paper_dataset", "resolution", "paper_target_ssim", "paper_ours_s", "paper_ddpm_s", "paper_speedup"])
PAPER_T2_REDUCTION = "15.8-43.7%"
PAPER_T4 = pd.DataFrame(
    [(32, 4155.17, 0.8991, 0.8517), (64, 6388.59, 0.6302, 0.4446)],
    columns=["resolution", "paper_budget_s", "paper_ours_ssim", "paper_ddpm_ssim"])

REFERENCE_SOLVER = "spsolve"

CAPTIONS = {
    "t1": "Time to the target SSIM (single-image denoising): ours with and without score pre-computation vs "
          "DDPM; paper_* columns are the paper's published values.",
    "t2": "Score pre-computation per solver: seconds, iterations, residuals, reduction vs spsolve "
          "(the paper reports 15.8-43.7%), score error vs spsolve.",
    "t3": "The linear systems: size, non-zeros, fixed-point iterations, subspace rank, projection residuals.",
    "t4": "Fixed training budget: mean SSIM to the closest training image, FID and KID (mean over subsets; "
          "kid_std their spread) against the training images, ours vs DDPM; n_generated vs n_reference: the "
          "images each FID/KID compares; fid_floor, kid_floor: one half of the training images against the "
          "other (n_floor), what real images score at that count; paper_* columns are the paper's published "
          "values.",
}
# Appended to the caption where the table has dsm columns (learn.dsm.train).
DSM_CAPTIONS = {
    "t1": " dsm: the like-for-like baseline (denoising score matching with ours' SDE, parameterisation and "
          "sampler; only the training targets differ); dsm_over_ours is its time over ours with "
          "pre-computation: what score embedding buys at equal preconditioning.",
    "t4": " dsm: the like-for-like baseline (denoising score matching with ours' SDE, parameterisation and "
          "sampler; only the training targets differ); dsm_ssim_difference is ours minus dsm.",
}


def caption(name: str, table: pd.DataFrame) -> str:
    """The caption of a table, with the dsm sentence where it has dsm columns."""
    has_dsm = any(str(c).startswith("dsm_") for c in table.columns)
    return CAPTIONS[name] + (DSM_CAPTIONS.get(name, "") if has_dsm else "")


def _require(df: pd.DataFrame, columns, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; got {list(df.columns)}")


# ---- T1: time to target SSIM --------------------------------------------------------------


REQUIRED_METHODS = ("ours", "ddpm")
OPTIONAL_METHODS = ("dsm",)  # the like-for-like baseline, where learn.dsm.train


def _with_optional(df: pd.DataFrame) -> tuple[str, ...]:
    """The optional methods present anywhere in a T1/T4 input (each must then be in every experiment)."""
    return tuple(m for m in OPTIONAL_METHODS if m in set(df["method"]))


def _methods(group: pd.DataFrame, what: str, optional: tuple[str, ...] = ()) -> dict[str, pd.Series]:
    """The first row of each method in an experiment's group: ours and ddpm, plus ``optional``."""
    by = {m: g.iloc[0] for m, g in group.groupby("method")}
    expected = set(REQUIRED_METHODS) | set(optional)
    if set(by) != expected:
        raise ValueError(f"{what}: need methods {' and '.join(sorted(expected, key=_method_order))}, "
                         f"got {sorted(by)}")
    return by


def _method_order(method: str) -> int:
    return (REQUIRED_METHODS + OPTIONAL_METHODS).index(method)


def speedup_text(ours_s: float, ours_reached: bool, other_s: float, other_reached: bool) -> tuple[float, str]:
    """Another method's time (DDPM, dsm) over ours: exact when both reached, a bound when one hit its cap."""
    if not (ours_s > 0 and np.isfinite(other_s)):
        return float("nan"), "n/a"
    ratio = other_s / ours_s
    if ours_reached and other_reached:
        return ratio, f"{ratio:.1f}x"
    if ours_reached:
        return ratio, f"> {ratio:.1f}x"
    if other_reached:
        return ratio, f"< {ratio:.1f}x"
    return float("nan"), "n/a (neither reached)"


SUMMARY_KEYS = ("experiment", "method", "dataset", "resolution", "reached", "time_to_target_seconds",
                "train_seconds", "target_ssim", "precompute_seconds")


def denoise_run(summary: dict, where: str = "training summary") -> dict:
    """The T1 input row of one denoising run from its training summary (``fpscore train``'s JSON,
    which records its experiment, method, dataset and resolution).

    A run that reached its target counts its time_to_target_seconds, one that did not its
    training seconds at the cap; ours adds its precompute_seconds.
    """
    missing = [k for k in SUMMARY_KEYS if k not in summary or (k in SUMMARY_KEYS[:4] and summary[k] is None)]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing} (summaries of `fpscore train --experiment ... "
                         "--dataset ...` record them)")
    if summary["reached"] is None:
        raise ValueError(f"{where}: not a target-SSIM run (stop = {summary.get('stop')!r})")
    method, pre = summary["method"], summary["precompute_seconds"]
    if method == "ours" and pre is None:
        raise ValueError(f"{where}: our run has no precompute_seconds (train it with --solve-log so the score "
                         "pre-computation is counted)")
    reached = bool(summary["reached"])
    return dict(experiment=summary["experiment"], dataset=summary["dataset"], resolution=int(summary["resolution"]),
                target_ssim=summary["target_ssim"], protocol=summary.get("eval_protocol") or "generate",
                ssim_mode=summary.get("ssim_mode") or "clip",
                parameterization=(summary.get("method_description") or {}).get("parameterization", "ddpm-eps"),
                method=method, reached=reached,
                train_seconds=summary["time_to_target_seconds"] if reached else summary["train_seconds"],
                precompute_seconds=float(pre or 0.0) if method == "ours" else 0.0)


def budget_run(summary: dict, where: str = "training summary") -> dict:
    """What a budget run is (experiment, dataset, resolution, budget_seconds) from its training summary."""
    keys = ("experiment", "dataset", "resolution", "budget_seconds")
    missing = [k for k in keys if summary.get(k) is None]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing} (not a budget run of `fpscore train --experiment "
                         "... --dataset ...`?)")
    return dict(experiment=summary["experiment"], dataset=summary["dataset"], resolution=int(summary["resolution"]),
                budget_seconds=float(summary["budget_seconds"]))


def t1_time_to_ssim(runs: pd.DataFrame) -> pd.DataFrame:
    """T1: per denoising experiment, seconds to the target SSIM of ours vs DDPM and the speedup.

    ours_total_s includes the score pre-computation, ours_train_s does not; the
    speedup is DDPM over ours_total_s ("> x" when DDPM did not reach the target
    within its cap). Where the runs include dsm, dsm_s, dsm_reached and the ratio
    dsm_over_ours (dsm over ours_total_s, bounds as for the speedup: what score
    embedding buys at equal preconditioning) follow. Paper values are matched by
    resolution (see paper_dataset and paper_target_ssim for what the paper measured). Where the
    runs say so, protocol (generate | noisy_copy), ssim_mode and ours' parameterization follow
    the target.
    """
    _require(runs, ["experiment", "dataset", "resolution", "target_ssim", "method", "reached",
                    "train_seconds", "precompute_seconds"], "T1 runs")
    optional = _with_optional(runs)
    rows = []
    for (exp, dataset, res, target), group in runs.groupby(
            ["experiment", "dataset", "resolution", "target_ssim"], sort=False):
        by = _methods(group, f"T1 runs of experiment {exp!r}", optional)
        ours, ddpm = by["ours"], by["ddpm"]
        ours_total = float(ours["train_seconds"] + ours["precompute_seconds"])
        ddpm_total = float(ddpm["train_seconds"] + ddpm["precompute_seconds"])
        value, text = speedup_text(ours_total, bool(ours["reached"]), ddpm_total, bool(ddpm["reached"]))
        row = dict(experiment=exp, dataset=dataset, resolution=int(res), target_ssim=float(target),
                   **{k: ours[k] for k in ("protocol", "ssim_mode", "parameterization") if k in ours.index},
                   ours_precompute_s=float(ours["precompute_seconds"]),
                   ours_train_s=float(ours["train_seconds"]), ours_total_s=ours_total,
                   ours_reached=bool(ours["reached"]), ddpm_s=ddpm_total,
                   ddpm_reached=bool(ddpm["reached"]), speedup=value, speedup_text=text)
        for method in optional:
            other = by[method]
            other_total = float(other["train_seconds"] + other["precompute_seconds"])
            value, text = speedup_text(ours_total, bool(ours["reached"]), other_total, bool(other["reached"]))
            row.update({f"{method}_s": other_total, f"{method}_reached": bool(other["reached"]),
                        f"{method}_over_ours": value, f"{method}_over_ours_text": text})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.merge(PAPER_T1, on="resolution", how="left")


# ---- T2: solver comparison ----------------------------------------------------------------

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
    _require(log, ["solver", "image", "channel", "picard_iter", "time_level", "iterations", "final_residual",
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
    _require(log, ["dataset", "resolution", "solver", "image", "channel", "picard_iter", "iterations",
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
        _require(score_errors, keys + ["score_rel_error"], "score errors")
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


# ---- T3: linear-system facts --------------------------------------------------------------

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
    _require(log, ["dataset", "resolution", "solver", "image", "channel", "picard_iter", "time_level",
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
    _require(log, ["image", "channel", "projection_residual"], "solve log")
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


# ---- T4: fixed budget ---------------------------------------------------------------------

def _fid_status(statuses: dict[str, str]) -> str:
    """One status when every method has it, else 'ours: ...; ddpm: ...[; dsm: ...]'."""
    if len(set(statuses.values())) == 1:
        return next(iter(statuses.values()))
    return "; ".join(f"{method}: {status}" for method, status in statuses.items())


#: What ``fpscore fid`` writes beside fid and fid_status (older files lack them: NaN / empty).
SET_METRICS = ("kid", "kid_std", "n_generated", "n_reference", "fid_floor", "kid_floor", "n_floor", "network")


def budget_metrics(ssim: pd.DataFrame, fid: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """T4 input rows: the SSIM and FID rows of each (experiment, method) joined with what each
    budget experiment is (``runs``: experiment, dataset, resolution, budget_seconds)."""
    _require(ssim, ["experiment", "method", "mean_ssim"], "SSIM metrics")
    _require(fid, ["experiment", "method", "fid", "fid_status"], "FID metrics")
    _require(runs, ["experiment", "dataset", "resolution", "budget_seconds"], "budget runs")
    ssim = ssim.copy()
    if "ssim_mode" not in ssim.columns:  # metrics written before the mode was recorded
        ssim["ssim_mode"] = "clip"
    fid = fid.assign(**{c: np.nan for c in SET_METRICS if c not in fid.columns})
    rows = ssim[["experiment", "method", "mean_ssim", "ssim_mode"]].merge(
        fid[["experiment", "method", "fid", "fid_status", *SET_METRICS]], on=["experiment", "method"], how="outer",
        validate="one_to_one")
    specs = runs[["experiment", "dataset", "resolution", "budget_seconds"]].drop_duplicates()
    unknown = sorted(set(rows["experiment"]) - set(specs["experiment"]))
    if unknown:
        raise ValueError(f"t4: metrics of experiment(s) {unknown} have no budget run (given: "
                         f"{sorted(specs['experiment'])})")
    rows = rows.merge(specs, on="experiment", how="left", validate="many_to_one")
    return rows[["experiment", "dataset", "resolution", "budget_seconds", "method", "mean_ssim", "ssim_mode",
                 "fid", "fid_status", *SET_METRICS]]


def t4_budget(metrics: pd.DataFrame) -> pd.DataFrame:
    """T4: per budget experiment, mean SSIM (and FID when available) of ours vs DDPM, paper beside.

    FID columns are NaN with the reason in fid_status when the standard weights were unavailable.
    Where the metrics include dsm, dsm_ssim (after ddpm_ssim), dsm_ssim_difference (ours - dsm,
    after ssim_difference) and dsm_fid (after ddpm_fid) join in.
    """
    _require(metrics, ["experiment", "dataset", "resolution", "budget_seconds", "method", "mean_ssim", "fid",
                       "fid_status"], "T4 metrics")
    optional = _with_optional(metrics)
    methods = REQUIRED_METHODS + optional
    rows = []
    for (exp, dataset, res, budget), group in metrics.groupby(
            ["experiment", "dataset", "resolution", "budget_seconds"], sort=False):
        by = _methods(group, f"T4 metrics of experiment {exp!r}", optional)
        ours = by["ours"]
        row = dict(experiment=exp, dataset=dataset, resolution=int(res), budget_s=float(budget),
                   **({"ssim_mode": ours["ssim_mode"]} if "ssim_mode" in ours.index else {}))
        row.update({f"{m}_ssim": float(by[m]["mean_ssim"]) for m in methods})
        row["ssim_difference"] = float(ours["mean_ssim"] - by["ddpm"]["mean_ssim"])
        row.update({f"{m}_ssim_difference": float(ours["mean_ssim"] - by[m]["mean_ssim"]) for m in optional})
        row.update({f"{m}_fid": float(by[m]["fid"]) for m in methods})
        if "kid" in group.columns:  # FID and KID of fpscore fid: KID, the counts and the floor beside
            row.update({f"{m}_kid": float(by[m]["kid"]) for m in methods})
            row.update({f"{m}_kid_std": float(by[m]["kid_std"]) for m in methods})
            counts = {(by[m]["n_generated"], by[m]["n_reference"]) for m in methods}
            row["n_generated"], row["n_reference"] = (counts.pop() if len(counts) == 1 else (np.nan, np.nan))
            row.update(fid_floor=float(ours["fid_floor"]), kid_floor=float(ours["kid_floor"]),
                       n_floor=ours["n_floor"])
        row["fid_status"] = _fid_status({m: str(by[m]["fid_status"]) for m in methods})
        rows.append(row)
    return pd.DataFrame(rows).merge(PAPER_T4, on="resolution", how="left")
