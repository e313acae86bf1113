"""The binned KDE's row transforms of METHOD.md §4, compiled by numba, for the fused CPU engine's
initial densities (``kde_batched.initial_log_density_compiled``, which does the column FFTs between
them with scipy): ``kde_forward`` and ``kde_back`` as pruned DFTs (only the kept frequencies, only
the bins that hold points), ``kde_kernel`` the Gaussian kernel's transform. They call no kernel of
``numba_kernels`` nor it one of theirs, so they need not share its file (numba's cache checks only
the source file of the function it compiled). Compiled with cache=True; ``load`` compiles or loads
them before anything is timed.
"""
from __future__ import annotations

import math

import numba
import numpy as np

# the flags of ``numba_kernels``, written here again: the cache would not see them change in another file
_FLAGS = {"fastmath": {"reassoc", "contract"}, "error_model": "numpy", "cache": True, "nogil": True}
_EXACT = {"error_model": "numpy", "cache": True, "nogil": True}


@numba.njit(**_EXACT)
def _corners(v, bins):
    """Lower node and offset of the linear binning (``kde._linear_bins``)."""
    pos = min(max(v, 0.0), 1.0) * (bins - 1)
    lo = min(int(math.floor(pos)), bins - 2)
    return lo, pos - lo


@numba.njit(**_FLAGS)
def kde_forward(x, y, bins, tw_re, tw_im, n_cols, out):
    """The pruned row transform of the binned counts: out[g, kc, a] = sum over the pairs' corners
    (a, b) of weight * twiddle[b, kc] for kc < n_cols[g] (out (G, Kc, >= bins) complex, zero elsewhere),
    i.e. the channel's band of rfft(counts, n=L1, axis=1) for every row a, transposed; twiddle =
    tw_re + i tw_im (bins, Kc), x, y (G, n). A pair's two columns are combined first,
    (1 - wy) twiddle[b] + wy twiddle[b + 1], then added to its two rows; real and imaginary parts in
    arrays of their own (the loops over the frequency vectorise)."""
    G, npts = x.shape
    K = out.shape[1]
    acc_re = np.zeros((bins, K))
    acc_im = np.zeros((bins, K))
    col_re = np.empty(K)
    col_im = np.empty(K)
    for g in range(G):
        n_kc = n_cols[g]
        acc_re[:] = 0.0
        acc_im[:] = 0.0
        for q in range(npts):
            ix, wx = _corners(x[g, q], bins)
            iy, wy = _corners(y[g, q], bins)
            h0 = 1.0 - wy
            t0r, t0i, t1r, t1i = tw_re[iy], tw_im[iy], tw_re[iy + 1], tw_im[iy + 1]
            for kc in range(n_kc):
                col_re[kc] = h0 * t0r[kc] + wy * t1r[kc]
                col_im[kc] = h0 * t0i[kc] + wy * t1i[kc]
            f0 = 1.0 - wx
            a_re, a_im = acc_re[ix], acc_im[ix]
            for kc in range(n_kc):
                a_re[kc] += f0 * col_re[kc]
                a_im[kc] += f0 * col_im[kc]
            a_re, a_im = acc_re[ix + 1], acc_im[ix + 1]
            for kc in range(n_kc):
                a_re[kc] += wx * col_re[kc]
                a_im[kc] += wx * col_im[kc]
        for kc in range(K):
            o = out[g, kc]
            for a in range(bins):
                o[a] = complex(acc_re[a, kc], acc_im[a, kc]) if kc < n_kc else 0.0
            for a in range(bins, o.size):
                o[a] = 0.0


@numba.njit(**_EXACT)
def kde_kernel(spec, c00, c01, c11, k_max, kx, ky, scale):
    """spec[g, kc, a] *= the Gaussian kernel's transform exp(-(c00 kx^2 + 2 c01 kx ky + c11 ky^2) / 2) / scale
    at (kx[a], ky[kc]) where |kx| <= k_max[g] and ky <= k_max[g], 0 elsewhere (as
    ``kde.kde_density`` builds and masks it: the same expression)."""
    G, K, L0 = spec.shape
    for g in range(G):
        a00, a01, a11, km = c00[g], c01[g], c11[g], k_max[g]
        for kc in range(K):
            row = spec[g, kc]
            v = ky[kc]
            if not v <= km:
                for a in range(L0):
                    row[a] = 0.0
                continue
            for a in range(L0):
                u = kx[a]
                if abs(u) <= km:
                    row[a] *= math.exp(-0.5 * (a00 * u ** 2 + 2 * a01 * u * v + a11 * v ** 2)) / scale
                else:
                    row[a] = 0.0


@numba.njit(**_FLAGS)
def kde_back(x, y, bins, spec, tw_re, tw_im, n_cols, L1, floor, out):
    """log max(p, floor) at the pairs: p the bilinear interpolation of irfft(spec, n=L1, axis=1)
    evaluated only where it is read, on the channel's band kc < n_cols[g] (zero beyond it); spec
    (G, Kc, >= bins) complex (the column transforms done, transposed), twiddle[b, kc] =
    exp(-2 pi i b kc / L1) = tw_re + i tw_im; out (G, n). Per pair: its two rows combined,
    (1 - wx) R[a] + wx R[a + 1], against its two columns combined, as in ``kde_forward``."""
    G, npts = x.shape
    K = spec.shape[1]
    weight = np.empty(K)
    for kc in range(K):  # irfft: the zero frequency and (even L1) the Nyquist term once, the others twice
        weight[kc] = (1.0 if (kc == 0 or 2 * kc == L1) else 2.0) / L1
    rows_re = np.empty((bins, K))
    rows_im = np.empty((bins, K))
    for g in range(G):
        n_kc = n_cols[g]
        for kc in range(n_kc):
            row = spec[g, kc]
            w = weight[kc]
            for a in range(bins):
                rows_re[a, kc] = row[a].real * w
                rows_im[a, kc] = row[a].imag * w
        for q in range(npts):
            ix, wx = _corners(x[g, q], bins)
            iy, wy = _corners(y[g, q], bins)
            f0 = 1.0 - wx
            h0 = 1.0 - wy
            r0r, r0i, r1r, r1i = rows_re[ix], rows_im[ix], rows_re[ix + 1], rows_im[ix + 1]
            t0r, t0i, t1r, t1i = tw_re[iy], tw_im[iy], tw_re[iy + 1], tw_im[iy + 1]
            p = 0.0
            for kc in range(n_kc):  # Re(z conj(tw)) = z.re tw.re + z.im tw.im
                p += ((f0 * r0r[kc] + wx * r1r[kc]) * (h0 * t0r[kc] + wy * t1r[kc])
                      + (f0 * r0i[kc] + wx * r1i[kc]) * (h0 * t0i[kc] + wy * t1i[kc]))
            out[g, q] = math.log(max(p, floor))


def load() -> None:
    """Compile or load the three kernels now for the types ``initial_log_density_compiled`` uses: a
    process pays this once, before anything is timed."""
    pts = np.linspace(0.0, 1.0, 4).reshape(1, 4)
    tw = np.ones((8, 2))
    spec = np.zeros((1, 2, 8), dtype=np.complex128)
    n_cols = np.full(1, 2, dtype=np.int64)
    kde_forward(pts, pts, 8, tw, tw, n_cols, spec)
    kde_kernel(spec, np.ones(1), np.zeros(1), np.ones(1), np.ones(1), np.zeros(8), np.zeros(2), 1.0)
    kde_back(pts, pts, 8, spec, tw, tw, n_cols, 16, 1e-300, np.empty((1, 4)))
