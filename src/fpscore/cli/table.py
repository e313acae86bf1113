"""`fpscore table t1|t2|t3|t4`: one of the paper's tables from the logs the workflow wrote.

Reads the files the command line names (``fpscore.logs``), builds the table
(``fpscore.tables``) and writes <stem>.csv, .md and .tex whole or not at all
(``fpscore.rendering``). Training summaries and metric rows name their own
experiment, method, dataset and image size; solve logs, which do not, come with their
labels (--datasets, --resolutions, --solvers: one each, in the same order).
"""
from __future__ import annotations

import argparse

from fpscore.cli.args import aligned
from fpscore.names import SOLVERS
from fpscore.options import Group, add_group, group_values

RANK = Group("scores.projection", keys=("rank",))  # t3: the subspace rank the projection solver used
TABLES = ("t1", "t2", "t3", "t4")


def solve_logs(args, per_solve: bool = True):
    """The solve logs of --solve-logs, labelled by --datasets, --resolutions and --solvers; ``per_solve``:
    one row per linear solve required (T3, F7), else either kind (T2; ``logs.read_solve_logs``)."""
    from fpscore.logs import read_solve_logs

    return read_solve_logs(aligned("solve logs", solve_logs=args.solve_logs, datasets=args.datasets,
                                   resolutions=args.resolutions, solvers=args.solvers), per_solve=per_solve)


def _summaries(paths, what: str) -> list[tuple[str, dict]]:
    from fpscore.logs import read_summary

    if not paths:
        raise ValueError(f"{what}: no training summaries given (--summaries)")
    return [(f"training summary {path}", read_summary(path)) for path in paths]


def _t1(args):
    import pandas as pd

    from fpscore import tables

    runs = [tables.denoise_run(summary, where) for where, summary in _summaries(args.summaries, "t1")]
    return tables.t1_time_to_ssim(pd.DataFrame(runs))


def _t4(args):
    import pandas as pd

    from fpscore import tables
    from fpscore.logs import concat_csv

    runs = pd.DataFrame([tables.budget_run(summary, where) for where, summary in _summaries(args.summaries, "t4")])
    metrics = tables.budget_metrics(concat_csv(args.ssim, "SSIM metrics"), concat_csv(args.fid, "FID metrics"), runs)
    return tables.t4_budget(metrics)


def build_table(args):
    from fpscore import tables
    from fpscore.logs import concat_csv

    if args.name == "t1":
        return _t1(args)
    if args.name == "t2":
        errors = concat_csv(args.score_errors, "score-error") if args.score_errors else None
        return tables.t2_solvers(solve_logs(args, per_solve=False), errors)
    if args.name == "t3":
        return tables.t3_systems(solve_logs(args), {"projection": group_values(args, RANK)["rank"]})
    if args.name == "t4":
        return _t4(args)
    raise ValueError(f"unknown table {args.name!r}")


def run_table(args) -> int:
    from fpscore.rendering import write_table
    from fpscore.tables import caption

    table = build_table(args)
    paths = write_table(table, args.out, caption(args.name, table))
    print(f"wrote {', '.join(map(str, paths))}")
    print(table.to_string(index=False))
    return 0


def add_solve_log_labels(p: argparse.ArgumentParser, what: str) -> None:
    """The labels of --solve-logs (one each, in the same order)."""
    p.add_argument("--datasets", nargs="+", help=f"{what}: the dataset of each solve log")
    p.add_argument("--resolutions", nargs="+", type=int, help=f"{what}: the image size of each")
    p.add_argument("--solvers", nargs="+", choices=SOLVERS, help=f"{what}: the solver of each solve log")


def register(subparsers) -> None:
    p = subparsers.add_parser("table", help="build one of the paper's tables (CSV, Markdown, LaTeX)")
    p.add_argument("name", choices=TABLES, help="t1 time to SSIM, t2 solvers, t3 systems, t4 fixed budget")
    p.add_argument("--out", required=True, help="output stem: writes <stem>.csv, .md, .tex")
    p.add_argument("--summaries", nargs="+", help="t1: training summaries (train_log.json) of the denoising runs; "
                   "t4: of the budget runs (each records its experiment, method, dataset, image size and budget)")
    p.add_argument("--solve-logs", nargs="+", help="t2, t3: solve logs (labelled by --datasets, --resolutions, "
                                                   "--solvers)")
    add_solve_log_labels(p, "t2, t3")
    p.add_argument("--score-errors", nargs="+", help="t2: score-error CSVs (fpscore score-error)")
    add_group(p, RANK, title="t3")
    p.add_argument("--ssim", nargs="+", help="t4: ssim.csv of every (experiment, method)")
    p.add_argument("--fid", nargs="+", help="t4: fid.csv of every (experiment, method)")
    p.set_defaults(func=run_table)
