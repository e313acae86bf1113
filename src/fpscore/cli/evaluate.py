"""`fpscore table|figure|fid|ssim|score-error`: metrics, the paper's tables and figures.

The edge between files and the pure builders of fpscore.tables / fpscore.figures:
read the logs the earlier steps wrote, call one builder, write the result whole
or not at all (temporary siblings, then os.replace). Tables are written as
<stem>.csv, <stem>.md and <stem>.tex; figures as <stem>.png and <stem>.pdf.

Path conventions read here (the workflow's, see workflow/rules/*.smk):
results/scores/{dataset}/{res}/{solver}/solve_log.csv and scores.npz (key
``scores``, N x C x T x H x W), results/data/{dataset}/{res}/images.npz (key
``images``), results/train/{experiment}/{method}/train_log.csv and
results/train/{experiment}/{method}/train_log.json (the training summary) and
results/samples/{experiment}/{method}/samples.npz (keys ``images`` N x C x H x W,
``states`` K x N x C x H x W, ``times`` K).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from fpscore.fileio import atomic_outputs

METHODS = ["ours", "ddpm", "dsm"]  # dsm: the like-for-like baseline (learn.dsm.train)
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
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "--"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


def write_table(table: pd.DataFrame, stem: str | Path, caption: str = "") -> list[Path]:
    """<stem>.csv (full precision), <stem>.md and <stem>.tex (numbers by ``format_number``)."""
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

def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return pd.read_csv(path)


def _npz(path: str | Path, keys: tuple[str, ...], what: str) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise ValueError(f"{what} {path}: missing key(s) {missing}; it holds {npz.files}")
        return {k: npz[k] for k in keys}


def score_dir_labels(path: str | Path) -> tuple[str, int, str]:
    """(dataset, resolution, solver) of results/scores/{dataset}/{res}/{solver}/<file>."""
    path = Path(path)
    solver, res, dataset = path.parent.name, path.parent.parent.name, path.parent.parent.parent.name
    if not res.isdigit():
        raise ValueError(f"{path}: expected a path .../{{dataset}}/{{res}}/{{solver}}/{path.name} with an "
                         f"integer resolution, got {res!r}")
    return dataset, int(res), solver


def read_solve_logs(paths: list[str]) -> pd.DataFrame:
    """Concatenated solve logs with dataset and resolution columns taken from their paths."""
    if not paths:
        raise ValueError("no solve logs given (--solve-logs)")
    frames = []
    for path in paths:
        dataset, res, solver = score_dir_labels(path)
        log = _read_csv(path, "solve log")
        if "solver" not in log.columns:
            log["solver"] = solver
        frames.append(log.assign(dataset=dataset, resolution=res))
    return pd.concat(frames, ignore_index=True)


def _key_values(items: list[str] | None, what: str, cast=str) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[key] = cast(value)
    return out


def _settings(section: str) -> dict:
    from fpscore.config import schema_defaults

    return schema_defaults().get(section, {})


# ---- metrics ---------------------------------------------------------------------------------

def run_score_error(args) -> int:
    from fpscore.tables import REFERENCE_SOLVER, score_errors

    by_solver = {}
    for path in args.scores:
        dataset, res, solver = score_dir_labels(path)
        by_solver[solver] = (dataset, res, _npz(path, ("scores",), "scores file")["scores"])
    if REFERENCE_SOLVER not in by_solver:
        raise ValueError(f"--scores must include the {REFERENCE_SOLVER} scores (got solvers {sorted(by_solver)})")
    dataset, res, reference = by_solver[REFERENCE_SOLVER]
    if any((d, r) != (dataset, res) for d, r, _ in by_solver.values()):
        raise ValueError("--scores must all belong to one dataset and resolution, got "
                         f"{sorted({(d, r) for d, r, _ in by_solver.values()})}")
    table = score_errors(reference, {s: v[2] for s, v in by_solver.items()})
    table.insert(0, "resolution", res)
    table.insert(0, "dataset", dataset)
    write_all([(Path(args.out), lambda tmp: table.to_csv(tmp, index=False))])
    print(table.to_string(index=False))
    return 0


def _references(path: str, count: int | None, index: int | None = None) -> np.ndarray:
    """The training images of an experiment: the first ``count`` or the single image ``index``."""
    images = _npz(path, ("images",), "training images")["images"]
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
    from fpscore.metrics import ssim_to_closest

    samples = _npz(args.samples, ("images",), "samples")["images"]
    per_sample = ssim_to_closest(samples, _references(args.references, args.reference_count, args.reference_index))
    row = pd.DataFrame([dict(experiment=args.experiment, method=args.method, n_samples=len(per_sample),
                             mean_ssim=per_sample.mean(), min_ssim=per_sample.min(), max_ssim=per_sample.max())])
    write_all([(Path(args.out), lambda tmp: row.to_csv(tmp, index=False))])
    print(row.to_string(index=False))
    return 0


def run_fid(args) -> int:
    from fpscore import fid

    defaults = _settings("evaluate").get("fid", {})
    pick = lambda value, key, fallback: value if value is not None else defaults.get(key, fallback)  # noqa: E731
    samples = _npz(args.samples, ("images",), "samples")["images"]
    reference = _references(args.references, args.reference_count, args.reference_index)
    result = fid.compute_fid(samples, reference, pick(args.weights_path, "weights_path", "resources/"
                                                      "pt_inception-2015-12-05-6726825d.pth"),
                             url=pick(args.url, "url", fid.FID_WEIGHTS_URL),
                             sha256=pick(args.sha256, "sha256", fid.FID_WEIGHTS_SHA256),
                             download=not args.no_download, batch_size=pick(args.batch_size, "batch_size", 50),
                             device=args.device)
    row = pd.DataFrame([dict(experiment=args.experiment, method=args.method, fid=result.value,
                             fid_status=result.status, n_generated=result.n_generated,
                             n_reference=result.n_reference)])
    write_all([(Path(args.out), lambda tmp: row.to_csv(tmp, index=False))])
    print(f"FID {args.experiment}/{args.method}: {result.value if result.status == 'ok' else result.status}")
    return 0


# ---- tables ----------------------------------------------------------------------------------

def _concat_csv(paths: list[str], what: str) -> pd.DataFrame:
    if not paths:
        raise ValueError(f"no {what} files given")
    return pd.concat([_read_csv(p, what) for p in paths], ignore_index=True)


def build_table(args) -> pd.DataFrame:
    from fpscore import tables

    if args.name == "t1":
        return tables.t1_time_to_ssim(denoise_runs(args.summaries, args.denoise))
    if args.name == "t2":
        errors = _concat_csv(args.score_errors, "score-error") if args.score_errors else None
        return tables.t2_solvers(read_solve_logs(args.solve_logs), errors)
    if args.name == "t3":
        return tables.t3_systems(read_solve_logs(args.solve_logs), _key_values(args.rank, "--rank", int))
    if args.name == "t4":
        rows = []
        for spec in args.budget:
            exp, dataset, res, budget = _budget_spec(spec)
            for method in args.methods:
                base = Path(args.metrics_dir) / exp / method
                ssim = _read_csv(base / "ssim.csv", "SSIM metrics").iloc[0]
                fid = _read_csv(base / "fid.csv", "FID metrics").iloc[0]
                rows.append(dict(experiment=exp, dataset=dataset, resolution=res, budget_seconds=budget,
                                 method=method, mean_ssim=ssim["mean_ssim"], fid=fid["fid"],
                                 fid_status=fid["fid_status"]))
        return tables.t4_budget(pd.DataFrame(rows))
    raise ValueError(f"unknown table {args.name!r}")


def train_dir_labels(path: str | Path) -> tuple[str, str]:
    """(experiment, method) of results/train/{experiment}/{method}/<file>."""
    path = Path(path)
    return path.parent.parent.name, path.parent.name


def denoise_runs(summaries: list[str], specs: list[str]) -> pd.DataFrame:
    """T1 input rows from the training summaries (JSON) of the denoising runs.

    A run that reached its target counts its time_to_target_seconds, one that did
    not its training seconds at the cap; ours adds its precompute_seconds.
    """
    known = {}
    for spec in specs or []:
        parts = spec.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"--denoise: expected EXPERIMENT:DATASET:RESOLUTION, got {spec!r}")
        known[parts[0]] = (parts[1], int(parts[2]))
    rows = []
    for path in summaries or []:
        exp, method = train_dir_labels(path)
        if exp not in known:
            raise ValueError(f"training summary {path}: experiment {exp!r} has no --denoise spec "
                             f"(given: {sorted(known)})")
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
        dataset, res = known[exp]
        rows.append(dict(experiment=exp, dataset=dataset, resolution=res, target_ssim=summary["target_ssim"],
                         method=method, reached=reached,
                         train_seconds=summary["time_to_target_seconds"] if reached else summary["train_seconds"],
                         precompute_seconds=float(pre or 0.0) if method == "ours" else 0.0))
    if not rows:
        raise ValueError("no training summaries given (--summaries)")
    return pd.DataFrame(rows)


def _budget_spec(spec: str) -> tuple[str, str, int, float]:
    """EXPERIMENT:DATASET:RESOLUTION:BUDGET_SECONDS."""
    parts = spec.split(":")
    if len(parts) != 4 or not parts[2].isdigit():
        raise ValueError(f"--budget: expected EXPERIMENT:DATASET:RESOLUTION:SECONDS, got {spec!r}")
    return parts[0], parts[1], int(parts[2]), float(parts[3])


def run_table(args) -> int:
    table = build_table(args)
    paths = write_table(table, args.out, table_caption(args.name, table))
    print(f"wrote {', '.join(map(str, paths))}")
    print(table.to_string(index=False))
    return 0


# ---- figures ---------------------------------------------------------------------------------

def _samples(path: str, keys=("images", "states", "times")) -> dict[str, np.ndarray]:
    return _npz(path, keys, "samples")


def projection_points(solve_logs: list[str], images: list[str]) -> pd.DataFrame:
    """F8 points of projecting runs: each solve log's seeds come from prepared.npz beside it (key
    ``seeds``), distances from the images of the same dataset and size (aligned with --images)."""
    from fpscore.solvers.seeds import nearest_seed
    from fpscore.tables import projection_vs_dissimilarity

    if not solve_logs or len(solve_logs) != len(images or []):
        raise ValueError(f"f8: give one --images file per --solve-logs file (got {len(solve_logs or [])} logs, "
                         f"{len(images or [])} image files)")
    frames = []
    for log_path, image_path in zip(solve_logs, images):
        dataset, res, solver = score_dir_labels(log_path)
        seeds = _npz(Path(log_path).with_name("prepared.npz"), ("seeds",), "projection seeds")["seeds"]
        _, distance, _ = nearest_seed(_npz(image_path, ("images",), "images")["images"], seeds)
        points = projection_vs_dissimilarity(_read_csv(log_path, "solve log"), distance)
        frames.append(points.assign(label=f"{dataset} {res}x{res}"))
    return pd.concat(frames, ignore_index=True)


def build_figure(args):
    from fpscore import figures

    name = args.name
    if name == "f1":
        return figures.schematic()
    if name == "f2":
        rows = []
        for label, path in _key_values(args.samples, "--samples").items():
            s = _samples(path, ("states", "times"))
            rows.append(dict(label=label, states=s["states"][:, 0], times=s["times"]))
        return figures.denoising_progression(rows)
    if name == "f3":
        s = _samples(args.samples[0], ("states", "times"))
        return figures.generation_progression(s["states"], s["times"])
    if name == "f4":
        panels = []
        for method, path in _key_values(args.samples, "--samples").items():
            ssim = _read_csv(Path(args.metrics_dir) / method / "ssim.csv", "SSIM metrics")["mean_ssim"].iloc[0]
            panels.append(dict(method=method, images=_samples(path, ("images",))["images"], mean_ssim=ssim))
        return figures.budget_grid(panels, budget_seconds=args.budget_seconds, resolution=args.resolution)
    if name == "f6":
        return figures.solver_times(_read_csv(args.table, "T2 table"))
    if name == "f7":
        return figures.picard_convergence(read_solve_logs(args.solve_logs))
    if name == "f8":
        return figures.projection_residual(projection_points(args.solve_logs, args.images))
    if name == "f9":
        return figures.rank_sweep(_read_csv(args.table, "rank-sweep CSV"))
    if name == "f10":
        frames = [_read_csv(path, "training log").assign(experiment=train_dir_labels(path)[0],
                                                         method=train_dir_labels(path)[1])
                  for path in args.train_logs or []]
        if not frames:
            raise ValueError("f10: no training logs given (--train-logs)")
        return figures.ssim_curves(pd.concat(frames, ignore_index=True),
                                   _key_values(args.target, "--target", float))
    raise ValueError(f"unknown figure {name!r}")


def run_figure(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    paths = save_figure(build_figure(args), args.out)
    print(f"wrote {', '.join(map(str, paths))}")
    return 0


# ---- argparse --------------------------------------------------------------------------------

def register(subparsers) -> None:
    fid_defaults = _settings("evaluate").get("fid", {})

    p = subparsers.add_parser("table", help="build one of the paper's tables (CSV, Markdown, LaTeX)")
    p.add_argument("name", choices=sorted(TABLE_CAPTIONS), help="t1 time to SSIM, t2 solvers, t3 systems, "
                                                                   "t4 fixed budget")
    p.add_argument("--out", required=True, help="output stem: writes <stem>.csv, .md, .tex")
    p.add_argument("--summaries", nargs="+", help="t1: results/train/{experiment}/{method}/train_log.json")
    p.add_argument("--denoise", nargs="+", help="t1: EXPERIMENT:DATASET:RESOLUTION per denoising run")
    p.add_argument("--solve-logs", nargs="+", help="t2, t3: results/scores/{dataset}/{res}/{solver}/solve_log.csv")
    p.add_argument("--score-errors", nargs="+", help="t2: score-error CSVs (fpscore score-error)")
    p.add_argument("--rank", nargs="*", help="t3: SOLVER=RANK of the subspace each projecting solver used")
    p.add_argument("--budget", nargs="+", help="t4: EXPERIMENT:DATASET:RESOLUTION:SECONDS per budget run")
    p.add_argument("--metrics-dir", default="results/metrics", help="t4: folder of {experiment}/{method}/"
                                                                     "ssim.csv and fid.csv")
    p.add_argument("--methods", nargs="+", default=["ours", "ddpm"], choices=METHODS,
                   help="t4: the methods of each budget experiment (default ours ddpm; add dsm where "
                        "learn.dsm.train)")
    p.set_defaults(func=run_table)

    p = subparsers.add_parser("figure", help="draw one of the paper's figures (PNG and PDF)")
    p.add_argument("name", choices=["f1", "f2", "f3", "f4", "f6", "f7", "f8", "f9", "f10"])
    p.add_argument("--out", required=True, help="output .png (the .pdf is written beside it)")
    p.add_argument("--samples", nargs="+", help="f2: LABEL=samples.npz per resolution; f3: samples.npz; "
                                                "f4: METHOD=samples.npz (ours, ddpm[, dsm])")
    p.add_argument("--metrics-dir", help="f4: folder of {method}/ssim.csv of the budget experiment")
    p.add_argument("--budget-seconds", type=float, help="f4: the training budget")
    p.add_argument("--resolution", type=int, help="f4: the image size")
    p.add_argument("--table", help="f6: T2 CSV; f9: rank sweep CSV")
    p.add_argument("--solve-logs", nargs="+", help="f7: solve logs; f8: solve logs of projecting runs "
                                                   "(prepared.npz with the seeds beside each)")
    p.add_argument("--images", nargs="+", help="f8: images.npz per solve log, in the same order")
    p.add_argument("--train-logs", nargs="+", help="f10: results/train/{experiment}/{method}/train_log.csv")
    p.add_argument("--target", nargs="*", help="f10: EXPERIMENT=TARGET_SSIM")
    p.set_defaults(func=run_figure)

    p = subparsers.add_parser("fid", help="FID of generated samples against the training images, or "
                                          "'unavailable: <reason>' without the standard weights")
    _sample_metric_args(p)
    p.add_argument("--weights-path", help=f"Inception weights (default {fid_defaults.get('weights_path')})")
    p.add_argument("--url", help="download URL of the weights")
    p.add_argument("--sha256", help="expected SHA-256 of the weights (empty skips the check)")
    p.add_argument("--no-download", action="store_true", help="never download; absent weights give 'unavailable'")
    p.add_argument("--batch-size", type=int, help="images per Inception forward pass")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_fid)

    p = subparsers.add_parser("ssim", help="mean SSIM of generated samples to their closest training image")
    _sample_metric_args(p)
    p.set_defaults(func=run_ssim)

    p = subparsers.add_parser("score-error", help="relative L2 error of each solver's scores vs spsolve")
    p.add_argument("--scores", nargs="+", required=True,
                   help="results/scores/{dataset}/{res}/{solver}/scores.npz, spsolve included")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_score_error)


def _sample_metric_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", required=True, help="samples.npz (key images: N x C x H x W in [0, 1])")
    p.add_argument("--references", required=True, help="training images.npz (key images)")
    p.add_argument("--reference-count", type=int, help="use the first N training images (default: all)")
    p.add_argument("--reference-index", type=int, help="use the single training image I (single-image experiments)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--out", required=True, help="output CSV (one row)")
