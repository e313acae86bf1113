"""All score solvers side by side in one process: spsolve, PETSc KSP, PETSc guess reuse, projection,
each with Algorithm 1 (Picard) and with per-level Newton (METHOD.md 5b), and the batched engine.

For each image set (8 builtin photos as grey luminance; 16 LFW faces) and size, every solver
computes the scores of the whole set (every channel) and the script prints, per solver:
wall and CPU seconds (assembly and solve separately), seconds and linear solves per
channel, ms per linear solve, mean Krylov iterations, outer iterations, the largest final
true residual, max |m - m_spsolve-Picard|, and the speed-up over spsolve with Picard (the
paper's reference, ``speedup``) and over ksp with Picard at the schema's default settings
(today's default, ``speedup_ksp``): wall clock per channel, the initial density and the
projection's seed solves included (``speedup_cpu``: CPU seconds, steadier on a loaded
machine), the one-time start-up of each solver path (imports, numba's kernels; ``startup_s``)
paid before any timing and shown on its own (``warm_up``). Targets of the fastest CPU path:
>= 40x spsolve-Picard at 32x32, >= 90x at 128x128. The rows "batched cpu ..." run the batched
engine's fused CPU path where it applies (Newton), "batched cpu stepwise newton" its stepwise
engine (the torch driver with the compiled BiCGStab: the default path before the fused one).

    fpscore solver-benchmark --sets photos faces --sizes 32 64      # what the workflow's rule runs
    python benchmarks/solver_benchmark.py --sets photos faces --sizes 32 64  # the same, as a script
    python benchmarks/solver_benchmark.py --sizes 128 --spsolve-images 2     # spsolve on 2 images only
    python benchmarks/solver_benchmark.py --quick                             # photos, 32x32, a few solvers
    python benchmarks/solver_benchmark.py --only "newton|batched|ksp default"  # Newton and batched rows
    python benchmarks/solver_benchmark.py --sizes 32 --repeat 3               # best of 3 runs per solver
    python benchmarks/solver_benchmark.py --only batched --without-petsc      # a machine without PETSc (a GPU box)

With --spsolve-images k, spsolve (slow at 128x128) solves only the first k images;
speed-ups then compare seconds per image and |m - m_spsolve| is taken over those k.
Besides the main CSV it writes a rank sweep of the paper's projection (seed
subspace only, no warm start: time and iterations against the rank r; figure F9)
and the projection residual of each target image channel against its pixel L2
distance to its seed (figure F8).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # threaded BLAS spins against PETSc on few cores

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm import tqdm  # noqa: E402

from fpscore.config import schema_defaults  # noqa: E402
from fpscore.fileio import atomic_outputs  # noqa: E402
from fpscore.fokker_planck.params import FPParams  # noqa: E402
from fpscore.scores import compute_scores  # noqa: E402
from fpscore.solvers import make_solver  # noqa: E402
from fpscore.solvers.seeds import nearest_seed  # noqa: E402

# "moon" is left out: its fixed-point iteration does not converge (30 iterations, m grows to |m| ~ 300 at
# 32x32; at 64x64 even spsolve misses rtol), so its m is not comparable between solvers. "clock" replaces it.
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "camera", "clock", "coins", "page"]
SETS = {"photos": {"names": PHOTOS, "channels": 1}, "faces": {"count": 16, "indices": []}}
GMRES_ILU = "-ksp_type gmres -ksp_gmres_restart 30 -pc_type ilu"
RANKS = (1, 2, 4, 8, 16, 32)


def solver_configs(ksp_default: str, warm_default: bool = True) -> list[tuple[str, str, dict, str]]:
    """(label, solver name, make_solver keyword arguments, nonlinear driver) of every solver compared
    (the driver "newton predicted" is Newton with newton_stop="predicted"); projections use the
    configured KSP options (``ksp_default``) unless their label names others."""
    ksp = [
        ("gmres+ilu", GMRES_ILU), ("bcgs+ilu", "-ksp_type bcgs -pc_type ilu"),
        ("fgmres+sor", "-ksp_type fgmres -ksp_gmres_restart 30 -pc_type sor"),
        ("gmres+jacobi", "-ksp_type gmres -ksp_gmres_restart 30 -pc_type jacobi"),
        ("gmres+sor", "-ksp_type gmres -ksp_gmres_restart 30 -pc_type sor"),
    ]
    # the strongest direct baseline: PETSc's LU with nested-dissection ordering, whose symbolic
    # factorisation is reused across systems (same pattern), unlike spsolve's
    out = [("spsolve", "spsolve", {}, "picard"),
           (KSP_DEFAULT, "ksp", dict(ksp_options=ksp_default, warm_start=warm_default), "picard"),
           ("ksp preonly+lu (direct)", "ksp", dict(ksp_options="-ksp_type preonly -pc_type lu"), "picard")]
    for label, opts in ksp:  # warm = extrapolated warm start (the default), warm plain = previous iterate
        out += [(f"ksp {label} cold", "ksp", dict(ksp_options=opts, warm_start=False), "picard"),
                (f"ksp {label} warm", "ksp", dict(ksp_options=opts, warm_start=True), "picard"),
                (f"ksp {label} warm plain", "ksp", dict(ksp_options=opts, warm_start=True, extrapolate=False),
                 "picard")]
    out += [(f"ksp gmres+ilu guess {g}", "ksp", dict(ksp_options=f"{GMRES_ILU} -ksp_guess_type {g}"), "picard")
            for g in ("pod", "fischer")]

    def proj(label, warm=True, ksp_options=ksp_default, nonlinear="picard", **kw):
        settings = dict(n_seeds=1, seed_choice="medoid", rank=8, variant="guess", basis="solutions") | kw
        return (f"projection {label}", "projection",
                dict(ksp_options=ksp_options, warm_start=warm, projection=settings), nonlinear)

    out += [
        proj("guess r8 medoid cold (paper)", warm=False),
        proj("guess r8 first cold", warm=False, seed_choice="first"),
        proj("guess r16 krylov+sol cold", warm=False, rank=16, basis="both"),
        proj("pc r8 cold", warm=False, variant="pc"),
        proj("guess r8 warm"),
        proj("guess r2 warm", rank=2),
        proj("pc r8 warm", variant="pc"),
        proj("both r8 warm", variant="both"),
        proj("guess r8 warm history3", history=3),
        proj("guess r2 warm gmres+ilu", rank=2, ksp_options=GMRES_ILU),
        proj("guess r2 warm gmres+ilu lag", rank=2, lag=100, ksp_options=GMRES_ILU),
    ]
    # per-level Newton with every solver path (METHOD.md 5b)
    out += [
        ("spsolve newton", "spsolve", {}, "newton"),
        (f"{KSP_DEFAULT} newton", "ksp", dict(ksp_options=ksp_default, warm_start=warm_default), "newton"),
        ("ksp preonly+lu (direct) newton", "ksp", dict(ksp_options="-ksp_type preonly -pc_type lu"), "newton"),
        ("ksp gmres+ilu warm newton", "ksp", dict(ksp_options=GMRES_ILU, warm_start=True), "newton"),
        proj("guess r8 medoid cold (paper) newton", warm=False, nonlinear="newton"),
        proj("guess r2 warm newton", rank=2, nonlinear="newton"),
        (f"{KSP_DEFAULT} newton predicted", "ksp", dict(ksp_options=ksp_default, warm_start=warm_default),
         "newton predicted"),
        proj("guess r2 warm newton predicted", rank=2, nonlinear="newton predicted"),
    ]
    # the batched engine (METHOD.md 5c): one process thread, CPU; CUDA where torch sees a GPU
    devices = ["cpu"] + (["cuda"] if _cuda() else [])
    for dev in devices:
        for nonlinear in ("newton", "newton predicted", "picard"):
            out.append((f"batched {dev} {nonlinear}", "batched", dict(batched=dict(device=dev, threads=1)),
                        nonlinear))
    # the CPU with torch's whole-batch BiCGStab instead of the compiled kernel (scores.batched.kernel), and
    # the stepwise engine with the compiled kernel (the torch driver, Python per level)
    out.append(("batched cpu torch-kernel newton", "batched",
                dict(batched=dict(device="cpu", threads=1, kernel="torch")), "newton"))
    out.append(("batched cpu stepwise newton", "batched",
                dict(batched=dict(device="cpu", threads=1, engine="stepwise")), "newton"))
    return out


def _cuda() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return torch.cuda.is_available()


KSP_DEFAULT = "ksp default"
QUICK = ("spsolve", KSP_DEFAULT, "ksp fgmres+sor warm", "projection guess r8 medoid cold (paper)",
         "projection guess r8 warm", "spsolve newton", f"{KSP_DEFAULT} newton", f"{KSP_DEFAULT} newton predicted",
         "batched cpu newton")


def load_set(name: str, size: int) -> np.ndarray:
    from fpscore.data import prepare

    images, _, _ = prepare(name, size, SETS[name])
    return images.astype(np.float64)


def fp_params() -> tuple[FPParams, str, bool]:
    """Numerical parameters and the default KSP options and warm start, from the config schema
    (one source of truth)."""
    sc = schema_defaults()["scores"]
    keys = ("sigma", "eps", "n_times", "dh", "kde_bins", "kde_floor", "picard_tol", "picard_max_iter", "rtol",
            "newton_tol", "newton_max_iter", "newton_stop", "newton_monotone")
    return (FPParams(**{k: sc[k] for k in keys if k in sc}), sc.get("ksp_options", GMRES_ILU),
            bool(sc.get("warm_start", True)))


def run_one(images: np.ndarray, params: FPParams, name: str, kwargs: dict, nonlinear: str):
    """Scores of the set with one solver: (result, log DataFrame, wall s, cpu s, seeds, error).
    ``nonlinear``: "picard", "newton" or "newton predicted" (the newton_stop test after the space)."""
    nonlinear, _, stop = nonlinear.partition(" ")
    params = replace(params, nonlinear=nonlinear, newton_stop=stop or params.newton_stop)
    solver = make_solver(name, rtol=params.rtol, **kwargs)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        with solver, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = compute_scores(images, params, solver, progress=False)
    except Exception as err:  # noqa: BLE001 - reported in the table, the benchmark goes on
        return None, None, np.nan, np.nan, None, f"{type(err).__name__}: {err}"[:300]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    seeds = getattr(solver, "_seeds", None)
    note = "; ".join(sorted({str(w.message)[:120] for w in caught}))
    return result, result.log.frame(), wall, cpu, seeds, note


def summarise(label, name, result, log, wall, cpu, seeds, ref_m, n_ref, note, nonlinear: str) -> dict:
    row = {"solver": label, "method": name, "nonlinear": nonlinear}
    if result is None:
        return row | {"error": note}
    n_systems = int(result.solves.sum())  # distinct linear systems of the target pass
    target = log.iloc[len(log) - n_systems:]
    non_seed = target[~target["image"].isin([] if seeds is None else list(seeds))]
    n_img = result.m.shape[0]
    n_chan = n_img * result.m.shape[1]
    row |= {
        "images": n_img, "channels": n_chan, "total_s": wall, "cpu_s": cpu,
        "assemble_s": log["assemble_seconds"].sum(), "solve_s": log["solve_seconds"].sum(),
        "solves": len(log), "solves_per_channel": n_systems / n_chan,
        "ms_per_solve": 1e3 * log["solve_seconds"].sum() / len(log),
        # Krylov iterations per distinct system: a projection's seed systems count once (their
        # solve in prepare), the cached second visit adds nothing
        "iterations": log["iterations"].sum() / n_systems,
        "outer_mean": result.picard_iterations.mean(), "outer_max": int(result.picard_iterations.max()),
        "max_final_residual": log["final_residual"].max(),
        "max_abs_dm": float(np.abs(result.m[:n_ref] - ref_m).max()) if ref_m is not None else np.nan,
        "projection_residual_median": non_seed["projection_residual"].median(),
        "s_per_image": wall / n_img, "ms_per_channel": 1e3 * wall / n_chan, "note": note,
    }
    return row


def dissimilarity_rows(images, log, seeds, label) -> pd.DataFrame:
    """F8 points: per target image channel, the projection residual against its distance to its seed."""
    from fpscore.tables import projection_vs_dissimilarity

    _, distance, relative = nearest_seed(images, seeds)
    targets = log[~log["image"].isin(list(seeds))]
    out = projection_vs_dissimilarity(targets, distance)
    out["relative_dissimilarity"] = relative[out["image"].to_numpy(int), out["channel"].to_numpy(int)]
    out.insert(0, "solver", label)
    return out


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Whole file or nothing (fpscore.fileio.atomic_outputs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(path) as (tmp,):
        df.to_csv(tmp, index=False)


def path_key(name: str, kwargs: dict, nonlinear: str) -> tuple:
    """The solver path of a row: what its one-time costs depend on."""
    return name, repr(sorted(kwargs.get("batched", {}).items())), nonlinear.split()[0]


def warm_up(params: FPParams, configs) -> dict[tuple, float]:
    """Pay the one-time costs of this process before any timing: every solver path solves one
    8 x 8 image once (imports of PETSc, torch and numba, the compiled kernels' load from numba's
    cache), which a shard job pays once for all its images, not per channel. Returns the wall
    seconds of each path's first run (``path_key``: its start-up, the tiny solve included)."""
    tiny = np.random.default_rng(0).uniform(0.2, 0.8, (1, 1, 8, 8))
    startup = {}
    for _, name, kwargs, nonlinear in configs:
        key = path_key(name, kwargs, nonlinear)
        if key not in startup:
            t0 = time.perf_counter()
            run_one(tiny, replace(params, n_times=3), name, kwargs, nonlinear)
            startup[key] = time.perf_counter() - t0
    return startup


def parse_args(argv=None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS), help="image sets")
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 128], help="image sizes")
    p.add_argument("--only", default=None, help="regular expression: run only solvers whose label matches "
                                                "(spsolve and ksp default always run: they are the references)")
    p.add_argument("--quick", action="store_true", help="photos at 32x32, five solvers, no rank sweep")
    p.add_argument("--without-petsc", action="store_true",
                   help="leave out every PETSc row (ksp, projection, the rank sweep), the ksp reference "
                        "included, for a machine without petsc4py such as a lent GPU machine (speedup_ksp "
                        "is then empty)")
    p.add_argument("--spsolve-images", type=int, default=None, help="spsolve on the first k images only")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per solver; the fastest (wall clock) is kept, for a noisy shared machine")
    p.add_argument("--ranks", nargs="*", type=int, default=list(RANKS), help="rank sweep (empty: none)")
    p.add_argument("--markdown", nargs="+", type=Path, default=None, metavar="CSV",
                   help="print the README table of these benchmark CSVs and exit (no solving)")
    p.add_argument("--out", type=Path, default=Path("results/tables/solver_benchmark.csv"))
    p.add_argument("--rank-sweep-out", type=Path, default=Path("results/benchmarks/rank_sweep.csv"))
    p.add_argument("--dissimilarity-out", type=Path, default=Path("results/benchmarks/projection_dissimilarity.csv"))
    args = p.parse_args(argv)
    if args.quick:
        args.sets, args.sizes, args.ranks = ["photos"], [32], []
    if args.without_petsc:
        args.ranks = []
    if any(s < 4 for s in args.sizes):
        p.error(f"--sizes: expected sizes >= 4, got {args.sizes}")
    if args.repeat < 1:
        p.error(f"--repeat: expected a positive count, got {args.repeat}")
    if args.spsolve_images is not None and args.spsolve_images < 1:
        p.error(f"--spsolve-images: expected a positive count, got {args.spsolve_images}")
    return args


def main(argv=None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    if args.markdown:
        print(markdown_table(pd.concat([pd.read_csv(p) for p in args.markdown], ignore_index=True)))
        return 0
    params, ksp_default, warm_default = fp_params()
    configs = solver_configs(ksp_default, warm_default)
    if args.quick:
        configs = [c for c in configs if c[0] in QUICK]
    if args.only:
        configs = [c for c in configs if c[0] in REFERENCES or re.search(args.only, c[0])]
    if args.without_petsc:
        configs = [c for c in configs if c[1] not in PETSC_SOLVERS]
    startup = warm_up(params, configs)
    rows, sweep, dissim = [], [], []
    for set_name in args.sets:
        for size in args.sizes:
            images = load_set(set_name, size)
            n_ref = images.shape[0] if args.spsolve_images is None else min(args.spsolve_images, images.shape[0])
            ref_m, block = None, []
            rate, rate_cpu = {}, {}  # per-channel seconds of the references
            for label, name, kwargs, nonlinear in tqdm(configs, desc=f"{set_name} {size}x{size}", unit="solver"):
                imgs = images[:n_ref] if label == "spsolve" else images
                result, log, wall, cpu, seeds, note = min(
                    (run_one(imgs, params, name, kwargs, nonlinear) for _ in range(args.repeat)),
                    key=lambda run: run[2] if run[0] is not None else np.inf)
                if label == "spsolve" and result is not None:
                    ref_m = result.m
                row = summarise(label, name, result, log, wall, cpu, seeds, ref_m, n_ref, note, nonlinear)
                if label in REFERENCES and result is not None:
                    rate[label], rate_cpu[label] = wall / row["channels"], cpu / row["channels"]
                per_channel = row.get("channels", np.nan)
                row = {"set": set_name, "resolution": size, **row,
                       "startup_s": startup.get(path_key(name, kwargs, nonlinear), np.nan),
                       "speedup": rate.get("spsolve", np.nan) / (row.get("total_s", np.nan) / per_channel),
                       "speedup_ksp": rate.get(KSP_DEFAULT, np.nan) / (row.get("total_s", np.nan) / per_channel),
                       "speedup_cpu": rate_cpu.get("spsolve", np.nan) / (row.get("cpu_s", np.nan) / per_channel)}
                block.append(row)
                if name == "projection" and result is not None and len(seeds) < images.shape[0]:
                    d = dissimilarity_rows(images, log, seeds, label)
                    dissim.append(d.assign(set=set_name, resolution=size))
            rows += block
            print(f"\n== {set_name}, {images.shape[0]} images x {images.shape[1]} channel(s), {size}x{size} "
                  f"(spsolve on {n_ref} image(s)) ==")
            print(_table(pd.DataFrame(block)))
            for rank in args.ranks:
                kwargs = dict(ksp_options=ksp_default, warm_start=False,
                              projection=dict(rank=rank, variant="guess", basis="both"))
                result, log, wall, cpu, seeds, note = run_one(images, params, "projection", kwargs, "picard")
                r = summarise(f"projection guess r{rank} cold", "projection", result, log, wall, cpu, seeds,
                              ref_m, n_ref, note, "picard")
                sweep.append({"set": set_name, "resolution": size, "rank": rank, "seconds": r.get("total_s"),
                              "cpu_seconds": r.get("cpu_s"), "iterations": r.get("iterations"),
                              "projection_residual_median": r.get("projection_residual_median"),
                              "max_abs_dm": r.get("max_abs_dm"), "error": r.get("error", "")})
            if args.ranks:
                print(pd.DataFrame([s for s in sweep if s["set"] == set_name and s["resolution"] == size])
                      .to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    write_csv(pd.DataFrame(rows), args.out)
    print(f"\nwrote {args.out}", end="")
    if sweep:
        write_csv(pd.DataFrame(sweep), args.rank_sweep_out)
        print(f", {args.rank_sweep_out}", end="")
    if dissim:
        write_csv(pd.concat(dissim, ignore_index=True), args.dissimilarity_out)
        print(f", {args.dissimilarity_out}", end="")
    print()
    return 0


PETSC_SOLVERS = ("ksp", "projection")
REFERENCES = ("spsolve", KSP_DEFAULT)  # run first, in this order: the ratios divide by their seconds

README_ROWS = ("spsolve", "ksp preonly+lu (direct)", "ksp gmres+ilu cold", "ksp gmres+ilu warm", "ksp gmres+ilu guess pod",
               "ksp fgmres+sor warm plain", "ksp fgmres+sor warm", "projection guess r8 medoid cold (paper)",
               "projection pc r8 warm", "projection guess r2 warm", KSP_DEFAULT, "spsolve newton",
               f"{KSP_DEFAULT} newton", f"{KSP_DEFAULT} newton predicted", "projection guess r2 warm newton",
               "projection guess r2 warm newton predicted", "batched cpu newton", "batched cpu newton predicted",
               "batched cpu torch-kernel newton", "batched cpu stepwise newton", "batched cpu picard",
               "batched cuda newton",
               "batched cuda newton predicted")


def markdown_table(df: pd.DataFrame) -> str:
    """The README's table: per solver and (set, size), the speed-up over spsolve (wall clock) and the mean
    Krylov iterations per system; the spsolve row gives its seconds and ms per solve."""
    df = df[df["solver"].isin(README_ROWS)]
    sets = list(dict.fromkeys(df["set"]))
    cols = sorted(dict.fromkeys(zip(df["set"], df["resolution"])), key=lambda c: (sets.index(c[0]), c[1]))
    lines = ["| solver | " + " | ".join(f"{s} {r}" for s, r in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label in README_ROWS:
        cells = []
        for s, r in cols:
            row = df[(df["solver"] == label) & (df["set"] == s) & (df["resolution"] == r)]
            if row.empty:
                cells.append("-")
            elif label == "spsolve":
                cells.append(f"{row['total_s'].iloc[0]:.1f} s ({row['ms_per_solve'].iloc[0]:.2f} ms/solve)")
            else:
                cells.append(f"{row['speedup'].iloc[0]:.1f}x ({row['iterations'].iloc[0]:.1f} it)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\nmax final residual over all rows: {df['max_final_residual'].max():.2e}; "
                               f"max |m - m_spsolve|: {df['max_abs_dm'].max():.1e}")


def _table(df: pd.DataFrame) -> str:
    cols = ["solver", "total_s", "cpu_s", "assemble_s", "solve_s", "startup_s", "ms_per_channel", "solves_per_channel",
            "ms_per_solve", "iterations", "outer_mean", "max_final_residual", "max_abs_dm",
            "projection_residual_median", "speedup", "speedup_ksp", "speedup_cpu", "error"]
    show = df[[c for c in cols if c in df.columns]]
    fmt = {c: (lambda v: f"{v:.2e}") for c in ("max_final_residual", "max_abs_dm", "projection_residual_median")}
    return show.to_string(index=False, formatters=fmt, float_format=lambda v: f"{v:.3g}", na_rep="-")


if __name__ == "__main__":
    sys.exit(main())
