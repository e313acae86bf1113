"""Side-by-side CPU time of whole-set score pre-computation (KDE + assembly + solves):
spsolve vs the ``ksp`` solver with the config's options and with other option strings,
in one process, on the config's photos and faces.

    OPENBLAS_NUM_THREADS=1 python benchmarks/batched_ksp.py --sizes 32 64 --out results/benchmarks/batched_ksp.csv

(Named for the batched mode it first measured: several images' systems at one (Picard
iteration, time level) as ONE block-diagonal PETSc system. It lost at 32x32 -- 8.6-9.6x
against 9.9-10.6x per image, since the shared Krylov space needs the iterations of the
worst block plus a tighter global tolerance (4.1-4.4 against 3.3 per solve) -- and was
not kept.)

Rows: set, size, images, solver label, CPU seconds, ms per linear solve (CPU / number of
per-channel solves), speed-up over spsolve (CPU), max |m - m_spsolve|, Picard iterations
equal to spsolve's, max final true residual, KSP iterations per solve.
CPU time (process_time), not wall time: the machine is shared.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fpscore.config import schema_defaults
from fpscore.fokker_planck.params import FPParams
from fpscore.scores import compute_scores
from fpscore.solvers import make_solver

SETS = {  # the config's photo list and face count
    "photos": {"names": ["astronaut", "chelsea", "coffee", "rocket", "camera", "clock", "coins", "page"],
               "channels": 1, "crop": 0},
    "faces": {"count": 16, "indices": [], "channels": 1, "crop": 0},
}
_PARAM_KEYS = ("sigma", "eps", "n_times", "dh", "kde_bins", "kde_floor", "picard_tol", "picard_max_iter", "rtol")


def load_set(name: str, size: int, count: int) -> np.ndarray:
    """Images of a set at ``size`` (the prepared file if present, else the data stage's prepare)."""
    path = Path(f"results/data/{name}/{size}/images.npz")
    if path.is_file():
        with np.load(path) as f:
            images = f["images"]
    else:
        from fpscore.data import prepare

        images = prepare(name, size, SETS[name])[0]
    return np.asarray(images[:count], dtype=np.float64)


def configs(ksp_options: str, extra: list[str]) -> list[tuple[str, str, dict]]:
    rows = [("spsolve", "spsolve", {}),
            (f"ksp warm extrapolated [{ksp_options}]", "ksp",
             dict(ksp_options=ksp_options, warm_start=True, extrapolate=True)),
            (f"ksp warm [{ksp_options}]", "ksp", dict(ksp_options=ksp_options, warm_start=True, extrapolate=False))]
    for opts in extra:
        rows.append((f"ksp warm extrapolated [{opts}]", "ksp", dict(ksp_options=opts, warm_start=True)))
    return rows


def run(images, params, name, kwargs):
    with make_solver(name, rtol=params.rtol, **kwargs) as solver:
        t0 = time.process_time()
        res = compute_scores(images, params, solver, progress=False)
        return res, time.process_time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--sets", nargs="+", default=["photos", "faces"])
    ap.add_argument("--count", type=int, nargs="+", default=[16, 4, 2],
                    help="images per set for each size (same order as --sizes)")
    ap.add_argument("--extra-options", nargs="*", default=["-ksp_type fgmres -pc_type sor"],
                    help="more KSP option strings")
    ap.add_argument("--repeat", type=int, default=1, help="runs per solver (best CPU time kept)")
    ap.add_argument("--out", default=None, help="CSV of the rows")
    args = ap.parse_args(argv)
    d = schema_defaults()["scores"]
    params = FPParams(**{k: d[k] for k in _PARAM_KEYS})
    rows = []
    for size, count in zip(args.sizes, args.count + [args.count[-1]] * len(args.sizes)):
        for set_name in args.sets:
            images = load_set(set_name, size, count)
            ref, ref_cpu = None, None
            for label, name, kwargs in configs(d["ksp_options"], args.extra_options):
                cpu = np.inf
                for _ in range(args.repeat):
                    res, c = run(images, params, name, kwargs)
                    cpu = min(cpu, c)
                if ref is None:
                    ref, ref_cpu = res, cpu
                log = pd.DataFrame(res.log)
                row = {
                    "set": set_name, "size": size, "images": len(images), "solver": label, "cpu_s": round(cpu, 3),
                    "ms_per_solve": round(1e3 * cpu / len(log), 4), "speedup": round(ref_cpu / cpu, 2),
                    "max_abs_dm": float(np.abs(res.m - ref.m).max()),
                    "same_picard": bool(np.array_equal(res.picard_iterations, ref.picard_iterations)),
                    "max_final_res": float(log["final_residual"].max()),
                    "its_per_solve": round(float(log["iterations"].mean()), 2),
                }
                rows.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    df = pd.DataFrame(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
    print(df.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
