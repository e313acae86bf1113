"""Initial log-density m^0 of METHOD.md §4: a binned 2-D Gaussian KDE.

m^0_ij = log p(I_ij, I_ji), p the Gaussian KDE of the HW pairs (I_ij, I_ji) with
Scott's rule, exactly as scipy.stats.gaussian_kde defines it (kernel covariance
= unbiased data covariance * n^(-1/3), full 2 x 2, correlation included), but
computed in O(HW + B^2 log B): linear binning of the pairs onto a B x B grid of
nodes over [0, 1]^2, an FFT convolution with the Gaussian kernel (its exact
Fourier transform on a periodic grid padded by 8 kernel standard deviations, so
wrapped-around mass is below exp(-32)), bilinear interpolation back to the
pairs, a floor, the log.

The kernel covariance's eigenvalues are floored at one grid spacing squared:
inactive for real images (the kernel spans many cells) and it keeps a constant
or diagonal-symmetric channel (singular covariance, where gaussian_kde fails)
finite.
"""
from __future__ import annotations

import numpy as np
from numpy.fft import fft, ifft, irfft, rfft  # numpy's pocketfft: scipy.fft would add ~0.1 s to every score job's start

_TRUNCATE_STD = 8.0
_SPECTRAL_CUTOFF = 40.0  # exp(-40) ~ 4e-18: kernel transform values below this are taken as zero


def scott_kernel_covariance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kernel covariance of gaussian_kde with Scott's rule: cov(x, y) * n^(-2/(d+4)), d = 2."""
    n = x.size
    return np.cov(np.vstack([x, y]), bias=False) * n ** (-1.0 / 3.0)


def _linear_bins(x: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower grid node index (clipped to bins-2) and fractional offset in [0, 1]."""
    pos = np.clip(x, 0.0, 1.0) * (bins - 1)
    lo = np.minimum(np.floor(pos).astype(np.intp), bins - 2)
    return lo, pos - lo


def kde_density(x: np.ndarray, y: np.ndarray, bins: int = 256) -> np.ndarray:
    """Binned Gaussian KDE (Scott) of the points (x, y) in [0,1]^2, evaluated at those points."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    n = x.size
    delta = 1.0 / (bins - 1)
    cov = scott_kernel_covariance(x, y) if n > 1 else np.zeros((2, 2))
    evals, evecs = np.linalg.eigh(cov)
    cov = (evecs * np.maximum(evals, delta * delta)) @ evecs.T
    # Linear binning: each point spreads unit mass over its 4 surrounding nodes.
    ix, wx = _linear_bins(x, bins)
    iy, wy = _linear_bins(y, bins)
    counts = np.zeros(bins * bins)
    for dx, fx in ((0, 1.0 - wx), (1, wx)):
        for dy, fy in ((0, 1.0 - wy), (1, wy)):
            counts += np.bincount((ix + dx) * bins + iy + dy, weights=fx * fy, minlength=bins * bins)
    # Circular convolution on an L x L periodic grid with the kernel's exact Fourier transform
    # exp(-w^T cov w / 2) (sampling aliasing ~exp(-2 pi^2 sigma^2 / delta^2) < 1e-8 with sigma >= delta).
    # L >= B + 8 sigma / delta per axis keeps wrapped contributions below exp(-32) of the peak.
    reach = np.ceil(_TRUNCATE_STD * np.sqrt(np.diag(cov)) / delta).astype(int)
    L = [fast_length(bins + int(r)) for r in reach]
    # The kernel's transform is below exp(-_SPECTRAL_CUTOFF) outside |w| <= k_max (smallest eigenvalue
    # bound): those frequencies are taken as zero. rfft2 / irfft2 split into one-dimensional transforms
    # that skip them: the column transforms run on the kept band of columns only, the inverse row
    # transforms on the B rows that are read back (the same values to rounding, ~1.5x faster).
    k_max = np.sqrt(2.0 * _SPECTRAL_CUTOFF / np.linalg.eigvalsh(cov)[0])
    kx = 2 * np.pi * np.fft.fftfreq(L[0], d=delta)
    ky = 2 * np.pi * np.fft.rfftfreq(L[1], d=delta)
    ky = ky[: np.count_nonzero(ky <= k_max)]  # rfftfreq is increasing: the band is a leading block
    spec = rfft(counts.reshape(bins, bins), n=L[1], axis=1)[:, :ky.size]
    spec = fft(spec, n=L[0], axis=0)
    kx, ky = kx[:, None], ky[None, :]
    kernel = np.exp(-0.5 * (cov[0, 0] * kx**2 + 2 * cov[0, 1] * kx * ky + cov[1, 1] * ky**2)) / (delta * delta * n)
    kernel[np.abs(kx[:, 0]) > k_max] = 0.0
    spec = ifft(spec * kernel, axis=0)[:bins]
    grid = irfft(spec, n=L[1], axis=1)[:, :bins]
    # Bilinear interpolation back to the points.
    return ((1 - wx) * (1 - wy) * grid[ix, iy] + (1 - wx) * wy * grid[ix, iy + 1]
            + wx * (1 - wy) * grid[ix + 1, iy] + wx * wy * grid[ix + 1, iy + 1])


def fast_length(n: int) -> int:
    """The smallest 5-smooth length >= n (2^a 3^b 5^c: fast real FFTs; scipy.fft.next_fast_len(n, real=True))."""
    best, p5 = None, 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            length = p35 * (1 << max(0, (n - 1) // p35).bit_length())  # times the smallest power of 2 reaching n
            best = length if best is None or length < best else best
            p35 *= 3
        p5 *= 5
    return best


def initial_log_density(channel: np.ndarray, bins: int = 256, floor: float = 1e-300) -> np.ndarray:
    """m^0 (H x H) of one square channel with values in [0, 1]: log of the KDE at (I_ij, I_ji)."""
    img = np.asarray(channel, dtype=np.float64)
    if img.ndim != 2 or img.shape[0] != img.shape[1]:
        raise ValueError(f"initial density: expected a square H x H channel, got shape {img.shape}")
    if int(bins) != bins or bins < 8:
        raise ValueError(f"kde_bins: expected an integer >= 8, got {bins!r}")
    p = kde_density(img.ravel(), img.T.ravel(), int(bins))
    return np.log(np.maximum(p, floor)).reshape(img.shape)
