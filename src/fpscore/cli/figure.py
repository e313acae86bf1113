"""`fpscore figure f1..f10`: one of the paper's figures from the files the workflow wrote.

Reads the files the command line names, draws the figure (``fpscore.figures``) and
writes <stem>.png and <stem>.pdf whole or not at all (``fpscore.rendering``). Samples
files hold keys ``images`` (N x C x H x W), ``states`` (K x N x C x H x W) and
``times`` (K).
"""
from __future__ import annotations

from fpscore.cli.args import aligned
from fpscore.cli.table import add_solve_log_labels, solve_logs
from fpscore.names import METHODS

FIGURES = ("f1", "f2", "f3", "f4", "f6", "f7", "f8", "f9", "f10")


def _samples(path: str, keys=("images", "states", "times")) -> dict:
    from fpscore.fileio import read_npz_arrays

    return read_npz_arrays(path, "samples", keys)


def projection_points(args):
    """F8 points of projecting runs: per solve log, the seeds of its prepared state (key ``seeds``) and
    the pixel distance of every image to its nearest seed."""
    import pandas as pd

    from fpscore.data import load_dataset
    from fpscore.fileio import read_npz_arrays
    from fpscore.logs import read_csv
    from fpscore.solvers.seeds import nearest_seed
    from fpscore.tables import projection_vs_dissimilarity

    frames = []
    for log_path, prepared, image_path, label in aligned("f8", solve_logs=args.solve_logs, prepared=args.prepared,
                                                         images=args.images, labels=args.labels):
        seeds = read_npz_arrays(prepared, "projection seeds", ("seeds",))["seeds"]
        _, distance, _ = nearest_seed(load_dataset(image_path)[0], seeds)
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
            mean_ssim = read_csv(ssim, "SSIM metrics")["mean_ssim"].iloc[0]
            panels.append(dict(method=method, images=_samples(path, ("images",))["images"], mean_ssim=mean_ssim))
        return figures.budget_grid(panels, budget_seconds=args.budget_seconds, resolution=args.resolution)
    if name == "f6":
        return figures.solver_times(read_csv(args.table, "T2 table"))
    if name == "f7":
        return figures.picard_convergence(solve_logs(args))
    if name == "f8":
        return figures.projection_residual(projection_points(args))
    if name == "f9":
        return figures.rank_sweep(read_csv(args.table, "rank-sweep CSV"))
    if name == "f10":
        runs = aligned("f10", train_logs=args.train_logs, experiments=args.experiments, methods=args.methods,
                       targets=args.targets)
        frames = [read_csv(path, "training log").assign(experiment=exp, method=method)
                  for path, exp, method, _ in runs]
        return figures.ssim_curves(pd.concat(frames, ignore_index=True),
                                   {exp: float(target) for _, exp, _, target in runs})
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
    add_solve_log_labels(p, "f7")
    p.add_argument("--prepared", nargs="+", help="f8: the prepared state (seeds) of each solve log")
    p.add_argument("--images", nargs="+", help="f8: the images.npz of each solve log")
    p.add_argument("--train-logs", nargs="+", help="f10: training logs (train_log.csv)")
    p.add_argument("--experiments", nargs="+", help="f10: the experiment of each training log")
    p.add_argument("--targets", nargs="+", type=float, help="f10: the target SSIM of each training log")
    p.set_defaults(func=run_figure)
