"""`fpscore table|figure|fid|ssim|score-error`: metrics, the paper's tables and figures.

The edge between files and the pure builders of fpscore.tables / fpscore.figures:
read the logs the earlier steps wrote, call one builder, write the result whole
or not at all (temporary siblings, then os.replace). Tables are written as
<stem>.csv, <stem>.md and <stem>.tex; figures as <stem>.png and <stem>.pdf.

Files are read where the command line says and labelled as it says: a list of
files comes with lists of labels of the same length (``--solve-logs A B
--datasets photos faces ...``); nothing is read out of directory names. The files:
solve logs (fpscore scores), scores files (key ``scores``, N x C x T x H x W),
images files (key ``images``), training logs and summaries (fpscore train) and
samples files (keys ``images`` N x C x H x W, ``states`` K x N x C x H x W,
``times`` K).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fpscore.fileio import atomic_outputs
from fpscore.names import METHODS, SOLVERS
from fpscore.options import Group, add_group, group_values

if TYPE_CHECKING:
    import pandas as pd

FID = Group("evaluate.fid")
SSIM_MODE = Group("evaluate", keys=("ssim_mode",))  # also training's stopping rule (fpscore train)
RANK = Group("scores.projection", keys=("rank",))  # t3: the subspace rank the projection solver used
TABLE_CAPTIONS = {
    "t1": "Time to the target SSIM (single-image denoising): ours with and without score pre-computation vs "
          "DDPM; paper_* columns are the paper's published values.",
    "t2": "Score pre-computation per solver: seconds, iterations, residuals, reduction vs spsolve "
          "(the paper reports 15.8-43.7%), score error vs spsolve.",
    "t3": "The linear systems: size, non-zeros, fixed-point iterations, subspace rank, projection residuals.",
    "t4": "Fixed training budget: mean SSIM to the closest training image (and FID when the standard weights "
          "are available), ours vs DDPM; paper_* columns are the paper's published values.",
}
# Appended to the caption where the table has dsm columns (learn.dsm.train).
DSM_CAPTIONS = {
    "t1": " dsm: the like-for-like baseline (denoising score matching with ours' SDE, parameterisation and "
          "sampler; only the training targets differ); dsm_over_ours is its time over ours with "
          "pre-computation: what score embedding buys at equal preconditioning.",
    "t4": " dsm: the like-for-like baseline (denoising score matching with ours' SDE, parameterisation and "
          "sampler; only the training targets differ); dsm_ssim_difference is ours minus dsm.",
}


def table_caption(name: str, table: pd.DataFrame) -> str:
    """The caption of a table, with the dsm sentence where it has dsm columns."""
    has_dsm = any(str(c).startswith("dsm_") for c in table.columns)
    return TABLE_CAPTIONS[name] + (DSM_CAPTIONS.get(name, "") if has_dsm else "")


# ---- writing whole or not at all ------------------------------------------------------------

def write_all(outputs: list[tuple[Path, Callable[[str], None]]]) -> None:
    """Run each writer on a temporary sibling of its path; move all into place only if all succeeded."""
    with atomic_outputs(*(path for path, _ in outputs)) as temps:
        for tmp, (_, writer) in zip(temps, outputs):
            writer(tmp)


def format_number(value) -> str:
    """Numbers for the rendered tables: 2 decimals from 1 up (keeps published values such as
    1634.93 whole), 4 significant digits below (SSIM 0.8991, residuals 1.2e-11), '--' for NaN."""
    import numpy as np

    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "--"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


def write_table(table: pd.DataFrame, stem: str | Path, caption: str = "") -> list[Path]:
    """<stem>.csv (full precision), <stem>.md and <stem>.tex (numbers by ``format_number``)."""
    import pandas as pd

    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    shown = table.copy()
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and table[c].dtype != bool for c in table.columns]
    for col in shown.columns:
        if shown[col].dtype == bool:  # booleans read better as yes/no
            shown[col] = shown[col].map({True: "yes", False: "no"})
        elif pd.api.types.is_float_dtype(shown[col]):
            shown[col] = shown[col].map(format_number)
        else:
            shown[col] = shown[col].astype(object).where(shown[col].notna(), "--")
    markdown = shown.to_markdown(index=False, disable_numparse=True,
                                 colalign=["right" if n else "left" for n in numeric])
    latex = shown.to_latex(index=False, escape=True, caption=caption or None, label=f"tab:{stem.name}",
                           column_format="".join("r" if n else "l" for n in numeric))
    latex = latex.replace(">", "$>$").replace("<", "$<$")  # bounds such as "> 12.0x" (text-mode > is not >)

    def text(content: str) -> Callable[[str], None]:
        return lambda tmp: Path(tmp).write_text(content + "\n")

    write_all([(paths[0], lambda tmp: table.to_csv(tmp, index=False)), (paths[1], text(markdown)),
               (paths[2], text(latex))])
    return paths


def save_figure(fig, png: str | Path) -> list[Path]:
    """<stem>.png and <stem>.pdf of a matplotlib Figure."""
    png = Path(png)
    if png.suffix != ".png":
        raise ValueError(f"--out {png}: expected a .png path (the .pdf is written beside it)")
    pdf = png.with_suffix(".pdf")
    write_all([(png, lambda tmp: fig.savefig(tmp, format="png")), (pdf, lambda tmp: fig.savefig(tmp, format="pdf"))])
    return [png, pdf]


# ---- reading ---------------------------------------------------------------------------------

def _read_csv(path: str | Path, what: str) -> "pd.DataFrame":
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return pd.read_csv(path)


def _npz(path: str | Path, keys: tuple[str, ...], what: str) -> dict:
    from fpscore.fileio import read_npz_arrays

    return read_npz_arrays(path, what, keys)


def aligned(what: str, **lists: list | None) -> list[tuple]:
    """Zip lists given on the command line that must have one entry each (files and their labels)."""
    lengths = {name: len(values or []) for name, values in lists.items()}
    if len(set(lengths.values())) != 1:
        given = ", ".join(f"{len_} --{name.replace('_', '-')}" for name, len_ in lengths.items())
        raise ValueError(f"{what}: expected one entry each, got {given}")
    if not next(iter(lengths.values())):
        raise ValueError(f"{what}: no files given (--{next(iter(lists)).replace('_', '-')})")
    return list(zip(*(values for values in lists.values())))


def read_solve_logs(paths, datasets, resolutions, solvers) -> "pd.DataFrame":
    """Concatenated solve logs with the dataset, resolution and solver each was computed for."""
    import pandas as pd

    frames = []
    for path, dataset, res, solver in aligned("solve logs", solve_logs=paths, datasets=datasets,
                                              resolutions=resolutions, solvers=solvers):
        log = _read_csv(path, "solve log")
        if "solver" not in log.columns:
            log["solver"] = solver
        frames.append(log.assign(dataset=dataset, resolution=int(res)))
    return pd.concat(frames, ignore_index=True)


def _solve_logs(args) -> "pd.DataFrame":
    return read_solve_logs(args.solve_logs, args.datasets, args.resolutions, args.solvers)


# ---- metrics ---------------------------------------------------------------------------------

def run_score_error(args) -> int:
    from fpscore.score_store import read_scores
    from fpscore.tables import REFERENCE_SOLVER, score_errors

    by_solver = {solver: read_scores(path)["scores"]
                 for path, solver in aligned("score-error", scores=args.scores, solvers=args.solvers)}
    if REFERENCE_SOLVER not in by_solver:
        raise ValueError(f"--solvers must include {REFERENCE_SOLVER}, the reference (got {sorted(by_solver)})")
    table = score_errors(by_solver[REFERENCE_SOLVER], by_solver)
    table.insert(0, "resolution", args.resolution)
    table.insert(0, "dataset", args.dataset)
    write_all([(Path(args.out), lambda tmp: table.to_csv(tmp, index=False))])
    print(table.to_string(index=False))
    return 0


def _references(path: str, count: int | None, index: int | None = None):
    """The training images of an experiment: the first ``count`` or the single image ``index``."""
    from fpscore.data import load_dataset

    images = load_dataset(path)[0]
    if index is not None:
        if not 0 <= index < len(images):
            raise ValueError(f"--reference-index {index} but {path} holds {len(images)} images")
        return images[index:index + 1]
    if count is not None:
        if count > len(images):
            raise ValueError(f"--reference-count {count} but {path} holds {len(images)} images")
        images = images[:count]
    return images


def run_ssim(args) -> int:
    import pandas as pd

    from fpscore.metrics import ssim_to_closest

    samples = _npz(args.samples, ("images",), "samples")["images"]
    mode = group_values(args, SSIM_MODE)["ssim_mode"]
    per_sample = ssim_to_closest(samples, _references(args.references, args.reference_count, args.reference_index),
                                 mode)
    row = pd.DataFrame([dict(experiment=args.experiment, method=args.method, n_samples=len(per_sample),
                             mean_ssim=per_sample.mean(), min_ssim=per_sample.min(), max_ssim=per_sample.max(),
                             ssim_mode=mode)])
    write_all([(Path(args.out), lambda tmp: row.to_csv(tmp, index=False))])
    print(row.to_string(index=False))
    return 0


def run_fid(args) -> int:
    import pandas as pd

    from fpscore import fid

    settings = group_values(args, FID)
    samples = _npz(args.samples, ("images",), "samples")["images"]
    reference = _references(args.references, args.reference_count, args.reference_index)
    result = fid.compute_fid(samples, reference, settings["weights_path"], url=settings["url"],
                             sha256=settings["sha256"], download=not args.no_download,
                             batch_size=settings["batch_size"], device=args.device)
    row = pd.DataFrame([dict(experiment=args.experiment, method=args.method, fid=result.value,
                             fid_status=result.status, n_generated=result.n_generated,
                             n_reference=result.n_reference)])
    write_all([(Path(args.out), lambda tmp: row.to_csv(tmp, index=False))])
    print(f"FID {args.experiment}/{args.method}: {result.value if result.status == 'ok' else result.status}")
    return 0


# ---- tables ----------------------------------------------------------------------------------

def _concat_csv(paths: list[str], what: str) -> "pd.DataFrame":
    import pandas as pd

    if not paths:
        raise ValueError(f"no {what} files given")
    return pd.concat([_read_csv(p, what) for p in paths], ignore_index=True)


def build_table(args) -> "pd.DataFrame":
    import pandas as pd

    from fpscore import tables

    if args.name == "t1":
        return tables.t1_time_to_ssim(denoise_runs(args))
    if args.name == "t2":
        errors = _concat_csv(args.score_errors, "score-error") if args.score_errors else None
        return tables.t2_solvers(_solve_logs(args), errors)
    if args.name == "t3":
        return tables.t3_systems(_solve_logs(args), {"projection": group_values(args, RANK)["rank"]})
    if args.name == "t4":
        specs = {exp: (dataset, int(res), float(budget)) for exp, dataset, res, budget in aligned(
            "t4 experiments", experiments=args.experiments, datasets=args.datasets, resolutions=args.resolutions,
            budgets=args.budgets)}
        ssim = _concat_csv(args.ssim, "SSIM metrics")
        fid = _concat_csv(args.fid, "FID metrics")[["experiment", "method", "fid", "fid_status"]]
        if "ssim_mode" not in ssim.columns:  # metrics written before the mode was recorded
            ssim["ssim_mode"] = "clip"
        rows = ssim[["experiment", "method", "mean_ssim", "ssim_mode"]].merge(fid, on=["experiment", "method"], how="outer",
                                                                 validate="one_to_one")
        unknown = sorted(set(rows["experiment"]) - set(specs))
        if unknown:
            raise ValueError(f"t4: metrics of experiment(s) {unknown} have no --experiments entry (given: "
                             f"{sorted(specs)})")
        rows[["dataset", "resolution", "budget_seconds"]] = pd.DataFrame(
            [specs[e] for e in rows["experiment"]], index=rows.index)
        return tables.t4_budget(rows[["experiment", "dataset", "resolution", "budget_seconds", "method",
                                      "mean_ssim", "ssim_mode", "fid", "fid_status"]])
    raise ValueError(f"unknown table {args.name!r}")


def denoise_runs(args) -> "pd.DataFrame":
    """T1 input rows from the training summaries (JSON) of the denoising runs, each labelled by
    --experiments, --methods, --datasets and --resolutions.

    A run that reached its target counts its time_to_target_seconds, one that did
    not its training seconds at the cap; ours adds its precompute_seconds.
    """
    import pandas as pd

    rows = []
    for path, exp, method, dataset, res in aligned("t1", summaries=args.summaries, experiments=args.experiments,
                                                   methods=args.methods, datasets=args.datasets,
                                                   resolutions=args.resolutions):
        try:
            summary = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"training summary {path} does not exist") from None
        missing = [k for k in ("reached", "time_to_target_seconds", "train_seconds", "target_ssim",
                               "precompute_seconds") if k not in summary]
        if missing:
            raise ValueError(f"training summary {path}: missing key(s) {missing}")
        if summary["reached"] is None:
            raise ValueError(f"training summary {path}: not a target-SSIM run (stop = {summary.get('stop')!r})")
        pre = summary["precompute_seconds"]
        if method == "ours" and pre is None:
            raise ValueError(f"training summary {path}: our run has no precompute_seconds (train it with "
                             "--solve-log so the score pre-computation is counted)")
        reached = bool(summary["reached"])
        rows.append(dict(experiment=exp, dataset=dataset, resolution=int(res), target_ssim=summary["target_ssim"],
                         protocol=summary.get("eval_protocol") or "generate", ssim_mode=summary.get("ssim_mode") or "clip",
                         parameterization=(summary.get("method_description") or {}).get("parameterization", "ddpm-eps"),
                         method=method, reached=reached,
                         train_seconds=summary["time_to_target_seconds"] if reached else summary["train_seconds"],
                         precompute_seconds=float(pre or 0.0) if method == "ours" else 0.0))
    return pd.DataFrame(rows)


def run_table(args) -> int:
    table = build_table(args)
    paths = write_table(table, args.out, table_caption(args.name, table))
    print(f"wrote {', '.join(map(str, paths))}")
    print(table.to_string(index=False))
    return 0


# ---- figures ---------------------------------------------------------------------------------

def _samples(path: str, keys=("images", "states", "times")) -> dict:
    return _npz(path, keys, "samples")


def projection_points(args) -> "pd.DataFrame":
    """F8 points of projecting runs: per solve log, the seeds of its prepared state (key ``seeds``) and
    the pixel distance of every image to its nearest seed."""
    import pandas as pd

    from fpscore.data import load_dataset
    from fpscore.solvers.seeds import nearest_seed
    from fpscore.tables import projection_vs_dissimilarity

    frames = []
    for log_path, prepared, image_path, label in aligned("f8", solve_logs=args.solve_logs, prepared=args.prepared,
                                                         images=args.images, labels=args.labels):
        seeds = _npz(prepared, ("seeds",), "projection seeds")["seeds"]
        _, distance, _ = nearest_seed(load_dataset(image_path)[0], seeds)
        points = projection_vs_dissimilarity(_read_csv(log_path, "solve log"), distance)
        frames.append(points.assign(label=label))
    return pd.concat(frames, ignore_index=True)


def build_figure(args):
    import pandas as pd

    from fpscore import figures

    name = args.name
    if name == "f1":
        return figures.schematic()
    if name == "f2":
        rows = []
        for path, label in aligned("f2", samples=args.samples, labels=args.labels):
            s = _samples(path, ("states", "times"))
            rows.append(dict(label=label, states=s["states"][:, 0], times=s["times"]))
        return figures.denoising_progression(rows)
    if name == "f3":
        s = _samples(args.samples[0], ("states", "times"))
        return figures.generation_progression(s["states"], s["times"])
    if name == "f4":
        panels = []
        for path, ssim, method in aligned("f4", samples=args.samples, ssim=args.ssim, methods=args.methods):
            mean_ssim = _read_csv(ssim, "SSIM metrics")["mean_ssim"].iloc[0]
            panels.append(dict(method=method, images=_samples(path, ("images",))["images"], mean_ssim=mean_ssim))
        return figures.budget_grid(panels, budget_seconds=args.budget_seconds, resolution=args.resolution)
    if name == "f6":
        return figures.solver_times(_read_csv(args.table, "T2 table"))
    if name == "f7":
        return figures.picard_convergence(_solve_logs(args))
    if name == "f8":
        return figures.projection_residual(projection_points(args))
    if name == "f9":
        return figures.rank_sweep(_read_csv(args.table, "rank-sweep CSV"))
    if name == "f10":
        runs = aligned("f10", train_logs=args.train_logs, experiments=args.experiments, methods=args.methods,
                       targets=args.targets)
        frames = [_read_csv(path, "training log").assign(experiment=exp, method=method)
                  for path, exp, method, _ in runs]
        return figures.ssim_curves(pd.concat(frames, ignore_index=True),
                                   {exp: float(target) for _, exp, _, target in runs})
    raise ValueError(f"unknown figure {name!r}")


def run_figure(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    paths = save_figure(build_figure(args), args.out)
    print(f"wrote {', '.join(map(str, paths))}")
    return 0


# ---- argparse --------------------------------------------------------------------------------

def _add_labels(p: argparse.ArgumentParser, what: str) -> None:
    """The labels of --solve-logs (one each, in the same order)."""
    p.add_argument("--datasets", nargs="+", help=f"{what}: the dataset of each solve log / experiment")
    p.add_argument("--resolutions", nargs="+", type=int, help=f"{what}: the image size of each")
    p.add_argument("--solvers", nargs="+", choices=SOLVERS, help=f"{what}: the solver of each solve log")


def register(subparsers) -> None:
    p = subparsers.add_parser("table", help="build one of the paper's tables (CSV, Markdown, LaTeX)")
    p.add_argument("name", choices=sorted(TABLE_CAPTIONS), help="t1 time to SSIM, t2 solvers, t3 systems, "
                                                                   "t4 fixed budget")
    p.add_argument("--out", required=True, help="output stem: writes <stem>.csv, .md, .tex")
    p.add_argument("--summaries", nargs="+", help="t1: training summaries (train_log.json) of the denoising runs")
    p.add_argument("--experiments", nargs="+", help="t1: the experiment of each summary; t4: the budget experiments")
    p.add_argument("--methods", nargs="+", choices=METHODS, help="t1: the method of each summary")
    p.add_argument("--solve-logs", nargs="+", help="t2, t3: solve logs (labelled by --datasets, --resolutions, "
                                                   "--solvers)")
    _add_labels(p, "t1, t2, t3, t4")
    p.add_argument("--score-errors", nargs="+", help="t2: score-error CSVs (fpscore score-error)")
    add_group(p, RANK, title="t3")
    p.add_argument("--budgets", nargs="+", type=float, help="t4: the training seconds of each experiment")
    p.add_argument("--ssim", nargs="+", help="t4: ssim.csv of every (experiment, method)")
    p.add_argument("--fid", nargs="+", help="t4: fid.csv of every (experiment, method)")
    p.set_defaults(func=run_table)

    p = subparsers.add_parser("figure", help="draw one of the paper's figures (PNG and PDF)")
    p.add_argument("name", choices=["f1", "f2", "f3", "f4", "f6", "f7", "f8", "f9", "f10"])
    p.add_argument("--out", required=True, help="output .png (the .pdf is written beside it)")
    p.add_argument("--samples", nargs="+", help="f2, f4: samples.npz files; f3: one samples.npz")
    p.add_argument("--labels", nargs="+", help="f2: the panel label of each samples file; f8: of each solve log")
    p.add_argument("--methods", nargs="+", choices=METHODS, help="f4: the method of each samples file; "
                                                                 "f10: of each training log")
    p.add_argument("--ssim", nargs="+", help="f4: ssim.csv of each samples file")
    p.add_argument("--budget-seconds", type=float, help="f4: the training budget")
    p.add_argument("--resolution", type=int, help="f4: the image size")
    p.add_argument("--table", help="f6: T2 CSV; f9: rank sweep CSV")
    p.add_argument("--solve-logs", nargs="+", help="f7: solve logs (labelled by --datasets, --resolutions, "
                                                   "--solvers); f8: solve logs of projecting runs")
    _add_labels(p, "f7")
    p.add_argument("--prepared", nargs="+", help="f8: the prepared state (seeds) of each solve log")
    p.add_argument("--images", nargs="+", help="f8: the images.npz of each solve log")
    p.add_argument("--train-logs", nargs="+", help="f10: training logs (train_log.csv)")
    p.add_argument("--experiments", nargs="+", help="f10: the experiment of each training log")
    p.add_argument("--targets", nargs="+", type=float, help="f10: the target SSIM of each training log")
    p.set_defaults(func=run_figure)

    p = subparsers.add_parser("fid", help="FID of generated samples against the training images, or "
                                          "'unavailable: <reason>' without the standard weights")
    _sample_metric_args(p)
    add_group(p, FID, title="FID settings (evaluate.fid)")
    p.add_argument("--no-download", action="store_true", help="never download; absent weights give 'unavailable'")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_fid)

    p = subparsers.add_parser("ssim", help="mean SSIM of generated samples to their closest training image")
    _sample_metric_args(p)
    add_group(p, SSIM_MODE)
    p.set_defaults(func=run_ssim)

    p = subparsers.add_parser("score-error", help="relative L2 error of each solver's scores vs spsolve")
    p.add_argument("--scores", nargs="+", required=True, help="the score set (directory or .npz) of each solver, spsolve included")
    p.add_argument("--solvers", nargs="+", required=True, choices=SOLVERS, help="the solver of each scores file")
    p.add_argument("--dataset", required=True, help="the dataset of the scores (a label of the output)")
    p.add_argument("--resolution", required=True, type=int, help="their image size (a label of the output)")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_score_error)


def _sample_metric_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", required=True, help="samples.npz (key images: N x C x H x W in [0, 1])")
    p.add_argument("--references", required=True, help="training images.npz (key images)")
    p.add_argument("--reference-count", type=int, help="use the first N training images (default: all)")
    p.add_argument("--reference-index", type=int, help="use the single training image I (single-image experiments)")
    p.add_argument("--experiment", required=True, help="the experiment (a label of the output)")
    p.add_argument("--method", required=True, choices=METHODS, help="the method (a label of the output)")
    p.add_argument("--out", required=True, help="output CSV (one row)")
