"""Why some channels are flagged as not converged: the time step or the space-discrete equation?

Computes the scores of the CIFAR-10-sized stand-in set (``cifar_scale_benchmark.stand_in_set``,
rounded to 8 bits as the archive stores it) with the schema's settings, takes the channels
flagged as not converged, and solves each again with more time levels (N = 20, 40, ..., the
same time interval and solver). If the failures were a time-stepping artefact, smaller steps
would remove them; if the space-discrete equation itself blows up in finite time, every N
fails and the time of the first failing level converges to the blow-up time as dt -> 0. Per
channel and N it records whether it converged, the time of the first failing level, and the
largest |m| and |s| at the last level before it (the last level, where none failed), beside
their values at t_0.

    python benchmarks/breakdown_benchmark.py --images 2000 --out benchmarks/results/scale/breakdown_dt.csv
    python benchmarks/breakdown_benchmark.py --summary --out benchmarks/results/scale/breakdown_dt.csv
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cifar_scale_benchmark import stand_in_set  # noqa: E402
from fpscore.fileio import atomic_outputs  # noqa: E402
from fpscore.fokker_planck.params import FPParams  # noqa: E402
from fpscore.scores import compute_scores  # noqa: E402
from fpscore.solvers import make_solver  # noqa: E402


def quiet_scores(images: np.ndarray, params: FPParams, solver):
    """compute_scores without the per-channel warnings (the flags are what is counted here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return compute_scores(images, params, solver, progress=False)


def first_failing_level(log: list[dict]) -> int | None:
    """The lowest time level with a non-converged solve-log row (None: every level converged)."""
    return min((row["time_level"] for row in log if not row["converged"]), default=None)


def probe(channel: np.ndarray, params: FPParams, solver, n_times: int) -> dict:
    """One channel (1, 1, H, W) solved with ``n_times`` levels: convergence, failure time, growth."""
    p = replace(params, n_times=n_times)
    res = quiet_scores(channel, p, solver)
    fail = first_failing_level(res.log)
    last = (fail - 1) if fail is not None else n_times - 1  # the last level that converged
    m, s, t = res.m[0, 0], res.scores[0, 0], p.times()
    return {"n_times": n_times, "dt": float(t[1] - t[0]), "converged": bool(res.converged.all()),
            "fail_level": fail, "fail_t": float(t[fail]) if fail is not None else np.nan,
            "last_t": float(t[last]), "max_abs_m0": float(np.abs(m[0]).max()),
            "max_abs_m_last": float(np.abs(m[last]).max()), "max_abs_s0": float(np.abs(s[0]).max()),
            "max_abs_s_last": float(np.abs(s[last]).max()), "solves": int(res.solves.sum())}


def summary(df: pd.DataFrame) -> str:
    """Per N: channels converged; over the channels that fail at every N, the median time of the
    first failing level and the median largest |m| at the last level before it (|m| at t_0 beside)."""
    key = ["image", "channel"]
    always = df.groupby(key)["converged"].transform("any").eq(False)
    per_n = df.groupby("n_times").agg(channels=("converged", "size"), converged=("converged", "sum"))
    failing = df[always].groupby("n_times").agg(fail_t_median=("fail_t", "median"),
                                                max_abs_m_last_median=("max_abs_m_last", "median"))
    n_always = int(always.sum() // df["n_times"].nunique())
    return (f"{n_always} of {len(df.groupby(key))} channels fail at every N "
            f"(median |m| at t_0 {df[always]['max_abs_m0'].median():.3g}); per N, and over those:\n"
            + per_n.join(failing).to_string(float_format=lambda v: f"{v:.4g}"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=500, help="stand-in images (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="stand-in set's seed (default %(default)s)")
    p.add_argument("--levels", type=int, nargs="+", default=[20, 40, 80, 160, 320],
                   help="time levels N to try on every flagged channel (default %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="CSV: one row per flagged channel and N")
    p.add_argument("--summary", action="store_true", help="print the summary of an existing --out CSV and exit")
    args = p.parse_args(argv)
    if args.summary:
        print(summary(pd.read_csv(args.out)))
        return 0
    if args.images < 1 or min(args.levels) < 2:
        p.error("--images takes a positive count and --levels counts >= 2")
    images = np.round(stand_in_set(args.images, args.seed).astype(np.float64) * 255) / 255
    params = FPParams()
    solver = make_solver("batched", batched=dict(device="cpu", threads=1))
    res = quiet_scores(images, params, solver)
    flagged = np.argwhere(~res.converged)
    print(f"{len(flagged)} of {res.converged.size} channels flagged with N = {params.n_times} "
          f"({len(np.unique(flagged[:, 0]))} of {len(images)} images)", flush=True)
    rows = []
    for k, (i, c) in enumerate(flagged):
        channel = images[i:i + 1, c:c + 1]
        for n in args.levels:
            rows.append({"image": int(i), "channel": int(c), "std": float(channel.std()),
                         **probe(channel, params, solver, n)})
        print(f"  {k + 1}/{len(flagged)} image {i} channel {c}: converged at N = "
              f"{[r['n_times'] for r in rows[-len(args.levels):] if r['converged']] or 'none'}", flush=True)
    df = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(args.out) as (tmp,):
        df.to_csv(tmp, index=False)
    if len(df):
        print(summary(df))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
