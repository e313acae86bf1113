"""Tables T1 (time to a target SSIM) and T4 (a fixed training budget): ours against DDPM, and dsm where
it was trained, from the training summaries and metric rows (see ``fpscore.tables``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from fpscore.tables.base import require_columns

# The paper's published numbers (Table 1, the abstract, Figures 4-5 captions).
PAPER_T1 = pd.DataFrame(
    [("CIFAR-10", 32, 0.99, 60.27, 1634.93, 27.1),
     ("CelebA", 64, 0.99, 122.45, 14131.53, 115.4),
     ("CelebA", 128, 0.90, 186.09, 11319.86, 60.8)],
    columns=["paper_dataset", "resolution", "paper_target_ssim", "paper_ours_s", "paper_ddpm_s", "paper_speedup"])
PAPER_T4 = pd.DataFrame(
    [(32, 4155.17, 0.8991, 0.8517), (64, 6388.59, 0.6302, 0.4446)],
    columns=["resolution", "paper_budget_s", "paper_ours_ssim", "paper_ddpm_ssim"])

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
        raise ValueError(f"{where}: our run has no precompute_seconds (train it with --score-log so the score "
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
    require_columns(runs, ["experiment", "dataset", "resolution", "target_ssim", "method", "reached",
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
    require_columns(ssim, ["experiment", "method", "mean_ssim"], "SSIM metrics")
    require_columns(fid, ["experiment", "method", "fid", "fid_status"], "FID metrics")
    require_columns(runs, ["experiment", "dataset", "resolution", "budget_seconds"], "budget runs")
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
    require_columns(metrics, ["experiment", "dataset", "resolution", "budget_seconds", "method", "mean_ssim", "fid",
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
