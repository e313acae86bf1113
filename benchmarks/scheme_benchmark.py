"""Which boundary condition and discretisation of (D m)^2 give every channel a valid score?

For every scheme x boundary (METHOD.md §2b) the scores of two sets are computed with the batched
engine (one thread, per-level Newton, the schema's other settings):

* ``study``: a natural-image set this project builds itself and never tuned on: random 32 x 32
  crops of the builtin photos the stand-in set does not use (grass, gravel, hubble_deep_field,
  immunohistochemistry, microaneurysms, moon, page, retina, rocket, text) at 128 x 128, flipped at
  random, a share of them with compressed contrast (range 0.05-0.3 of the original, as fog, sky
  or paper give), rounded to 8 bits; seeded;
* ``standin``: the CIFAR-10-sized stand-in set (``cifar_scale_benchmark.stand_in_set``, 8 bits).

Per channel it records: converged, within the maximum-principle bound (and by how much it left
it), nu active (share of pixel-levels), Newton iterations and linear solves, seconds (the log's,
KDE excluded), the mean |s| on the border ring against the interior (8 pixels in), and the
relative difference of the scores from the paper's scheme (zero + centred) where both are valid,
over all pixels and 8 pixels inside. On a sample of channels: contrast invariance (x against
0.1 x + 0.45) and the error against a reference on a lattice refined 4x (reflect + minimal at
h / 4 from m0 interpolated bilinearly, the same time levels; score at the last level, averaged
back onto the coarse pixels). Per scheme, the error against the exact one-dimensional solution
(Cole-Hopf, reflect only: the 1-D reduction needs zero flux on the sides).

The per-channel seconds of the parts come from runs made at different times on a shared machine;
``--timing REPS`` measures the default's cost fairly: reflect + centred and reflect + minimal on the
same study images, alternated REPS times in one process (CPU and wall seconds of ``compute_scores``,
KDE included: one thread, so CPU seconds are the work, less sensitive than wall seconds to the
other jobs of a shared machine), saved to timing.csv with the load average.

Each (set, scheme, boundary) part is saved as it finishes (``--out``/parts/*.csv) and skipped on
a rerun, so an interrupted run resumes; ``--summary`` prints the table of the saved parts, or
writes it into (``--write``) or checks it against (``--check``) docs/results/scheme.md.

    python benchmarks/scheme_benchmark.py --images 300 --out benchmarks/results/scheme
    python benchmarks/scheme_benchmark.py --summary --write
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cifar_scale_benchmark import stand_in_set  # noqa: E402
from readme_block import add_output_options, emit  # noqa: E402
from fpscore.fileio import atomic_outputs  # noqa: E402
from fpscore.fokker_planck.params import FPParams  # noqa: E402
from fpscore.names import BOUNDARIES, SCHEMES  # noqa: E402
from fpscore.scores import compute_scores  # noqa: E402
from fpscore.solvers import make_solver  # noqa: E402

STUDY_PHOTOS = ("grass", "gravel", "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page",
                "retina", "rocket", "text")
PAPER = ("zero", "centred")
INSIDE = 8  # pixels from the edge that count as "away from the border"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "scheme"
TARGET = REPO / "docs" / "results" / "scheme.md"
BEGIN, END = "<!-- scheme-table:begin -->", "<!-- scheme-table:end -->"


def study_set(n: int, seed: int, low_share: float = 1 / 3) -> tuple[np.ndarray, np.ndarray]:
    """n x 3 x 32 x 32 crops (module docstring) and whether each had its contrast compressed."""
    from fpscore.data import prepare

    photos, _, _ = prepare("photos", 128, {"names": list(STUDY_PHOTOS), "channels": 3})
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, 32, 32))
    low = np.zeros(n, dtype=bool)
    for k in range(n):
        img = photos[rng.integers(len(photos))].astype(np.float64)
        a, b = rng.integers(0, img.shape[1] - 32 + 1, 2)
        crop = img[:, a:a + 32, b:b + 32]
        if rng.random() < 0.5:
            crop = crop[:, :, ::-1]
        if rng.random() < 0.5:
            crop = crop[:, ::-1, :]
        if rng.random() < low_share:
            low[k] = True
            centre = rng.uniform(0.2, 0.8)
            crop = centre + rng.uniform(0.05, 0.3) * (crop - crop.mean())
        out[k] = np.clip(crop, 0, 1)
    return np.round(out * 255) / 255, low


def ring_means(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean |s| over levels 1.. on the outermost pixel ring and INSIDE pixels in, per channel."""
    a = np.abs(s[:, :, 1:])
    border = np.ones(s.shape[-2:], dtype=bool)
    border[1:-1, 1:-1] = False
    return a[..., border].mean(axis=-1).mean(axis=-1), a[..., INSIDE:-INSIDE, INSIDE:-INSIDE].mean(axis=(-3, -2, -1))


def rel_diff(a: np.ndarray, b: np.ndarray, inside: bool = False) -> np.ndarray:
    """||a - b|| / ||b|| per channel over levels 1.. (and pixels INSIDE in, with ``inside``)."""
    if inside:
        a, b = a[..., INSIDE:-INSIDE, INSIDE:-INSIDE], b[..., INSIDE:-INSIDE, INSIDE:-INSIDE]
    a, b = a[:, :, 1:], b[:, :, 1:]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.sqrt(((a - b) ** 2).sum(axis=(-3, -2, -1)) / (b ** 2).sum(axis=(-3, -2, -1)))


def solve(images: np.ndarray, scheme: str, boundary: str):
    params = FPParams(scheme=scheme, boundary=boundary)
    solver = make_solver("batched", batched=dict(device="cpu", threads=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t0 = time.perf_counter()
        res = compute_scores(images, params, solver, progress=False)
        return res, time.perf_counter() - t0


def per_channel_seconds(log: list[dict], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape)
    for row in log:
        out[row["image"], row["channel"]] += row["assemble_seconds"] + row["solve_seconds"]
    return out


def run_part(images: np.ndarray, low: np.ndarray, scheme: str, boundary: str, paper):
    """One (set, scheme, boundary): a row per channel; also returns (scores, valid) for the paper's part.
    ``paper``: the paper's (scores, valid), compared where both are valid."""
    res, wall = solve(images, scheme, boundary)
    N, C = res.converged.shape
    border, interior = ring_means(res.scores)
    iters = np.zeros((N, C), dtype=int)
    for row in res.log:
        iters[row["image"], row["channel"]] = max(iters[row["image"], row["channel"]], row["picard_iter"])
    rows = pd.DataFrame({
        "image": np.repeat(np.arange(N), C), "channel": np.tile(np.arange(C), N),
        "low_contrast": np.repeat(low, C), "range": np.ptp(images, axis=(-2, -1)).ravel(),
        "converged": res.converged.ravel(), "within_bound": res.within_bound.ravel(), "valid": res.valid.ravel(),
        "nu_active": res.nu_active.ravel(), "newton_iterations": iters.ravel(), "solves": res.solves.ravel(),
        "seconds": per_channel_seconds(res.log, (N, C)).ravel(),
        "border_abs_s": border.ravel(), "interior_abs_s": interior.ravel(),
    })
    rows["set_seconds"] = wall
    if paper is not None:
        paper_s, paper_valid = paper
        both = (paper_valid & res.valid).ravel()
        s = res.scores.astype(np.float64)
        rows["diff_paper"] = np.where(both, rel_diff(s, paper_s).ravel(), np.nan)
        rows["diff_paper_inside"] = np.where(both, rel_diff(s, paper_s, inside=True).ravel(), np.nan)
    return rows, (res.scores.astype(np.float64), res.valid)


def contrast_rows(images: np.ndarray, scheme: str, boundary: str) -> pd.DataFrame:
    """Scores of x and of 0.1 x + 0.45 (not rounded: the KDE's binning is the only difference left
    under reflect) on a sample: relative difference per channel."""
    low = 0.1 * images + 0.45
    a, _ = solve(images, scheme, boundary)
    b, _ = solve(low, scheme, boundary)
    both = a.valid & b.valid
    d = rel_diff(b.scores.astype(np.float64), a.scores.astype(np.float64))
    return pd.DataFrame({"contrast_diff": np.where(both, d, np.nan).ravel()})


def refined_rows(images: np.ndarray, scheme: str, boundary: str, factor: int = 4) -> pd.DataFrame:
    """Last-level score error against reflect + minimal on a lattice refined ``factor`` times
    (m0 interpolated bilinearly; the reference's scores averaged back onto the coarse pixels)."""
    from scipy.ndimage import zoom

    from fpscore.fokker_planck.kde import initial_log_density
    from fpscore.fokker_planck.newton import solve_channel_newton
    from fpscore.solvers.direct import SpsolveSolver

    params = FPParams(scheme=scheme, boundary=boundary)
    times, g = params.times(), params.g()
    out = []
    for img in images:
        for c in range(img.shape[0]):
            m0 = initial_log_density(img[c], bins=params.kde_bins, floor=params.kde_floor)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                coarse = solve_channel_newton(m0, times, g, params.dh, SpsolveSolver(), tol=params.newton_tol,
                                              max_iter=params.newton_max_iter, scheme=scheme, boundary=boundary)
                fine = solve_channel_newton(zoom(m0, factor, order=1, mode="nearest", grid_mode=True), times, g,
                                            params.dh / factor, SpsolveSolver(), tol=params.newton_tol,
                                            max_iter=params.newton_max_iter, scheme="minimal", boundary="reflect")
            H = m0.shape[0]
            ref = fine.s[-1].reshape(H, factor, H, factor).mean(axis=(1, 3))
            err = np.linalg.norm(coarse.s[-1] - ref) / np.linalg.norm(ref)
            out.append(err if coarse.converged and fine.converged else np.nan)
    return pd.DataFrame({"refined_error": out})


def exact_1d_error(scheme: str) -> float:
    """Max |m - m_exact| over levels on a 32 x 32 channel that varies along one axis only (reflect, the
    pipeline's sigma and time grid): the Cole-Hopf reference of tests/test_fp_scheme.py."""
    from fpscore.fokker_planck.newton import solve_channel_newton
    from fpscore.solvers.direct import SpsolveSolver

    params = FPParams(scheme=scheme, boundary="reflect")
    times, g, H = params.times(), params.g(), 32
    x = np.arange(H) + 0.5
    profile = lambda xx: 1.0 + 0.8 * np.cos(np.pi * xx / H) + 0.3 * np.cos(3 * np.pi * xx / H)  # noqa: E731
    m0 = np.repeat(profile(x)[:, None], H, axis=1)
    res = solve_channel_newton(m0, times, g, 1.0, SpsolveSolver(), tol=1e-12, max_iter=30, scheme=scheme,
                               boundary="reflect")
    K = H * 64
    xf = (np.arange(K) + 0.5) * (H / K)
    k = np.arange(K)
    coef = np.cos(np.outer(k, xf) * np.pi / H) @ np.exp(profile(xf)) * (2.0 / K)
    coef[0] /= 2
    G = (params.sigma ** (2 * times) - params.sigma ** (2 * times[0])) / (4 * np.log(params.sigma))
    exact = np.log((coef * np.exp(-np.outer(G, (k * np.pi / H) ** 2))) @ np.cos(np.outer(k, x) * np.pi / H))
    return float(np.abs(res.m[..., 0] - exact).max())


def timing(images: np.ndarray, reps: int) -> pd.DataFrame:
    """reflect + centred and reflect + minimal alternated ``reps`` times on the same images."""
    rows = []
    for rep_ in range(reps):
        for scheme in ("centred", "minimal"):
            load, cpu0 = os.getloadavg()[0], time.process_time()
            res, wall = solve(images, scheme, "reflect")
            cpu = time.process_time() - cpu0
            rows.append({"rep": rep_, "scheme": scheme, "cpu_seconds": cpu, "seconds": wall,
                         "solves": int(res.solves.sum()), "valid": int(res.valid.sum()), "load": load})
            print(f"timing {rep_} {scheme}: {cpu:.2f} s CPU, {wall:.2f} s wall (load {load:.1f})", flush=True)
    return pd.DataFrame(rows)


def timing_line(out: Path) -> str:
    path = out / "timing.csv"
    if not path.exists():
        return ""
    df = pd.read_csv(path)

    def ratio(column):
        wide = df.pivot(index="rep", columns="scheme", values=column)
        r = wide["minimal"] / wide["centred"]
        return f"median {r.median():.3f}, range [{r.min():.3f}, {r.max():.3f}]"

    return (f"\n\nreflect + minimal / reflect + centred on the same study images, alternated in one process, "
            f"{df.rep.nunique()} pairs: CPU seconds {ratio('cpu_seconds')}; wall seconds {ratio('seconds')} "
            f"(load average {df.load.min():.1f}-{df.load.max():.1f}; {int(df.solves.iloc[0])} and "
            f"{int(df.solves.iloc[1])} linear solves).")


def save(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(path) as (tmp,):
        df.to_csv(tmp, index=False)


def combos():
    """The paper's (zero + centred) first: the others are compared with it."""
    return [PAPER] + [(b, s) for b in BOUNDARIES for s in SCHEMES if (b, s) != PAPER]


def summary(out: Path) -> str:
    """The docs' table: one row per set x boundary x scheme, from the saved parts."""
    parts = sorted((out / "parts").glob("*.csv"))
    if not parts:
        raise SystemExit(f"no saved parts under {out / 'parts'}")
    lines = []
    extras = {p.stem: pd.read_csv(p) for p in (out / "extras").glob("*.csv")} if (out / "extras").exists() else {}
    for part in parts:
        df = pd.read_csv(part)
        name, boundary, scheme = part.stem.split("__")
        conv = df[df.converged]
        centred = out / "parts" / f"{name}__{boundary}__centred.csv"
        ratio = np.nan
        if centred.exists() and scheme != "centred":
            ref = pd.read_csv(centred)
            both = df.converged & ref.converged
            ratio = df.seconds[both].median() / ref.seconds[both].median() if both.any() else np.nan
        extra = extras.get(f"{name}__{boundary}__{scheme}", pd.DataFrame())
        lines.append({
            "set": name, "boundary": boundary, "scheme": scheme, "channels": len(df),
            "converged": int(df.converged.sum()), "outside bound": int((df.converged & ~df.within_bound).sum()),
            "valid": int(df.valid.sum()),
            "low-contrast valid": f"{int(df.valid[df.low_contrast].sum())}/{int(df.low_contrast.sum())}",
            "nu active %": 100 * df.nu_active[df.converged].mean() if len(conv) else np.nan,
            "Newton its (median)": conv.newton_iterations.median(),
            "ms/channel (median)": 1e3 * conv.seconds.median(), "time vs centred": ratio,
            "border/interior |s|": (conv.border_abs_s / conv.interior_abs_s).median(),
            "diff vs paper %": 100 * df.get("diff_paper", pd.Series(dtype=float)).median(),
            "diff vs paper, inside %": 100 * df.get("diff_paper_inside", pd.Series(dtype=float)).median(),
            "contrast diff %": 100 * extra.get("contrast_diff", pd.Series(dtype=float)).median(),
            "refined error %": 100 * extra.get("refined_error", pd.Series(dtype=float)).median(),
            "1-D exact error": extra.get("exact_1d", pd.Series(dtype=float)).median(),
        })
    table = pd.DataFrame(lines)
    sets = table["set"].map({"study": 0, "standin": 1}).fillna(2)
    order = table.assign(_set=sets, _b=table.boundary.map({"zero": 0, "reflect": 1}),
                         _s=table.scheme.map({s: i for i, s in enumerate(SCHEMES)}))
    table = table.loc[order.sort_values(["_set", "_b", "_s"]).index]
    return table.to_markdown(index=False, floatfmt=".3g") + timing_line(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=300, help="images per set (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of both sets (default %(default)s)")
    p.add_argument("--sample", type=int, default=12, help="images for the contrast and refinement checks")
    p.add_argument("--sets", nargs="+", default=["study", "standin"], choices=["study", "standin"])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory: parts/ and extras/ (CSV) "
                   "(default %(default)s)")
    p.add_argument("--timing", type=int, default=0, metavar="REPS",
                   help="also (or, with the parts saved, only) the alternated centred/minimal timing, REPS pairs")
    p.add_argument("--summary", action="store_true", help="only the summary of the saved parts of --out")
    add_output_options(p, TARGET)
    args = p.parse_args(argv)
    if not args.summary:
        if args.images < 1 or args.sample < 0:
            p.error("--images takes a positive count, --sample a count >= 0")
        for name in args.sets:
            if name == "study":
                images, low = study_set(args.images, args.seed)
            else:
                images = np.round(stand_in_set(args.images, args.seed).astype(np.float64) * 255) / 255
                low = np.zeros(len(images), dtype=bool)
            paper = None
            for boundary, scheme in combos():
                part = args.out / "parts" / f"{name}__{boundary}__{scheme}.csv"
                if part.exists() and (boundary, scheme) != PAPER:
                    print(f"{part}: saved, skipped", flush=True)
                    continue
                if part.exists():  # saved, but its scores are what the others are compared with
                    if any(not (args.out / "parts" / f"{name}__{b}__{c}.csv").exists() for b, c in combos()):
                        res = solve(images, scheme=PAPER[1], boundary=PAPER[0])[0]
                        paper = (res.scores.astype(np.float64), res.valid)
                    continue
                rows, solved = run_part(images, low, scheme, boundary, paper)
                if (boundary, scheme) == PAPER:
                    paper = solved
                save(rows, part)
                v = rows.valid.mean() * 100
                print(f"{name} {boundary:>7} {scheme:>8}: {int(rows.converged.sum())}/{len(rows)} converged, "
                      f"{v:.1f} % valid, {rows.set_seconds.iloc[0]:.1f} s", flush=True)
                extra_path = args.out / "extras" / f"{name}__{boundary}__{scheme}.csv"
                if not extra_path.exists() and args.sample:
                    sample = images[:args.sample]
                    extra = pd.concat([contrast_rows(sample, scheme, boundary)], axis=1)
                    if boundary == "reflect":
                        extra = pd.concat([extra, refined_rows(sample[:max(1, args.sample // 3)], scheme, boundary)],
                                          axis=1)
                    if boundary == "reflect":
                        extra["exact_1d"] = exact_1d_error(scheme)
                    save(extra, extra_path)
        if args.timing and "study" in args.sets and not (args.out / "timing.csv").exists():
            save(timing(study_set(args.images, args.seed)[0], args.timing), args.out / "timing.csv")
    return emit(args, summary(args.out), BEGIN, END, f"the saved parts under {args.out}")


if __name__ == "__main__":
    sys.exit(main())
