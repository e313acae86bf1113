"""`fpscore ssim|fid|score-error`: metrics of generated samples and of each solver's scores.

Each command reads its files, computes one metric and writes one CSV whole or not at all.
The files: samples files (key ``images``, N x C x H x W in [0, 1]), images files of the
data step (key ``images``) and score sets (``fpscore.score_store``).
"""
from __future__ import annotations

import argparse

from fpscore.cli.args import aligned
from fpscore.names import METHODS, SOLVERS
from fpscore.options import Group, add_group, group_values

FID = Group("evaluate.fid")
SSIM_MODE = Group("evaluate", keys=("ssim_mode",))  # also training's stopping rule (fpscore train)


def _samples(path: str):
    from fpscore.fileio import read_npz_arrays

    return read_npz_arrays(path, "samples", ("images",))["images"]


def _references(path: str, count: int | None, index: int | None = None):
    """The training images of an experiment: the first ``count`` or the single image ``index``."""
    from fpscore.data import read_images

    images = read_images(path)[0]
    if index is not None:
        if not 0 <= index < len(images):
            raise ValueError(f"--reference-index {index} but {path} holds {len(images)} images")
        return images[index:index + 1]
    if count is not None:
        if count > len(images):
            raise ValueError(f"--reference-count {count} but {path} holds {len(images)} images")
        images = images[:count]
    return images


def run_score_error(args) -> int:
    from fpscore.rendering import write_csv
    from fpscore.score_store import read_scores
    from fpscore.tables import REFERENCE_SOLVER, score_errors

    by_solver = {solver: read_scores(path)["scores"]
                 for path, solver in aligned("score-error", scores=args.scores, solvers=args.solvers)}
    if REFERENCE_SOLVER not in by_solver:
        raise ValueError(f"--solvers must include {REFERENCE_SOLVER}, the reference (got {sorted(by_solver)})")
    table = score_errors(by_solver[REFERENCE_SOLVER], by_solver)
    table.insert(0, "resolution", args.resolution)
    table.insert(0, "dataset", args.dataset)
    write_csv(table, args.out)
    print(table.to_string(index=False))
    return 0


def run_ssim(args) -> int:
    import pandas as pd

    from fpscore.metrics import ssim_to_closest
    from fpscore.rendering import write_csv

    mode = group_values(args, SSIM_MODE)["ssim_mode"]
    per_sample = ssim_to_closest(_samples(args.samples),
                                 _references(args.references, args.reference_count, args.reference_index), mode)
    row = pd.DataFrame([dict(experiment=args.experiment, method=args.method, n_samples=len(per_sample),
                             mean_ssim=per_sample.mean(), min_ssim=per_sample.min(), max_ssim=per_sample.max(),
                             ssim_mode=mode)])
    write_csv(row, args.out)
    print(row.to_string(index=False))
    return 0


def run_fid(args) -> int:
    import pandas as pd

    from fpscore import fid
    from fpscore.rendering import write_csv

    s = group_values(args, FID)
    reference = _references(args.references, args.reference_count, args.reference_index)
    result = fid.compute_set_metrics(
        _samples(args.samples), reference, subsets=s["kid_subsets"], subset_size=s["kid_subset_size"],
        network=s["network"], weights_path=s["weights_path"], url=s["url"], sha256=s["sha256"],
        archive_path=s["archive_path"], archive_sha256=s["archive_sha256"], download=not args.no_download,
        batch_size=s["batch_size"], device=args.device)
    row = {k: v for k, v in result.row().items() if k != "status"}
    row = pd.DataFrame([dict(experiment=args.experiment, method=args.method, **row, fid_status=result.status)])
    write_csv(row, args.out)
    if result.status == "ok":
        print(f"{args.experiment}/{args.method}: FID {result.fid:.2f}, KID {result.kid:.4f} +- {result.kid_std:.4f} "
              f"({result.n_generated} generated vs {result.n_reference} reference images; floor, "
              f"{result.n_floor}: FID {result.fid_floor:.2f}, KID {result.kid_floor:.4f}; {result.network})")
    else:
        print(f"{args.experiment}/{args.method}: {result.status}")
    return 0


def _sample_metric_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--samples", required=True, help="samples.npz (key images: N x C x H x W in [0, 1])")
    p.add_argument("--references", required=True, help="training images.npz (key images)")
    p.add_argument("--reference-count", type=int, help="use the first N training images (default: all)")
    p.add_argument("--reference-index", type=int, help="use the single training image I (single-image experiments)")
    p.add_argument("--experiment", required=True, help="the experiment (a label of the output)")
    p.add_argument("--method", required=True, choices=METHODS, help="the method (a label of the output)")
    p.add_argument("--out", required=True, help="output CSV (one row)")


def register(subparsers) -> None:
    p = subparsers.add_parser("fid", help="FID and KID of generated samples against the training images, with "
                                          "the sample counts and the floor (half of the references against the "
                                          "other half); 'unavailable: <reason>' without a network")
    _sample_metric_args(p)
    add_group(p, FID, title="FID and KID settings (evaluate.fid)")
    p.add_argument("--no-download", action="store_true",
                   help="never download pytorch-fid's weights (network pytorch-fid: 'unavailable'; auto: the archive)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_fid)

    p = subparsers.add_parser("ssim", help="mean SSIM of generated samples to their closest training image")
    _sample_metric_args(p)
    add_group(p, SSIM_MODE)
    p.set_defaults(func=run_ssim)

    p = subparsers.add_parser("score-error", help="relative L2 error of each solver's scores vs spsolve")
    p.add_argument("--scores", nargs="+", required=True, help="the score set (directory or .npz) of each solver, "
                   "spsolve included")
    p.add_argument("--solvers", nargs="+", required=True, choices=SOLVERS, help="the solver of each scores file")
    p.add_argument("--dataset", required=True, help="the dataset of the scores (a label of the output)")
    p.add_argument("--resolution", required=True, type=int, help="their image size (a label of the output)")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=run_score_error)
