"""Initial log-density m^0 (METHOD.md §4) against scipy.stats.gaussian_kde.

Tolerance: the binned KDE differs from the exact sum only by linear binning and
bilinear interpolation, both second order in grid spacing / kernel width
(delta / sigma_k ~ 1/20 at B = 256 on these images), so the log-density error
is ~1e-3. Measured max |m^0 - log gaussian_kde|: camera 16x16 7.0e-4, 32x32
8.6e-4; asserted < 2e-3. Doubling B must cut the error by ~4 (second order),
asserted > 2.5.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gaussian_kde
from skimage import data, transform

from fpscore.fokker_planck.kde import initial_log_density


def _camera(H):
    return transform.resize(data.camera() / 255.0, (H, H), anti_aliasing=True)


def _reference(img):
    pts = np.vstack([img.ravel(), img.T.ravel()])
    return np.log(gaussian_kde(pts, bw_method="scott")(pts)).reshape(img.shape)


@pytest.mark.parametrize("H", [16, 32])
def test_matches_gaussian_kde(H):
    img = _camera(H)
    err = np.abs(initial_log_density(img, bins=256) - _reference(img)).max()
    assert err < 2e-3, err


def test_binning_error_is_second_order():
    img = _camera(32)
    ref = _reference(img)
    e128 = np.abs(initial_log_density(img, bins=128) - ref).max()
    e256 = np.abs(initial_log_density(img, bins=256) - ref).max()
    assert e128 / e256 > 2.5, (e128, e256)


def test_uses_transposed_pairs():
    img = np.random.default_rng(0).uniform(size=(12, 12))
    m0 = initial_log_density(img)
    # a random image is far from symmetric: pairs (I_ij, I_ij) or (I_ij, I_ij+1) would miss by O(1)
    pts = np.vstack([img.ravel(), img.T.ravel()])
    ref = np.log(gaussian_kde(pts)(pts)).reshape(12, 12)
    assert np.abs(m0 - ref).max() < 1e-3


def test_constant_channel_is_finite():
    m0 = initial_log_density(np.full((8, 8), 0.3))
    assert np.all(np.isfinite(m0)) and np.ptp(m0) == 0


def test_non_square_rejected():
    with pytest.raises(ValueError, match="square"):
        initial_log_density(np.zeros((4, 5)))


def test_fast_length_is_scipys_real_fft_length():
    from scipy.fft import next_fast_len

    from fpscore.fokker_planck.kde import fast_length

    assert [fast_length(n) for n in range(1, 3000)] == [next_fast_len(n, real=True) for n in range(1, 3000)]
