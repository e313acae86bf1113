"""`fpscore scores`, `fpscore scores-prepare`, `fpscore scores-merge`: score pre-computation.

    fpscore scores --images images.npz --solver ksp --out scores.npz --log solve_log.csv
    fpscore scores ... --shard 2 --shard-size 8          # images 16..23 only (a shard file)
    fpscore scores-prepare --images images.npz --solver projection --out prepared.npz --log prepare_log.csv
    fpscore scores ... --solver projection --prepared prepared.npz
    fpscore scores-merge --images images.npz --shards s0.npz s1.npz --logs s0.csv s1.csv \\
        [--prepare-log prepare_log.csv] --out scores/ --log solve_log.csv

Every numerical parameter (METHOD.md §1-5) and solver setting is an option whose
default is the schema default (config section ``scores``). Outputs are written
whole or not at all.
"""
from __future__ import annotations

import argparse
import json

from fpscore.options import Group, add_group, group_values

# The options of `fpscore scores` and `scores-prepare`: config section scores (benchmark_solvers is the
# workflow's) and its projection settings.
SCORES = Group("scores", exclude=("benchmark_solvers",))
PROJECTION = Group("scores.projection")
BATCHED = Group("scores.batched", prefix="batched-")
RULE_GROUPS = (Group("scores", exclude=("benchmark_solvers", "solver")), PROJECTION, BATCHED)  # solver: wildcard


def params_from_args(args: argparse.Namespace):
    from dataclasses import fields

    from fpscore.fokker_planck.params import FPParams

    values = group_values(args, SCORES)
    return FPParams(**{f.name: values[f.name] for f in fields(FPParams)})


def solver_from_args(args: argparse.Namespace):
    from fpscore.solvers import make_solver

    c = group_values(args, SCORES)
    return make_solver(c["solver"], rtol=c["rtol"], ksp_options=c["ksp_options"], warm_start=c["warm_start"],
                       extrapolate=c["extrapolate"], projection=group_values(args, PROJECTION),
                       batched=group_values(args, BATCHED))


def params_json(params, solver) -> str:
    """The parameters recorded in a scores file (identical for every shard of a set)."""
    return json.dumps({"fp": params.as_dict(), "solver": solver.describe()}, sort_keys=True)


def shard_range(shard: int, shard_size: int, n: int) -> range:
    if shard < 0 or shard_size < 1:
        raise ValueError(f"--shard/--shard-size: expected shard >= 0 and shard size >= 1, got {shard}, {shard_size}")
    return range(min(shard * shard_size, n), min((shard + 1) * shard_size, n))


def run_scores(args: argparse.Namespace) -> int:
    """`fpscore scores` (with the cyclic garbage collector off: a score job makes no reference cycles worth
    collecting, and its collections during the imports and the log cost about 2 % of a 1,000-image shard)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run_scores(args)
    finally:
        gc.freeze()  # nor does the collection at the interpreter's exit need to scan what the job made
        if enabled:
            gc.enable()


def _run_scores(args: argparse.Namespace) -> int:
    import numpy as np

    from fpscore.data import read_images
    from fpscore.score_files import npz_in_place, score_arrays, write_npz
    from fpscore.scores import compute_scores
    from fpscore.solve_logs import write_log

    params = params_from_args(args)
    indices = None
    if args.shard is None:
        images, names = read_images(args.images)
    else:  # this shard's images only (memory-mapped where the file allows)
        shard_range(args.shard, args.shard_size, 0)  # the arguments' check, before any reading
        images, names = read_images(args.images, rows=range(args.shard * args.shard_size,
                                                            (args.shard + 1) * args.shard_size))
        indices = np.array(shard_range(args.shard, args.shard_size, len(names)), dtype=np.int64)
        names = names[indices]
    with solver_from_args(args) as solver:
        if args.prepared:
            solver.load_prepared(args.prepared)
        if images.shape[0] == 0:  # a shard past the end of the set: an empty, mergeable file
            from fpscore.scores import ScoreSet

            _, C, H, W = images.shape
            empty = np.zeros((0, C, params.n_times, H, W), dtype=np.float32)
            result = ScoreSet(m=empty, scores=empty, times=params.times(), g=params.g(),
                              picard_iterations=np.zeros((0, C), dtype=int), converged=np.zeros((0, C), bool), log=[],
                              within_bound=np.zeros((0, C), bool), nu_active=np.zeros((0, C)))
            meta = params_json(params, solver)
            write_npz(args.out, score_arrays(result, names, meta, indices=indices))
        else:  # m and scores computed straight into the score file (npz_in_place: no copy into it afterwards)
            N, C, H, W = images.shape
            shape = (N, C, params.n_times, H, W)
            with npz_in_place(args.out, {"m": (shape, np.float32), "scores": (shape, np.float32)}) as npz:
                result = compute_scores(images, params, solver, progress=not args.no_progress,
                                        image_indices=indices, dtype=np.float32, out=npz.arrays)
                meta = params_json(params, solver)
                small = score_arrays(result, names, meta, indices=indices)
                small.pop("m"), small.pop("scores")
                result.m = result.scores = None  # the file's own pages: released before it is finished
                npz.finish(small)
    write_log(args.log, result.log, args.solve_log)
    bad, outside = int((~result.converged).sum()), int((result.converged & ~result.within_bound).sum())
    print(f"fpscore scores: {images.shape[0]} image(s), {len(result.log)} linear solves, "
          f"{bad} channel(s) not converged, {outside} converged outside the maximum-principle bound "
          f"({params.boundary} + {params.scheme}) -> {args.out}, {args.log}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from fpscore.data import read_images
    from fpscore.scores import prepare_solver
    from fpscore.solve_logs import write_log

    params = params_from_args(args)
    images, _ = read_images(args.images)
    with solver_from_args(args) as solver:
        rows = prepare_solver(images, params, solver)
        solver.save_prepared(str(args.out))
    write_log(args.log, rows, args.solve_log)
    print(f"fpscore scores-prepare: {len(rows)} linear solves -> {args.out}, {args.log}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Merge shard files into one score directory (``fpscore.score_store``: memory-mapped .npy
    files, one shard in memory at a time) and their logs into one solve log (streamed)."""
    from fpscore.fileio import atomic_outputs
    from fpscore.score_store import merge_shards_to_dir
    from fpscore.data import read_images
    from fpscore.solve_logs import merge_logs

    images, names = read_images(args.images)
    with atomic_outputs(args.log) as (log,):  # no merged log is left behind when the scores fail
        merge_logs(([args.prepare_log] if args.prepare_log else []) + list(args.logs), log)
        merge_shards_to_dir(args.shards, images.shape[0], args.out, names=names)
    print(f"fpscore scores-merge: {len(args.shards)} shard(s), {images.shape[0]} image(s) -> {args.out}, {args.log}")
    return 0


def _add_config_options(p: argparse.ArgumentParser) -> None:
    add_group(p, SCORES, title="numerical parameters and solver (config section scores; METHOD.md)")
    add_group(p, PROJECTION, title="projection solver (config section scores.projection; METHOD.md section 6)")
    add_group(p, BATCHED, title="batched engine (config section scores.batched; METHOD.md section 5c)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scores", help="pre-compute m and the scores of a set of images",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="images.npz of the data stage (keys images, names)")
    p.add_argument("--out", required=True, help="scores .npz to write")
    p.add_argument("--log", required=True, help="solve log .csv to write (one row per time level of a channel, or "
                   "per linear solve: --solve-log)")
    p.add_argument("--shard", type=int, default=None, help="compute only shard I (images I*S .. I*S+S-1, "
                   "S = --shard-size)")
    p.add_argument("--prepared", default=None, help="prepared solver state from `fpscore scores-prepare`")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(p)
    p.set_defaults(func=run_scores)

    q = subparsers.add_parser("scores-prepare", help="the solver's work before a set (projection: the seed solves)")
    q.add_argument("--images", required=True, help="images.npz of the data stage")
    q.add_argument("--out", required=True, help="prepared state .npz to write")
    q.add_argument("--log", required=True, help="solve log .csv of the preparation")
    _add_config_options(q)
    q.set_defaults(func=run_prepare)

    r = subparsers.add_parser("scores-merge", help="merge shard score files into one score directory")
    r.add_argument("--images", required=True, help="images.npz the shards were computed from")
    r.add_argument("--shards", nargs="+", required=True, help="shard .npz files")
    r.add_argument("--logs", nargs="*", default=[], help="shard solve logs (.csv, all of one kind: scores.solve_log)")
    r.add_argument("--prepare-log", default=None, help="solve log of scores-prepare, put first")
    r.add_argument("--out", required=True, help="the score directory to write (m.npy, scores.npy, ...; "
                   "fpscore.score_store)")
    r.add_argument("--log", required=True, help="merged solve log .csv")
    r.set_defaults(func=run_merge)
