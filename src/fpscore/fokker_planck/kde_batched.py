"""The initial log-density m^0 of METHOD.md §4 for many channels at once (torch, CPU or CUDA).

The same binned Gaussian KDE as ``fpscore.fokker_planck.kde`` (Scott's rule, full
2 x 2 kernel covariance with eigenvalues floored at one grid spacing squared,
linear binning on B x B nodes, the kernel's exact Fourier transform on a padded
periodic grid, frequencies beyond the spectral cutoff zeroed, bilinear
interpolation back to the pairs), computed for a (K, H, H) stack: one batched
bincount, and one batched FFT per distinct padded grid size (channels are grouped
by it, so every channel sees exactly the grid the per-channel code uses). Equal
to ``initial_log_density`` channel by channel to rounding (tested to 1e-12).
"""
from __future__ import annotations

import numpy as np
from scipy.fft import next_fast_len

from fpscore.fokker_planck.kde import _SPECTRAL_CUTOFF, _TRUNCATE_STD

# entries of the largest work array: on the CPU a few channels at a time, whose transforms stay in
# the cache (2^18: 1.6-2.3 ms per 32x32 channel against 2.8-3.6 ms with 2^23, alternated runs of 600
# stand-in channels); on a GPU large batches (128 MiB complex)
_CHUNK_ELEMENTS = {"cpu": 1 << 18, "cuda": 1 << 23}


def _checked(shape: tuple, bins) -> int:
    """``bins`` as an int, after checking a non-empty K x H x H stack and bins >= 8 (ValueError naming them)."""
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] == 0:
        raise ValueError(f"initial density: expected a non-empty stack K x H x H of square channels, "
                         f"got shape {shape}")
    if int(bins) != bins or bins < 8:
        raise ValueError(f"kde_bins: expected an integer >= 8, got {bins!r}")
    return int(bins)


def _band_density(a_idx, b_idx, w, cov, k_max: np.ndarray, L: tuple[int, int], bins: int, delta: float,
                  n: int):
    """The binned KDE at the grid corners of the points of G channels of one padded size L.

    ``a_idx``, ``b_idx``, ``w`` (G, 4n): the corners of every point and their linear weights
    (the same weights bin the points and interpolate back). The value is
    irfft2(rfft2(counts, s=L) * kernel, s=L) as the per-channel code computes it, with the
    two-dimensional transforms split into one-dimensional ones that skip what is zero or
    unused: the column transform only on the band of columns the kernel keeps (ky <= k_max,
    the union over the group; each channel's own band masked in its kernel), the row
    transforms only on the B rows that hold counts / are read back. About 3x fewer
    operations than the two full L0 x L1 FFTs.
    """
    import torch

    dev = w.device
    G = w.shape[0]
    kx_all = 2 * np.pi * np.fft.fftfreq(L[0], d=delta)
    ky_all = 2 * np.pi * np.fft.rfftfreq(L[1], d=delta)
    n_cols = int(np.count_nonzero(ky_all <= k_max.max()))  # rfftfreq is increasing: a leading block
    f64 = dict(dtype=torch.float64, device=dev)
    base = (torch.arange(G, device=dev) * (bins * bins))[:, None]
    counts = torch.bincount((base + a_idx * bins + b_idx).reshape(-1), weights=w.reshape(-1),
                            minlength=G * bins * bins).reshape(G, bins, bins)
    kx = torch.as_tensor(kx_all, **f64)[None, None, :]
    ky = torch.as_tensor(ky_all[:n_cols], **f64)[None, :, None]
    km = torch.as_tensor(k_max, **f64)[:, None, None]
    kernel = torch.exp(-0.5 * (cov[:, 0, 0, None, None] * kx**2 + 2 * cov[:, 0, 1, None, None] * kx * ky
                               + cov[:, 1, 1, None, None] * ky**2)) / (delta * delta * n)
    kernel *= (kx.abs() <= km) & (ky <= km)  # (G, Cc, L0)
    if dev.type == "cpu":  # the same transforms by scipy's pocketfft: 1.5-2.5x faster than torch's on CPU
        from scipy import fft as sfft

        spec = sfft.rfft(counts.numpy(), n=L[1], axis=2)[:, :, :n_cols]
        spec = sfft.fft(spec, n=L[0], axis=1).transpose(0, 2, 1) * kernel.numpy()
        spec = sfft.ifft(spec, axis=2)[:, :, :bins].transpose(0, 2, 1)
        grid = torch.from_numpy(sfft.irfft(spec, n=L[1], axis=2)[:, :, :bins].reshape(G, -1))
    else:  # every transform along the last, contiguous axis (torch's strided FFTs are slower)
        spec = torch.fft.rfft(counts, n=L[1], dim=2)[:, :, :n_cols]  # (G, B, Cc): rows 0..B-1 hold the counts
        spec = torch.fft.fft(spec.transpose(1, 2).contiguous(), n=L[0], dim=2) * kernel  # (G, Cc, L0)
        spec = torch.fft.ifft(spec, dim=2)[:, :, :bins]  # only rows 0..B-1 are read back
        grid = torch.fft.irfft(spec.transpose(1, 2).contiguous(), n=L[1], dim=2)[:, :, :bins].reshape(G, -1)
    return grid.gather(1, a_idx * bins + b_idx)


def initial_log_density_batched(channels, bins: int = 256, floor: float = 1e-300, device=None):
    """m^0 (K, H, H) float64 torch tensor of K square channels (array or tensor, values in [0, 1])."""
    import torch

    x_img = torch.as_tensor(channels, dtype=torch.float64, device=device)
    bins = _checked(tuple(x_img.shape), bins)
    K, H, _ = x_img.shape
    n = H * H
    dev = x_img.device
    x = x_img.reshape(K, n)
    y = x_img.transpose(1, 2).reshape(K, n)
    delta = 1.0 / (bins - 1)
    # Scott's kernel covariance (unbiased covariance * n^(-1/3)), eigenvalues floored at delta^2
    if n > 1:
        xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
        sxx, syy, sxy = (xc * xc).sum(1), (yc * yc).sum(1), (xc * yc).sum(1)
        cov = torch.stack([torch.stack([sxx, sxy], -1), torch.stack([sxy, syy], -1)], -2) / (n - 1)
        cov = cov * n ** (-1.0 / 3.0)
    else:
        cov = torch.zeros(K, 2, 2, dtype=torch.float64, device=dev)
    evals, evecs = torch.linalg.eigh(cov)
    cov = (evecs * evals.clamp_min(delta * delta)[:, None, :]) @ evecs.transpose(1, 2)
    lam_min = torch.linalg.eigvalsh(cov)[:, 0]

    def lin_bins(v):
        pos = v.clamp(0.0, 1.0) * (bins - 1)
        lo = torch.floor(pos).to(torch.long).clamp_max(bins - 2)
        return lo, pos - lo

    ix, wx = lin_bins(x)
    iy, wy = lin_bins(y)
    a_idx = torch.cat([ix, ix, ix + 1, ix + 1], 1)  # the 4 corners of every point, and their weights
    b_idx = torch.cat([iy, iy + 1, iy, iy + 1], 1)
    w = torch.cat([(1 - wx) * (1 - wy), (1 - wx) * wy, wx * (1 - wy), wx * wy], 1)
    cov_np = cov.cpu().numpy()
    reach = np.ceil(_TRUNCATE_STD * np.sqrt(np.stack([cov_np[:, 0, 0], cov_np[:, 1, 1]], 1)) / delta).astype(int)
    sizes = [tuple(next_fast_len(bins + int(r), real=True) for r in row) for row in reach]
    k_max = np.sqrt(2.0 * _SPECTRAL_CUTOFF / lam_min.cpu().numpy())
    corner = torch.empty_like(w)
    for L in sorted(set(sizes)):
        group = [i for i, s in enumerate(sizes) if s == L]
        chunk = max(1, _CHUNK_ELEMENTS.get(dev.type, _CHUNK_ELEMENTS["cuda"]) // (L[0] * L[1]))  # bounds the work arrays
        for start in range(0, len(group), chunk):
            sel = group[start:start + chunk]
            corner[sel] = _band_density(a_idx[sel], b_idx[sel], w[sel], cov[sel], k_max[sel], L, bins, delta, n)
    p = (w * corner).reshape(K, 4, n).sum(1)
    return torch.log(p.clamp_min(floor)).reshape(K, H, H)


# ---- the same KDE without torch: compiled row transforms, scipy's column FFTs ----------------------
_TWIDDLES: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}


def _twiddle(L1: int, bins: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """The real and imaginary parts of exp(-2 pi i b k / L1) for b < bins, k < n_cols (bins, n_cols), the
    angle reduced exactly (b k mod L1) before the cos and sin."""
    key = (L1, bins, n_cols)
    if key not in _TWIDDLES:
        angle = 2 * np.pi * ((np.outer(np.arange(bins, dtype=np.int64), np.arange(n_cols, dtype=np.int64)) % L1) / L1)
        _TWIDDLES[key] = (np.cos(angle), -np.sin(angle))
    return _TWIDDLES[key]


def initial_log_density_compiled(channels: np.ndarray, bins: int = 256, floor: float = 1e-300,
                                 out: np.ndarray | None = None) -> np.ndarray:
    """m^0 (K, H, H) float64 of K square channels (numpy, values in [0, 1]) with no torch: the KDE of
    ``initial_log_density_batched`` (the same grid sizes, bands and kernel), whose row transforms
    are pruned DFTs compiled in ``fpscore.solvers.numba_kde`` (the first Kc frequencies of every
    row, from the bins that hold points; the irfft evaluated only at the corners read back) and
    whose column transforms are scipy's FFTs over each group of channels of one padded size. Equal
    to ``kde.initial_log_density`` channel by channel to rounding (tested to 1e-12). ``out``
    (K, H, H) float64 is written when given."""
    from scipy import fft as sfft

    from fpscore.fokker_planck.kde import fast_length
    from fpscore.solvers import numba_kde

    chans = np.asarray(channels, dtype=np.float64)
    bins = _checked(chans.shape, bins)
    K, H, _ = chans.shape
    n = H * H
    x = chans.reshape(K, n)
    y = np.ascontiguousarray(chans.transpose(0, 2, 1)).reshape(K, n)
    delta = 1.0 / (bins - 1)
    if n > 1:  # Scott's kernel covariance, eigenvalues floored at delta^2 (as the torch version)
        xc, yc = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
        sxx, syy, sxy = np.einsum("ij,ij->i", xc, xc), np.einsum("ij,ij->i", yc, yc), np.einsum("ij,ij->i", xc, yc)
        cov = np.stack([np.stack([sxx, sxy], -1), np.stack([sxy, syy], -1)], -2) / (n - 1) * n ** (-1.0 / 3.0)
    else:
        cov = np.zeros((K, 2, 2))
    evals, evecs = np.linalg.eigh(cov)
    cov = (evecs * np.maximum(evals, delta * delta)[:, None, :]) @ evecs.transpose(0, 2, 1)
    lam_min = np.linalg.eigvalsh(cov)[:, 0]
    reach = np.ceil(_TRUNCATE_STD * np.sqrt(np.stack([cov[:, 0, 0], cov[:, 1, 1]], 1)) / delta).astype(int)
    lengths = {r: fast_length(bins + int(r)) for r in np.unique(reach)}
    L0 = np.array([lengths[r] for r in reach[:, 0]])
    L1 = np.array([lengths[r] for r in reach[:, 1]])
    k_max = np.sqrt(2.0 * _SPECTRAL_CUTOFF / lam_min)
    m0 = np.empty((K, n)) if out is None else out.reshape(K, n)
    chunk = max(1, _CHUNK_ELEMENTS["cpu"] // (bins * 64))
    for size in sorted(set(zip(L0.tolist(), L1.tolist()))):
        group = np.flatnonzero((L0 == size[0]) & (L1 == size[1]))
        for start in range(0, group.size, chunk):
            sel = group[start:start + chunk]
            _band_compiled(x[sel], y[sel], cov[sel], k_max[sel], size, bins, delta, n, floor, m0, sel, sfft,
                           numba_kde)
    return m0.reshape(K, H, H)


def _band_compiled(x, y, cov, k_max, L, bins, delta, n, floor, m0, sel, sfft, numba_kde) -> None:
    """m0[sel] of G channels of one padded size L (``initial_log_density_compiled``)."""
    kx = 2 * np.pi * np.fft.fftfreq(L[0], d=delta)
    ky_all = 2 * np.pi * np.fft.rfftfreq(L[1], d=delta)
    own = np.searchsorted(ky_all, k_max, side="right")  # each channel's band ky <= k_max (a leading block)
    n_cols = int(own.max())
    ky = ky_all[:n_cols]
    tw_re, tw_im = _twiddle(L[1], bins, n_cols)
    G = x.shape[0]
    spec = np.empty((G, n_cols, L[0]), dtype=np.complex128)  # (channel, column frequency, row)
    numba_kde.kde_forward(x, y, bins, tw_re, tw_im, own, spec)
    spec = sfft.fft(spec, axis=2, overwrite_x=True)
    numba_kde.kde_kernel(spec, np.ascontiguousarray(cov[:, 0, 0]), np.ascontiguousarray(cov[:, 0, 1]),
                         np.ascontiguousarray(cov[:, 1, 1]), np.ascontiguousarray(k_max), kx, ky,
                         delta * delta * n)
    spec = sfft.ifft(spec, axis=2, overwrite_x=True)
    out = np.empty((G, n))
    numba_kde.kde_back(x, y, bins, spec, tw_re, tw_im, own, L[1], floor, out)
    m0[sel] = out
