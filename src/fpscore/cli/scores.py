"""`fpscore scores`, `fpscore scores-prepare`, `fpscore scores-merge`: score pre-computation.

    fpscore scores --images images.npz --solver ksp --out scores.npz --log solve_log.csv
    fpscore scores ... --shard 2 --shard-size 8          # images 16..23 only (a shard file)
    fpscore scores-prepare --images images.npz --solver projection --out prepared.npz --log prepare_log.csv
    fpscore scores ... --solver projection --prepared prepared.npz
    fpscore scores-merge --images images.npz --shards s0.npz s1.npz --logs s0.csv s1.csv \\
        [--prepare-log prepare_log.csv] --out scores.npz --log solve_log.csv

Every numerical parameter (METHOD.md §1-5) and solver setting is an option whose
default is the schema default (config section ``scores``). Outputs are written
whole or not at all.
"""
from __future__ import annotations

import argparse
import json
import math
import numpy as np

from fpscore.solvers import SOLVER_NAMES

_PARAM_KEYS = ("sigma", "eps", "n_times", "dh", "kde_bins", "kde_floor", "picard_tol", "picard_max_iter", "rtol")


def _defaults() -> dict:
    """Option defaults: the schema defaults of config section `scores` (one source of truth)."""
    from fpscore.config import schema_defaults

    return schema_defaults()["scores"]


def _projection_descriptions() -> dict:
    from fpscore.config import load_schema

    props = load_schema()["properties"]["scores"]["properties"]["projection"]["properties"]
    return {k: v.get("description", k) for k, v in props.items()}


def _add_parameter_options(p: argparse.ArgumentParser, d: dict) -> None:
    g = p.add_argument_group("numerical parameters (METHOD.md; defaults: config section scores)")
    g.add_argument("--sigma", type=float, default=d["sigma"], help="g(t) = sigma**t (default %(default)s)")
    g.add_argument("--eps", type=float, default=d["eps"], help="first time level (default %(default)s)")
    g.add_argument("--n-times", type=int, default=d["n_times"], help="time levels N (default %(default)s)")
    g.add_argument("--dh", type=float, default=d["dh"], help="lattice spacing h (default %(default)s)")
    g.add_argument("--kde-bins", type=int, default=d["kde_bins"], help="KDE grid bins B (default %(default)s)")
    g.add_argument("--kde-floor", type=float, default=d["kde_floor"], help="density floor (default %(default)s)")
    g.add_argument("--picard-tol", type=float, default=d["picard_tol"], help="fixed-point tolerance (default %(default)s)")
    g.add_argument("--picard-max-iter", type=int, default=d["picard_max_iter"],
                   help="fixed-point iteration cap (default %(default)s)")
    g.add_argument("--rtol", type=float, default=d["rtol"],
                   help="true relative residual of every linear solve (default %(default)s)")
    s = p.add_argument_group("solver settings")
    s.add_argument("--solver", default=d["solver"], help=f"one of {', '.join(SOLVER_NAMES)} (default %(default)s)")
    s.add_argument("--ksp-options", default=d["ksp_options"],
                   help="PETSc options without prefix, e.g. '-ksp_type bcgs -pc_type jacobi' (default %(default)r)")
    s.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=d["warm_start"],
                   help="start each KSP solve from the previous fixed-point iterate (default %(default)s)")
    s.add_argument("--extrapolate", action=argparse.BooleanOptionalAction, default=d["extrapolate"],
                   help="with --warm-start: move that iterate by the change one time level earlier "
                        "(default %(default)s)")
    # one option per key of scores.projection in the schema (n_seeds, seed_choice, rank, variant, basis, ...)
    described = _projection_descriptions()
    for key, default in d["projection"].items():
        flag = "--" + key.replace("_", "-")
        text = f"projection: {described.get(key, key)} (default %(default)s)".replace("%", "%%").replace(
            "%%(default)s", "%(default)s")
        if isinstance(default, bool):
            s.add_argument(flag, dest=f"projection_{key}", action=argparse.BooleanOptionalAction, default=default,
                           help=text)
        else:
            s.add_argument(flag, dest=f"projection_{key}", metavar=key.upper(), type=type(default), default=default,
                           help=text)


def params_from_args(args: argparse.Namespace):
    from fpscore.fokker_planck.params import FPParams

    return FPParams(**{k: getattr(args, k) for k in _PARAM_KEYS})


def solver_from_args(args: argparse.Namespace):
    from fpscore.solvers import make_solver

    if args.solver not in SOLVER_NAMES:
        raise ValueError(f"--solver: unknown solver {args.solver!r}; expected one of {', '.join(SOLVER_NAMES)}")
    projection = {k[len("projection_"):]: v for k, v in vars(args).items() if k.startswith("projection_")}
    return make_solver(args.solver, rtol=args.rtol, ksp_options=args.ksp_options, warm_start=args.warm_start,
                       extrapolate=args.extrapolate, projection=projection)


def params_json(params, solver) -> str:
    """The parameters recorded in a scores file (identical for every shard of a set)."""
    return json.dumps({"fp": params.as_dict(), "solver": solver.describe()}, sort_keys=True)


def shard_range(shard: int, shard_size: int, n: int) -> range:
    if shard < 0 or shard_size < 1:
        raise ValueError(f"--shard/--shard-size: expected shard >= 0 and shard size >= 1, got {shard}, {shard_size}")
    return range(min(shard * shard_size, n), min((shard + 1) * shard_size, n))


def run_scores(args: argparse.Namespace) -> int:
    from fpscore.scores import compute_scores, read_images, score_arrays, write_log, write_npz

    params = params_from_args(args)
    images, names = read_images(args.images)
    indices = None
    if args.shard is not None:
        indices = np.array(shard_range(args.shard, args.shard_size, images.shape[0]), dtype=np.int64)
        images, names = images[indices], names[indices]
    with solver_from_args(args) as solver:
        if args.prepared:
            solver.load_prepared(args.prepared)
        if images.shape[0] == 0:  # a shard past the end of the set: an empty, mergeable file
            from fpscore.scores import ScoreSet

            _, C, H, W = images.shape
            empty = np.zeros((0, C, params.n_times, H, W), dtype=np.float32)
            result = ScoreSet(m=empty, scores=empty, times=params.times(), g=params.g(),
                              picard_iterations=np.zeros((0, C), dtype=int), converged=np.zeros((0, C), bool), log=[])
        else:
            result = compute_scores(images, params, solver, progress=not args.no_progress,
                                    image_indices=indices, dtype=np.float32)
        meta = params_json(params, solver)
    write_npz(args.out, score_arrays(result, names, meta, indices=indices))
    write_log(args.log, result.log)
    bad = int((~result.converged).sum())
    print(f"fpscore scores: {result.m.shape[0]} image(s), {len(result.log)} linear solves, "
          f"{bad} channel(s) not converged -> {args.out}, {args.log}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from fpscore.scores import read_images, write_log

    params = params_from_args(args)
    images, _ = read_images(args.images)
    with solver_from_args(args) as solver:
        rows = solver.prepare(images, params)
        solver.save_prepared(str(args.out))
    write_log(args.log, rows)
    print(f"fpscore scores-prepare: {len(rows)} linear solves -> {args.out}, {args.log}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    import pandas as pd

    from fpscore.scores import merge_shards, read_images, write_log, write_npz
    from fpscore.solvers.base import LOG_COLUMNS

    images, names = read_images(args.images)
    arrays = merge_shards(args.shards, images.shape[0])
    if not np.array_equal(arrays["names"], names):
        raise ValueError(f"merge: image names of the shards differ from {args.images}")
    frames = []
    for p in ([args.prepare_log] if args.prepare_log else []) + list(args.logs):
        try:
            frames.append(pd.read_csv(p))
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ValueError(f"merge: cannot read solve log {p}: {err}") from None
        if list(frames[-1].columns) != list(LOG_COLUMNS):
            raise ValueError(f"merge: solve log {p} has columns {list(frames[-1].columns)}, expected {list(LOG_COLUMNS)}")
    log = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(LOG_COLUMNS))
    write_npz(args.out, arrays)
    write_log(args.log, log.to_dict("records"))
    print(f"fpscore scores-merge: {len(args.shards)} shard(s), {images.shape[0]} image(s) -> {args.out}, {args.log}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    d = _defaults()
    p = subparsers.add_parser("scores", help="pre-compute m and the scores of a set of images",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", required=True, help="images.npz of the data stage (keys images, names)")
    p.add_argument("--out", required=True, help="scores .npz to write")
    p.add_argument("--log", required=True, help="solve log .csv to write (one row per linear solve)")
    p.add_argument("--shard", type=int, default=None, help="compute only shard I (images I*S .. I*S+S-1)")
    p.add_argument("--shard-size", type=int, default=d["shard_size"], help="images per shard S (default %(default)s)")
    p.add_argument("--prepared", default=None, help="prepared solver state from `fpscore scores-prepare`")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_parameter_options(p, d)
    p.set_defaults(func=run_scores)

    q = subparsers.add_parser("scores-prepare", help="the solver's work before a set (projection: the seed solves)")
    q.add_argument("--images", required=True, help="images.npz of the data stage")
    q.add_argument("--out", required=True, help="prepared state .npz to write")
    q.add_argument("--log", required=True, help="solve log .csv of the preparation")
    _add_parameter_options(q, d)
    q.set_defaults(func=run_prepare)

    r = subparsers.add_parser("scores-merge", help="merge shard score files into one scores file")
    r.add_argument("--images", required=True, help="images.npz the shards were computed from")
    r.add_argument("--shards", nargs="+", required=True, help="shard .npz files")
    r.add_argument("--logs", nargs="*", default=[], help="shard solve logs (.csv)")
    r.add_argument("--prepare-log", default=None, help="solve log of scores-prepare, put first")
    r.add_argument("--out", required=True, help="merged scores .npz")
    r.add_argument("--log", required=True, help="merged solve log .csv")
    r.set_defaults(func=run_merge)


# ---- helpers for workflow/rules/scores.smk (param lookups only) ---------------------------
def n_images(dataset: str, data_config: dict) -> int:
    """Images the data stage makes for ``dataset`` (an upper bound is enough: extra shards are empty)."""
    section = data_config.get(dataset, {})
    if dataset == "photos":
        return len(section.get("names", []))
    return len(section.get("indices") or []) or int(section.get("count", 0))


def n_shards(dataset: str, config: dict) -> int:
    return max(1, math.ceil(n_images(dataset, config["data"]) / config["scores"]["shard_size"]))


def command_options(scores_config: dict) -> str:
    """Command-line options restating config section ``scores`` (shell-quoted)."""
    import shlex

    c = scores_config
    opts = [f"--{k.replace('_', '-')} {c[k]!r}" for k in _PARAM_KEYS]
    opts.append(f"--ksp-options {shlex.quote(c['ksp_options'])}")
    opts.append("--warm-start" if c["warm_start"] else "--no-warm-start")
    opts.append("--extrapolate" if c["extrapolate"] else "--no-extrapolate")
    for key, value in c.get("projection", {}).items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            opts.append(flag if value else f"--no-{key.replace('_', '-')}")
        else:
            opts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(opts)


def rule_prepared(wildcards) -> str | list:
    """Input function: the projection solver's prepared state, nothing for the others."""
    if wildcards.solver == "projection":
        return f"results/scores/{wildcards.dataset}/{wildcards.res}/projection/prepared.npz"
    return []


def rule_prepare_log(wildcards) -> str | list:
    """Input function: the solve log of the projection's preparation, nothing for the others."""
    if wildcards.solver == "projection":
        return f"results/scores/{wildcards.dataset}/{wildcards.res}/projection/prepare_log.csv"
    return []


def rule_shard_files(config: dict, suffix: str):
    """Input function factory: every shard file (``suffix`` npz or csv) of a (dataset, res, solver)."""
    def files(wildcards) -> list[str]:
        stem = f"results/scores/{wildcards.dataset}/{wildcards.res}/{wildcards.solver}/shards"
        return [f"{stem}/{i}.{suffix}" for i in range(n_shards(wildcards.dataset, config))]

    return files
