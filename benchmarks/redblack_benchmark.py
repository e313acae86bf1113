"""Does a red-black reduction pay in the batched engine's compiled BiCGStab? Measured on its real systems.

The 5-point systems A x = b of the engine couple a red point (i + j even) only to black
ones. Eliminating the red unknowns leaves the Schur complement on the black half,
S x_b = b_b - A_br b_r / d with S = d I - A_br A_rb / d (d: the constant diagonal), whose
eigenvalues are 1 - mu^2 (times d) where A's Jacobi matrix has mu: BiCGStab needs about half
the iterations, each applying S (8 multiply-adds per black point) where A costs 5 per point,
on vectors of half the length. The red half is recovered exactly, x_r = (b_r - A_rb x_b) / d,
and the full residual is (0, b_b - S x_b - ...) = the reduced one, so the same stopping test
holds the full system to the same tolerance. This is red-black symmetric Gauss-Seidel
preconditioning in its cheapest form (the issue's "red-black SOR"; omega = 1: A's diagonal
is constant, so SOR's other weights only rescale).

The benchmark records every system the engine hands to ``batched_numba.bicgstab`` while it
computes the scores of a set (Newton, the schema's settings, one thread), then replays each
recorded call with the production kernel and with the red-black one, alternating, from the
same warm start and tolerance, and prints per set: BiCGStab seconds of each (median of
``--repeats`` replays), their ratio, mean iterations per system, the largest true relative
residual (full system, numpy) and how many systems missed the engine's rtol (at diverging
iterates; the engine runs those again and then hands them to SuperLU).

    python benchmarks/redblack_benchmark.py --sets standin:32 photos:128 --images 40
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar_scale_benchmark import stand_in_set  # noqa: E402

from fpscore.solvers import batched_numba  # noqa: E402

_FLAGS = batched_numba._FLAGS


# ---- the red-black kernel -------------------------------------------------------------------
@numba.njit(**_FLAGS)
def _split(u, H, W, red, black):
    """red[i*W2 + c] = u[i, 2c + i%2], black[i*W2 + c] = u[i, 2c + 1 - i%2] (W even)."""
    W2 = W // 2
    for i in range(H):
        o = i % 2
        for c in range(W2):
            red[i * W2 + c] = u[i * W + 2 * c + o]
            black[i * W2 + c] = u[i * W + 2 * c + 1 - o]


@numba.njit(**_FLAGS)
def _join(red, black, H, W, u):
    W2 = W // 2
    for i in range(H):
        o = i % 2
        for c in range(W2):
            u[i * W + 2 * c + o] = red[i * W2 + c]
            u[i * W + 2 * c + 1 - o] = black[i * W2 + c]


@numba.njit(**_FLAGS)
def _couple(src, pi, mi, pj, mj, H, W2, even_shift, out):
    """out = A_XY src: the coupling of the points of one colour (out, and their coefficients
    pi..mj, compact) to their four neighbours of the other colour (src, compact). In the rows
    where this colour's offset is 0 (even_shift = 0 on even rows) the right neighbour has the
    same compact column and the left one the column before; where it is 1, the column after
    and the same one."""
    n2 = H * W2
    for q in range(n2 - W2):
        out[q] = pi[q] * src[q + W2]
    for q in range(n2 - W2, n2):
        out[q] = 0.0
    for q in range(W2, n2):
        out[q] += mi[q] * src[q - W2]
    for i in range(H):
        base = i * W2
        if (i + even_shift) % 2 == 0:
            for c in range(W2):
                out[base + c] += pj[base + c] * src[base + c]
            for c in range(1, W2):
                out[base + c] += mj[base + c] * src[base + c - 1]
        else:
            for c in range(W2 - 1):
                out[base + c] += pj[base + c] * src[base + c + 1]
            for c in range(W2):
                out[base + c] += mj[base + c] * src[base + c]


@numba.njit(**_FLAGS)
def _schur(xb, d, r_coef, b_coef, H, W2, tmp, out):
    """out = S xb = d xb - A_br (A_rb xb) / d."""
    _couple(xb, r_coef[0], r_coef[1], r_coef[2], r_coef[3], H, W2, 0, tmp)
    _couple(tmp, b_coef[0], b_coef[1], b_coef[2], b_coef[3], H, W2, 1, out)
    inv = 1.0 / d
    for q in range(xb.size):
        out[q] = d * xb[q] - inv * out[q]


@numba.njit(**_FLAGS)
def _rb_bicgstab(diag, pi, mi, pj, mj, b, x, tol, max_it, H, W, its, init):
    """The contract of ``batched_numba._bicgstab`` (x updated in place, per-system stopping on
    ||r|| <= tol ||b|| of the full system, ``its`` and ``init`` written), on the reduced system."""
    B, n = b.shape
    W2 = W // 2
    n2 = n // 2
    full = np.empty(n)
    r_coef = np.empty((4, n2))
    b_coef = np.empty((4, n2))
    br, bb, xr, xb = np.empty(n2), np.empty(n2), np.empty(n2), np.empty(n2)
    r, rhat, p, v, t, tmp = np.empty(n2), np.empty(n2), np.empty(n2), np.empty(n2), np.empty(n2), np.empty(n2)
    for i in range(B):
        d = diag[i]
        bnorm2 = batched_numba._dot(b[i], b[i])
        if not bnorm2 > 0:
            bnorm2 = 1.0
        batched_numba._apply(x[i], d, pi[i], mi[i], pj[i], mj[i], W, full)
        rr0 = 0.0
        for k in range(n):
            e = b[i, k] - full[k]
            rr0 += e * e
        init[i] = math.sqrt(rr0 / bnorm2)
        limit = tol * tol * bnorm2
        if not rr0 > limit:
            continue
        for a, src in enumerate((pi[i], mi[i], pj[i], mj[i])):
            _split(src, H, W, r_coef[a], b_coef[a])
        for q in range(n2 - W2, n2):  # no neighbour below the last row, none above the first
            r_coef[0, q] = 0.0
            b_coef[0, q] = 0.0
        for q in range(W2):
            r_coef[1, q] = 0.0
            b_coef[1, q] = 0.0
        _split(b[i], H, W, br, bb)
        _split(x[i], H, W, xr, xb)
        inv = 1.0 / d
        for q in range(n2):
            tmp[q] = br[q] * inv
        _couple(tmp, b_coef[0], b_coef[1], b_coef[2], b_coef[3], H, W2, 1, v)
        for q in range(n2):
            bb[q] -= v[q]  # the reduced right-hand side
        _schur(xb, d, r_coef, b_coef, H, W2, tmp, v)
        for q in range(n2):
            r[q] = bb[q] - v[q]
        rr = batched_numba._dot(r, r)
        if rr > limit:
            rhat[:] = r
            p[:] = r
            rho = rr
            for _ in range(max_it):
                _schur(p, d, r_coef, b_coef, H, W2, tmp, v)
                alpha = rho / batched_numba._dot(rhat, v)
                for q in range(n2):
                    r[q] -= alpha * v[q]
                _schur(r, d, r_coef, b_coef, H, W2, tmp, t)
                tt = batched_numba._dot(t, t)
                omega = batched_numba._dot(t, r) / tt if tt > 0 else 0.0
                for q in range(n2):
                    xb[q] += alpha * p[q] + omega * r[q]
                    r[q] -= omega * t[q]
                its[i] += 1
                rr = batched_numba._dot(r, r)
                if not (rr > limit and omega != 0):
                    break
                rho_new = batched_numba._dot(rhat, r)
                beta = (rho_new / rho) * (alpha / omega)
                for q in range(n2):
                    p[q] = (p[q] - omega * v[q]) * beta + r[q]
                rho = rho_new
        _couple(xb, r_coef[0], r_coef[1], r_coef[2], r_coef[3], H, W2, 0, tmp)
        for q in range(n2):
            xr[q] = (br[q] - tmp[q]) * inv
        _join(xr, xb, H, W, x[i])


# ---- recording and replay -------------------------------------------------------------------
def record(images: np.ndarray) -> list[dict]:
    """Every call the engine makes to the compiled kernel while it computes the scores of ``images``."""
    import torch

    from fpscore.fokker_planck.params import FPParams
    from fpscore.scores import compute_scores
    from fpscore.solvers import batched, make_solver

    calls = []

    def recorder(stencil, coef, b, x, tol, max_it):
        B = b.shape[0]

        def arr(a):  # a copy: the engine's tensors are reused
            return np.array(np.broadcast_to(a.numpy(), (B, stencil.n)), dtype=np.float64)

        calls.append({"H": stencil.H, "W": stencil.W, "tol": float(tol), "max_it": int(max_it),
                      "diag": np.array(np.broadcast_to(coef.diag.numpy().reshape(-1), (B,)), dtype=np.float64),
                      "coef": [arr(coef.plus_i), arr(coef.minus_i), arr(coef.plus_j), arr(coef.minus_j)],
                      "b": arr(b), "x0": arr(x)})
        return batched_numba.bicgstab(stencil, coef, b, x, tol, max_it)

    torch.set_num_threads(1)
    original = batched.krylov_kernel
    batched.krylov_kernel = lambda kernel, device: recorder
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            compute_scores(images, FPParams(nonlinear="newton"), make_solver("batched", batched={"threads": 1}),
                           progress=False)
    finally:
        batched.krylov_kernel = original
    return calls


def true_residual(call: dict, x: np.ndarray) -> np.ndarray:
    """||b - A x|| / ||b|| of every system of a call (numpy, the full operator)."""
    W = call["W"]
    pi, mi, pj, mj = call["coef"]
    ax = call["diag"][:, None] * x
    ax[:, :-W] += pi[:, :-W] * x[:, W:]
    ax[:, W:] += mi[:, W:] * x[:, :-W]
    ax[:, :-1] += pj[:, :-1] * x[:, 1:]
    ax[:, 1:] += mj[:, 1:] * x[:, :-1]
    bn = np.linalg.norm(call["b"], axis=1)
    return np.linalg.norm(call["b"] - ax, axis=1) / np.where(bn > 0, bn, 1.0)


def replay(call: dict, kernel: str) -> tuple[float, np.ndarray, np.ndarray]:
    """(seconds, iterations, x) of one recorded call with ``kernel`` (plain | redblack)."""
    B = call["b"].shape[0]
    x = call["x0"].copy()
    its, init = np.zeros(B, dtype=np.int64), np.zeros(B)
    args = (call["diag"], *call["coef"], call["b"], x, call["tol"], call["max_it"])
    t0 = time.perf_counter()
    if kernel == "plain":
        batched_numba._bicgstab(*args, call["W"], its, init)
    else:
        _rb_bicgstab(*args, call["H"], call["W"], its, init)
    return time.perf_counter() - t0, its, x


def load_set(spec: str, n_images: int) -> np.ndarray:
    """'standin:32' (crops of the builtin images, 32 x 32 only), 'photos:128', 'faces:64' (the builtin sets)."""
    name, size = spec.split(":")
    size = int(size)
    if name == "standin":
        if size != 32:
            raise ValueError(f"set {spec!r}: the stand-in set is 32 x 32")
        return stand_in_set(n_images)
    from fpscore.data import PHOTOS, prepare

    options = ({"count": n_images, "indices": []} if name == "faces"
               else {"names": list(PHOTOS)[:n_images], "channels": 3})
    images, _, _ = prepare(name, size, options)
    return images[:n_images]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["standin:32", "photos:64", "photos:128"])
    ap.add_argument("--images", type=int, default=40, help="images per set (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="replays of every call per kernel (median)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    batched_numba.load()
    warm = {"H": 4, "W": 4, "tol": 1e-12, "max_it": 5, "diag": np.full(1, 1.5),
            "coef": [np.full((1, 16), -0.1) for _ in range(4)], "b": np.ones((1, 16)), "x0": np.zeros((1, 16))}
    replay(warm, "redblack")  # compile before timing
    rows = []
    for spec in args.sets:
        images = load_set(spec, args.images)
        calls = record(images)
        secs = {"plain": [], "redblack": []}
        its, worst = {"plain": 0, "redblack": 0}, {"plain": 0.0, "redblack": 0.0}
        missed = {"plain": 0, "redblack": 0}  # systems whose true residual is above rtol (or NaN)
        rtol = 2 * calls[0]["tol"]  # the engine asks the kernel for _SAFETY = 0.5 of rtol
        for rep in range(args.repeats):
            total = {"plain": 0.0, "redblack": 0.0}
            for call in calls:
                for kernel in (("plain", "redblack") if rep % 2 == 0 else ("redblack", "plain")):
                    s, k_its, x = replay(call, kernel)
                    total[kernel] += s
                    if rep == 0:
                        its[kernel] += int(k_its.sum())
                        res = true_residual(call, x)
                        worst[kernel] = max(worst[kernel], float(np.nanmax(res)))
                        missed[kernel] += int((~(res <= rtol)).sum())
            for kernel in total:
                secs[kernel].append(total[kernel])
        systems = sum(c["b"].shape[0] for c in calls)
        row = {"set": spec, "images": len(images), "calls": len(calls), "systems": systems,
               "plain_s": float(np.median(secs["plain"])), "redblack_s": float(np.median(secs["redblack"])),
               "plain_range": [min(secs["plain"]), max(secs["plain"])],
               "redblack_range": [min(secs["redblack"]), max(secs["redblack"])],
               "plain_its": its["plain"] / systems, "redblack_its": its["redblack"] / systems,
               "plain_max_residual": worst["plain"], "redblack_max_residual": worst["redblack"],
               "plain_missed": missed["plain"], "redblack_missed": missed["redblack"], "rtol": rtol}
        row["speedup"] = row["plain_s"] / row["redblack_s"]
        rows.append(row)
        print(f"{spec:>12}: {systems} systems in {len(calls)} calls; BiCGStab plain {row['plain_s']:.3f} s "
              f"({row['plain_its']:.2f} it), red-black {row['redblack_s']:.3f} s ({row['redblack_its']:.2f} it): "
              f"{row['speedup']:.2f}x; max true residual {row['plain_max_residual']:.1e} / "
              f"{row['redblack_max_residual']:.1e}, above rtol {rtol:.0e}: {row['plain_missed']} / "
              f"{row['redblack_missed']} systems (the engine's second round and SuperLU take those)", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
