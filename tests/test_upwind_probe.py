"""The upwind probe's monotone term: consistent with (D m)^2, zero at extrema, monotone; its solver
meets its own equation and keeps the maximum principle on a channel the centred scheme flags."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import upwind_probe as probe  # noqa: E402
from test_fp_breakdown import _low_contrast_crop  # noqa: E402

from fpscore.fokker_planck.kde import initial_log_density  # noqa: E402
from fpscore.fokker_planck.lattice import d_h, lap_h  # noqa: E402
from fpscore.fokker_planck.params import FPParams  # noqa: E402


def test_godunov_term():
    p = np.linspace(-3, 3, 13)
    val, d_minus, d_plus = probe.godunov(p, p)
    np.testing.assert_allclose(val, p * p)  # consistent: equal one-sided slopes give (D m)^2
    np.testing.assert_allclose(d_minus + d_plus, 2 * p)
    rng = np.random.default_rng(0)
    pm, pp = rng.uniform(0, 5, 50), rng.uniform(-5, 0, 50)
    assert (probe.godunov(pm, pp)[0] == 0).all()  # at a maximum (p- >= 0 >= p+)
    pm, pp = rng.standard_normal(1000) * 3, rng.standard_normal(1000) * 3
    _, d_minus, d_plus = probe.godunov(pm, pp)
    assert (d_minus <= 0).all() and (d_plus >= 0).all()  # monotone in every neighbour


def test_one_sided_matrices_are_the_differences():
    u = np.random.default_rng(1).standard_normal((5, 6))
    p_m, p_p = probe.one_sided_matrices(5, 6, h=0.5)
    pad = np.pad(u, 1)
    back = (2 * u - pad[:-2, 1:-1] - pad[1:-1, :-2]) / 0.5
    fwd = (pad[2:, 1:-1] + pad[1:-1, 2:] - 2 * u) / 0.5
    np.testing.assert_allclose((p_m @ u.ravel()).reshape(5, 6), back)
    np.testing.assert_allclose((p_p @ u.ravel()).reshape(5, 6), fwd)
    np.testing.assert_allclose((back + fwd) / 2, d_h(u, 0.5))


def test_upwind_keeps_the_maximum_principle_where_centred_blows_up():
    params = FPParams()
    m0 = initial_log_density(_low_contrast_crop()[0, 0])
    m, ok = probe.solve_upwind(m0, params.times(), params.g())
    assert ok and np.isfinite(m).all()
    assert m.min() >= min(0.0, m0.min()) - 1e-9 and m.max() <= max(0.0, m0.max()) + 1e-9
    t, g = params.times(), params.g()
    p_m, p_p = probe.one_sided_matrices(*m0.shape)
    for n in (1, t.size - 1):  # each level solves its implicit-Euler equation
        c = 0.5 * (t[n] - t[n - 1]) * g[n] ** 2
        x = m[n].ravel()
        residual = x - m[n - 1].ravel() - c * (lap_h(m[n]).ravel() + probe.godunov(p_m @ x, p_p @ x)[0])
        assert np.abs(residual).max() <= 1e-8 * np.abs(x).max()
