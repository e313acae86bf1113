"""Would a monotone discretisation of (D m)^2 remove the flagged channels, and at what price?

A probe, not a workflow option: METHOD.md §2 fixes the centred D_h, whose (D_h m)^2 can lift
a maximum of m without bound (``breakdown_benchmark.py``). Here the same implicit-Euler
equation (f = 0, the diffusion pipeline's VE SDE) is solved per channel with that term
replaced by Osher-Sethian's monotone (Godunov) form for the combined direction D = d/dx + d/dy:

    (D m)^2  ->  G(p-, p+) = max(min(p-, 0)^2, max(p+, 0)^2),
    p- = (2 m_ij - m_{i-1,j} - m_{i,j-1}) / h,   p+ = (m_{i+1,j} + m_{i,j+1} - 2 m_ij) / h,

which equals (D m)^2 for smooth m (first-order accurate), stays in the 5-point pattern, and
is 0 at a maximum or minimum of the lattice field, so with implicit Euler max m and min m
cannot leave [min(0, min m^0), max(0, max m^0)] (the continuous equation's maximum principle).
Each level is solved by (semismooth) Newton with SciPy's sparse LU to a relative change of
1e-10. The probe runs on the channels flagged by the default scheme (taken from the CSV that
``breakdown_benchmark.py`` wrote, same images) and on as many unflagged channels of the same set,
and reports per channel whether the upwind scheme converged, whether m stayed within the
bound, and, on the unflagged ones, how far its scores D_h m are from the centred scheme's
(relative 2-norm over all levels, and at the last level).

    python benchmarks/upwind_probe.py --breakdown benchmarks/results/scale/breakdown_dt.csv \
        --out benchmarks/results/scale/upwind_probe.csv
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402

from breakdown_benchmark import quiet_scores  # noqa: E402
from cifar_scale_benchmark import stand_in_set  # noqa: E402
from fpscore.fileio import atomic_outputs  # noqa: E402
from fpscore.fokker_planck.kde import initial_log_density  # noqa: E402
from fpscore.fokker_planck.lattice import d_h, lap_matrix  # noqa: E402
from fpscore.fokker_planck.params import FPParams  # noqa: E402
from fpscore.solvers import make_solver  # noqa: E402


def one_sided_matrices(H: int, W: int, h: float = 1.0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """P- and P+ of the flattened H x W lattice (zero outside): the backward and forward differences
    of D = d/dx + d/dy."""
    s_i = sp.kron(sp.eye(H, k=1), sp.eye(W))  # u_{i+1,j}
    s_j = sp.kron(sp.eye(H), sp.eye(W, k=1))  # u_{i,j+1}
    eye = sp.eye(H * W)
    return ((2 * eye - s_i.T - s_j.T) / h).tocsr(), ((s_i + s_j - 2 * eye) / h).tocsr()


def godunov(p_minus: np.ndarray, p_plus: np.ndarray):
    """G(p-, p+) = max(a^2, b^2), a = min(p-, 0), b = max(p+, 0), and its partial derivatives."""
    a, b = np.minimum(p_minus, 0.0), np.maximum(p_plus, 0.0)
    use_a = a * a >= b * b
    return np.where(use_a, a * a, b * b), np.where(use_a, 2 * a, 0.0), np.where(use_a, 0.0, 2 * b)


def solve_upwind(m0: np.ndarray, times: np.ndarray, g: np.ndarray, h: float = 1.0, tol: float = 1e-10,
                 max_iter: int = 30) -> tuple[np.ndarray, bool]:
    """m (T, H, W) of the implicit-Euler equation with the Godunov term, level by level (Newton from
    the linear extrapolation, as the engines start); converged: every level met ``tol``."""
    H, W = m0.shape
    lap = lap_matrix(H, W, h)
    p_m, p_p = one_sided_matrices(H, W, h)
    eye = sp.eye(H * W, format="csr")
    m = np.empty((times.size, H * W))
    m[0] = m0.reshape(-1)
    converged = True
    for n in range(1, times.size):
        c = 0.5 * (times[n] - times[n - 1]) * g[n] ** 2
        x = m[0].copy() if n == 1 else 2 * m[n - 1] - m[n - 2]
        for _ in range(max_iter):
            val, d_minus, d_plus = godunov(p_m @ x, p_p @ x)
            residual = x - m[n - 1] - c * (lap @ x + val)
            jac = eye - c * (lap + sp.diags(d_minus) @ p_m + sp.diags(d_plus) @ p_p)
            step = spla.spsolve(jac.tocsc(), residual)
            x = x - step
            if not np.isfinite(x).all():
                break
            if np.linalg.norm(step) <= tol * max(np.linalg.norm(x), np.finfo(float).tiny):
                break
        else:
            converged = False
        if not np.isfinite(x).all():
            m[n:] = np.nan
            return m.reshape(-1, H, W), False
        m[n] = x
    return m.reshape(-1, H, W), converged


def compare(images: np.ndarray, channels: np.ndarray, params: FPParams, flagged: bool) -> list[dict]:
    """Upwind against the centred scheme (the batched engine, the schema's settings) per channel."""
    solver = make_solver("batched", batched=dict(device="cpu", threads=1))
    rows = []
    for i, c in channels:
        channel = images[i:i + 1, c:c + 1]
        m0 = initial_log_density(channel[0, 0])
        m_up, ok = solve_upwind(m0, params.times(), params.g(), params.dh)
        lo, hi = min(0.0, m0.min()), max(0.0, m0.max())
        row = {"image": int(i), "channel": int(c), "flagged_centred": flagged, "upwind_converged": ok,
               "upwind_within_bound": bool(np.isfinite(m_up).all() and m_up.min() >= lo - 1e-9
                                          and m_up.max() <= hi + 1e-9),
               "m0_max": float(m0.max()), "upwind_m_max": float(np.nanmax(m_up))}
        if not flagged:
            centred = quiet_scores(channel, params, solver)
            s_c, s_u = centred.scores[0, 0].astype(np.float64), d_h(m_up, params.dh)
            row |= {"centred_converged": bool(centred.converged.all()),
                    "score_rel_diff_all": float(np.linalg.norm(s_u - s_c) / np.linalg.norm(s_c)),
                    "score_rel_diff_last": float(np.linalg.norm(s_u[-1] - s_c[-1]) / np.linalg.norm(s_c[-1]))}
        rows.append(row)
    return rows


def summary(df: pd.DataFrame) -> str:
    """Per group (flagged by the centred scheme or not): channels, upwind converged, within the bound,
    and on the unflagged ones the median [min, max] relative score difference to the centred scheme."""
    lines = []
    for flagged, part in df.groupby("flagged_centred"):
        line = (f"{'flagged' if flagged else 'unflagged'} by the centred scheme: {len(part)} channels; upwind "
                f"converged {int(part['upwind_converged'].sum())}, within the maximum-principle bound "
                f"{int(part['upwind_within_bound'].sum())}")
        if not flagged:
            for col, what in (("score_rel_diff_all", "all levels"), ("score_rel_diff_last", "last level")):
                line += (f"; score difference to centred ({what}) median {part[col].median():.3g} "
                         f"[{part[col].min():.3g}, {part[col].max():.3g}]")
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--breakdown", type=Path, required=True,
                   help="CSV of breakdown_benchmark.py: its flagged channels and the set it used")
    p.add_argument("--images", type=int, default=2000, help="stand-in images of that run (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="stand-in seed of that run (default %(default)s)")
    p.add_argument("--unflagged", type=int, default=None,
                   help="unflagged channels to compare (default: as many as flagged)")
    p.add_argument("--out", type=Path, required=True, help="CSV: one row per channel")
    p.add_argument("--summary", action="store_true", help="print the summary of an existing --out CSV and exit")
    args = p.parse_args(argv)
    if args.summary:
        print(summary(pd.read_csv(args.out)))
        return 0
    flagged = pd.read_csv(args.breakdown)[["image", "channel"]].drop_duplicates().to_numpy()
    if len(flagged) and flagged[:, 0].max() >= args.images:
        p.error(f"--breakdown {args.breakdown} names image {flagged[:, 0].max()}, beyond --images {args.images}")
    images = np.round(stand_in_set(args.images, args.seed).astype(np.float64) * 255) / 255
    taken = {tuple(x) for x in flagged}
    pool = [(i, c) for i in range(args.images) for c in range(3) if (i, c) not in taken]
    rng = np.random.default_rng(0)
    count = len(flagged) if args.unflagged is None else args.unflagged
    healthy = np.array([pool[k] for k in np.sort(rng.choice(len(pool), min(count, len(pool)), replace=False))])
    params = FPParams()
    rows = compare(images, flagged, params, True)
    print(f"{len(rows)} flagged channels done", flush=True)
    rows += compare(images, healthy, params, False)
    df = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(args.out) as (tmp,):
        df.to_csv(tmp, index=False)
    print(summary(df))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
