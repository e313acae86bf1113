"""`fpscore figure f1..f10`: one of the paper's figures from the files the workflow wrote.

Reads the files the command line names, draws the figure (``fpscore.figures``) and
writes <stem>.png and <stem>.pdf whole or not at all (``fpscore.rendering``). Samples
files hold keys ``images`` (N x C x H x W), ``states`` (K x N x C x H x W), ``times``
(K) and, from the model's training summary, ``method``, ``experiment``, ``dataset`` and
``budget_seconds``: the figures label runs from their files.
"""
from __future__ import annotations

from fpscore.cli.args import aligned
from fpscore.cli.table import add_solve_log_labels, solve_logs

FIGURES = ("f1", "f2", "f3", "f4", "f6", "f7", "f8", "f9", "f10")


def _samples(path: str, keys=("images", "states", "times")) -> dict:
    from fpscore.fileio import read_npz_arrays

    return read_npz_arrays(path, "samples", keys)


def _label(path, record, key: str) -> str:
    """A label a file records (a samples file's or a training summary's experiment, dataset, method)."""
    value = record.get(key) if isinstance(record, dict) else (record[key] if key in record else None)
    value = "" if value is None else str(value)
    if not value:
        raise ValueError(f"{path} records no {key} (written by an older `fpscore train` / `fpscore sample`: "
                         "rerun them)")
    return value


def projection_points(args):
    """F8 points of projecting runs: per solve log, the seeds of its prepared state (key ``seeds``) and
    the pixel distance of every image to its nearest seed."""
    import pandas as pd

    from fpscore.data import read_images
    from fpscore.fileio import read_npz_arrays
    from fpscore.logs import read_csv
    from fpscore.solvers.seeds import nearest_seed
    from fpscore.tables import projection_vs_dissimilarity

    frames = []
    for log_path, prepared, image_path, label in aligned("f8", solve_logs=args.solve_logs, prepared=args.prepared,
                                                         images=args.images, labels=args.labels):
        seeds = read_npz_arrays(prepared, "projection seeds", ("seeds",))["seeds"]
        _, distance, _ = nearest_seed(read_images(image_path)[0], seeds)
        points = projection_vs_dissimilarity(read_csv(log_path, "solve log"), distance)
        frames.append(points.assign(label=label))
    return pd.concat(frames, ignore_index=True)


def build_figure(args):
    import pandas as pd

    from fpscore import figures
    from fpscore.logs import read_csv

    name = args.name
    if name == "f1":
        return figures.schematic()
    if name == "f2":
        rows = []
        for path in args.samples or []:
            s = _samples(path, ("states", "times", "images", "dataset"))
            res = s["images"].shape[-1]
            rows.append(dict(label=f"{_label(path, s, 'dataset')}_{res}x{res}", states=s["states"][:, 0],
                             times=s["times"]))
        return figures.denoising_progression(rows)
    if name == "f3":
        s = _samples(args.samples[0], ("states", "times"))
        return figures.generation_progression(s["states"], s["times"])
    if name == "f4":
        panels, budgets = [], set()
        fids = args.fid or [None] * len(args.samples or [])
        for path, ssim, fid in aligned("f4", samples=args.samples, ssim=args.ssim, fid=fids):
            s = _samples(path, ("images", "method", "budget_seconds"))
            mean_ssim = read_csv(ssim, "SSIM metrics")["mean_ssim"].iloc[0]
            panel = dict(method=str(s["method"]), images=s["images"], mean_ssim=mean_ssim)
            if fid is not None:  # FID and KID with their counts in the title
                panel.update(read_csv(fid, "FID metrics").iloc[0][["fid", "kid", "n_generated", "n_reference"]])
            panels.append(panel)
            budgets.add(float(s["budget_seconds"]))
        if len(budgets) != 1 or any(b != b for b in budgets):
            raise ValueError(f"f4: the samples files record the training budgets {sorted(budgets)}; expected one "
                             "(samples of one budget experiment, written by `fpscore sample` of such a model)")
        return figures.budget_grid(panels, budget_seconds=budgets.pop(), resolution=panels[0]["images"].shape[-1])
    if name == "f6":
        return figures.solver_times(read_csv(args.table, "T2 table"))
    if name == "f7":
        return figures.picard_convergence(solve_logs(args))
    if name == "f8":
        return figures.projection_residual(projection_points(args))
    if name == "f9":
        return figures.rank_sweep(read_csv(args.table, "rank-sweep CSV"))
    if name == "f10":
        from fpscore.logs import read_summary

        frames, targets = [], {}
        for log, summary_path in aligned("f10", train_logs=args.train_logs, summaries=args.summaries):
            summary = read_summary(summary_path)
            experiment = _label(summary_path, summary, "experiment")
            frames.append(read_csv(log, "training log").assign(experiment=experiment,
                                                               method=_label(summary_path, summary, "method")))
            if summary.get("target_ssim") is not None:
                targets[experiment] = float(summary["target_ssim"])
        return figures.ssim_curves(pd.concat(frames, ignore_index=True), targets)
    raise ValueError(f"unknown figure {name!r}")


def run_figure(args) -> int:
    import matplotlib

    from fpscore.rendering import save_figure

    matplotlib.use("Agg")
    paths = save_figure(build_figure(args), args.out)
    print(f"wrote {', '.join(map(str, paths))}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("figure", help="draw one of the paper's figures (PNG and PDF)")
    p.add_argument("name", choices=FIGURES)
    p.add_argument("--out", required=True, help="output .png (the .pdf is written beside it)")
    p.add_argument("--samples", nargs="+", help="f2, f4: samples.npz files (each records its method, dataset and "
                   "training budget); f3: one samples.npz")
    p.add_argument("--labels", nargs="+", help="f8: the label of each solve log")
    p.add_argument("--ssim", nargs="+", help="f4: ssim.csv of each samples file")
    p.add_argument("--fid", nargs="+", help="f4: fid.csv of each samples file (FID and KID in the titles; optional)")
    p.add_argument("--table", help="f6: T2 CSV; f9: rank sweep CSV")
    p.add_argument("--solve-logs", nargs="+", help="f7: solve logs (labelled by --datasets, --resolutions, "
                                                   "--solvers); f8: solve logs of projecting runs")
    add_solve_log_labels(p, "f7")
    p.add_argument("--prepared", nargs="+", help="f8: the prepared state (seeds) of each solve log")
    p.add_argument("--images", nargs="+", help="f8: the images.npz of each solve log")
    p.add_argument("--train-logs", nargs="+", help="f10: training logs (train_log.csv)")
    p.add_argument("--summaries", nargs="+", help="f10: the training summary (train_log.json) of each training log")
    p.set_defaults(func=run_figure)
