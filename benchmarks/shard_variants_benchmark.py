"""One CIFAR-sized shard, solved by several engine variants side by side in one process.

The stand-in set of ``cifar_scale_benchmark`` (random crops and flips of the builtin photos
and faces, 3 x 32 x 32), Newton with the schema's settings, one thread. A variant is
``solver[:kernel][:nomono]``: the solver (ksp, spsolve, batched), for batched the BiCGStab
kernel (torch or numba, ``scores.batched.kernel``), and ``nomono`` to switch
``scores.newton_monotone`` off. Runs alternate between the variants (``--repeats`` rounds),
each result is saved as soon as it is measured (``--json``, resumed when it exists), and
every variant is compared with the first: the same not-converged flags, max |m - m_first|
over the channels both converged, and whether those are bit-identical. Printed: median
and range of the wall time per channel, the ratio to the first variant's median, solves
per channel and the flags.

    python benchmarks/shard_variants_benchmark.py --images 500 --variants batched:torch batched:numba
    python benchmarks/shard_variants_benchmark.py --images 2000 --seed 1 --variants batched:nomono batched
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar_scale_benchmark import stand_in_set  # noqa: E402

SOLVERS = ("ksp", "spsolve", "batched")
KERNELS = ("torch", "numba")


def parse_variant(spec: str) -> dict:
    """'batched:numba:nomono' -> {'solver': 'batched', 'kernel': 'numba', 'monotone': False}."""
    solver, *rest = spec.split(":")
    if solver not in SOLVERS:
        raise ValueError(f"variant {spec!r}: solver must be one of {', '.join(SOLVERS)}")
    out = {"solver": solver, "kernel": None, "monotone": True}
    for part in rest:
        if part == "nomono":
            out["monotone"] = False
        elif part in KERNELS and solver == "batched":
            out["kernel"] = part
        else:
            raise ValueError(f"variant {spec!r}: unknown part {part!r} (a kernel {KERNELS} for batched, or nomono)")
    return out


def run_variant(images: np.ndarray, variant: dict):
    """(seconds, ScoreSet) of the set with one variant."""
    import torch

    from fpscore.fokker_planck.params import FPParams
    from fpscore.scores import compute_scores
    from fpscore.solvers import make_solver

    torch.set_num_threads(1)
    kw = {}
    if variant["solver"] == "batched":
        kw = {"batched": {"device": "cpu", "threads": 1, "kernel": variant["kernel"] or "auto"}}
    solver = make_solver(variant["solver"], **kw)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # flagged channels are counted below
        warnings.simplefilter("ignore", RuntimeWarning)
        res = compute_scores(images, FPParams(nonlinear="newton", newton_monotone=variant["monotone"]), solver,
                             progress=False)
    return time.perf_counter() - t0, res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=500, help="images of the shard (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stand-in set (default %(default)s)")
    p.add_argument("--variants", nargs="+", required=True, help="solver[:kernel][:nomono], the first is the reference")
    p.add_argument("--repeats", type=int, default=2, help="alternated rounds (default %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="results file, resumed when it exists")
    args = p.parse_args(argv)
    variants = {spec: parse_variant(spec) for spec in args.variants}
    setup = {"images": args.images, "seed": args.seed, "variants": args.variants}
    saved = json.loads(args.json.read_text()) if args.json and args.json.exists() else {"setup": setup, "runs": []}
    if saved["setup"] != setup:
        raise SystemExit(f"{args.json}: holds runs of {saved['setup']}, not {setup}; remove it or pick another file")
    images = stand_in_set(args.images, seed=args.seed)
    channels = 3 * args.images
    ref = None
    for rnd in range(args.repeats):
        for spec, variant in variants.items():
            if any(r["variant"] == spec and r["round"] == rnd for r in saved["runs"]) and ref is not None:
                continue  # measured already (the reference always runs: it is compared against)
            seconds, res = run_variant(images, variant)
            ok = res.converged.reshape(-1)
            m = res.m.reshape(channels, -1)
            if ref is None:
                ref = (m, ok)
            both = ok & ref[1]
            row = {"variant": spec, "round": rnd, "seconds": seconds, "ms_per_channel": 1000 * seconds / channels,
                   "solves_per_channel": float(res.solves.mean()), "not_converged": int((~ok).sum()),
                   "same_flags_as_first": bool(np.array_equal(ok, ref[1])),
                   "max_abs_dm_converged": float(np.abs(m[both] - ref[0][both]).max()) if both.any() else 0.0,
                   "bit_identical_converged": bool(np.array_equal(m[both], ref[0][both])),
                   "max_final_residual": max(r["final_residual"] for r in res.log)}
            if not any(r["variant"] == spec and r["round"] == rnd for r in saved["runs"]):
                saved["runs"].append(row)
                if args.json:
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(saved, indent=1))
            print(f"{spec:>22} round {rnd}: {row['ms_per_channel']:.2f} ms/channel, {row['solves_per_channel']:.2f} "
                  f"solves, {row['not_converged']} not converged", flush=True)
    print(f"\n{args.images} images ({channels} channels), seed {args.seed}, {args.repeats} rounds")
    print("| variant | ms/channel, median [range] | speed-up vs first | solves/channel | not converged | same flags | "
          "max abs dm (converged) | bit-identical |")
    print("|---|---|---|---|---|---|---|---|")
    first = None
    for spec in args.variants:
        rows = [r for r in saved["runs"] if r["variant"] == spec]
        ms = [r["ms_per_channel"] for r in rows]
        med = float(np.median(ms))
        first = first or med
        last = rows[-1]
        print(f"| {spec} | {med:.2f} [{min(ms):.2f}, {max(ms):.2f}] n={len(ms)} | {first / med:.2f}x | "
              f"{last['solves_per_channel']:.2f} | {last['not_converged']} | {last['same_flags_as_first']} | "
              f"{last['max_abs_dm_converged']:.1e} | {last['bit_identical_converged']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
