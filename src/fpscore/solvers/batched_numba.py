"""The batched engine's BiCGStab compiled for the CPU (numba): one system at a time, in cache.

Same contract and per-system arithmetic as ``batched_ops.bicgstab`` (the torch kernel, which
CUDA runs): B systems A_i x_i = b_i from x (B, n), x updated in place, each system stopping
on its own recursive residual ||r_i|| <= tol ||b_i||, or when omega vanishes, or on a
breakdown (non-finite scalars freeze it; the caller's true-residual check catches it).
Returns (iterations (B,), initial relative residual (B,)) as torch tensors.

Why a compiled kernel on the CPU: torch applies every BiCGStab operation to the whole
(B, n) batch, so each of the ~40 operations of an iteration streams B*n*8 bytes through
memory and pays ~5 us of dispatch; here a system's six work vectors (6 * 8 KB at 32x32)
stay in the L1/L2 cache for all its iterations: the BiCGStab time of a 300-channel stand-in
shard fell from 2.0 s to 0.3-0.6 s (cProfile), the whole engine is 1.3x faster on a 500-image
shard (benchmarks/shard_variants_benchmark.py) and 1.0-2.1x in benchmarks/solver_benchmark.py
(the rows "batched cpu newton" against "batched cpu torch-kernel newton"). Reductions may be
reordered (fastmath "reassoc", "contract" only: NaN and inf keep their IEEE meaning), so
iterates differ from the torch kernel's by rounding; every system is still held to the
same true residual by the engine. The engine imports this module only when it uses it. The
compiled code itself is in ``numba_kernels`` (``_bicgstab1`` per system, ``_bicgstab`` over a
batch), with the fused engine's: numba's cache checks only the file of the function it compiled,
so every compiled function and all it calls live in one file.
"""
from __future__ import annotations

import numpy as np

from fpscore.solvers.numba_kernels import _bicgstab

def load() -> None:
    """Compile or load the kernel from numba's cache now (one 2 x 2 system of the real call's
    types), so that this one-time cost of a process is not timed as a solve."""
    W, n = 2, 4
    coef = np.full((1, n), -0.1)
    _bicgstab(np.full((1, n), 1.5), coef, coef, coef, coef, np.ones((1, n)), np.zeros((1, n)), 1e-12, 5, W,
              np.zeros(1, dtype=np.int64), np.zeros(1))


def bicgstab(stencil, coef, b, x, tol: float, max_it: int):
    """``batched_ops.bicgstab`` for CPU tensors (float64), compiled; x is updated in place."""
    import torch

    if x.device.type != "cpu":
        raise ValueError(f"the numba kernel runs on the CPU only, got a tensor on {x.device}")
    B = b.shape[0]
    its = np.zeros(B, dtype=np.int64)
    init = np.zeros(B)

    def arr(a):
        return np.ascontiguousarray(a.detach().numpy(), dtype=np.float64)

    xn = x.detach().numpy()
    work = xn if xn.flags.c_contiguous else np.ascontiguousarray(xn)
    _bicgstab(arr(coef.diag), arr(coef.plus_i), arr(coef.minus_i), arr(coef.plus_j), arr(coef.minus_j), arr(b), work,
              float(tol), int(max_it), int(stencil.W), its, init)
    if work is not xn:
        xn[...] = work
    return torch.from_numpy(its), torch.from_numpy(init)
