"""Method of manufactured solutions for the discrete log-density FP solve (METHOD.md §2-5).

The unit square carries M x M interior nodes x_i = (i+1) h, h = 1/(M+1); the
manufactured m vanishes on the boundary, so the zero ghost cells of the lattice
are the exact boundary values. A source q makes m an exact solution; Algorithm 1
(Picard + implicit Euler) with spsolve must then converge at order 2 in h
(centred stencil) and order 1 in dt (implicit Euler).

Measured on this implementation (errors max-norm over all levels and nodes):
  h-order  M = 8, 16, 32 (h = 1/9, 1/17, 1/33): errors 2.4e-2, 6.8e-3, 1.8e-3, orders 1.99, 2.00
  dt-order N = 11, 21, 41, 81 (dt halving): errors 1.5e-2, 8.0e-3, 4.0e-3, 2.0e-3, orders 0.95, 0.97, 0.99
asserted within 0.1 of 2 and of 1.
"""
from __future__ import annotations

import numpy as np

from fpscore.fokker_planck.lattice import d_h, lap_h
from fpscore.fokker_planck.picard import solve_channel
from fpscore.solvers.direct import SpsolveSolver

SIGMA = 2.0
BETA = 0.5  # drift amplitude


def _grid(M):
    h = 1.0 / (M + 1)
    x = (np.arange(M) + 1) * h
    X, Y = np.meshgrid(x, x, indexing="ij")  # row index i <-> x, column j <-> y
    return h, X, Y


def _fields(X, Y):
    """phi = sin(pi x) sin(pi y) with D phi and Lap phi; drift shape f0 with D f0 (both vanish on the boundary)."""
    pi = np.pi
    phi = np.sin(pi * X) * np.sin(pi * Y)
    dphi = pi * np.cos(pi * X) * np.sin(pi * Y) + pi * np.sin(pi * X) * np.cos(pi * Y)
    lphi = -2 * pi**2 * phi
    f0 = BETA * np.sin(pi * X) * np.sin(2 * pi * Y)
    df0 = BETA * (pi * np.cos(pi * X) * np.sin(2 * pi * Y) + 2 * pi * np.sin(pi * X) * np.cos(2 * pi * Y))
    return phi, dphi, lphi, f0, df0


def _solve(M, times, a, da, discrete_source):
    """Exact m = a(t) phi, drift f = (1 + t) f0; returns the max error of Algorithm 1's m."""
    h, X, Y = _grid(M)
    phi, dphi, lphi, f0, df0 = _fields(X, Y)
    g = SIGMA ** times
    exact = np.stack([a(t) * phi for t in times])
    drift = np.stack([(1 + t) * f0 for t in times])
    if discrete_source:  # spatial operators discrete: only the time error remains
        Dm, Lm, Df = (d_h(exact, h, boundary="zero"), lap_h(exact, h, boundary="zero"),
                      d_h(drift, h, boundary="zero"))
    else:                # continuous operators: only the spatial error remains (a linear in t)
        Dm = np.stack([a(t) * dphi for t in times])
        Lm = np.stack([a(t) * lphi for t in times])
        Df = np.stack([(1 + t) * df0 for t in times])
    mt = np.stack([da(t) * phi for t in times])
    g2 = (g**2)[:, None, None]
    source = mt - (0.5 * g2 * Lm + 0.5 * g2 * Dm**2 - drift * Dm - Df)
    res = solve_channel(exact[0], times, g, h, SpsolveSolver(rtol=1e-12), tol=1e-13, max_iter=100,
                        scheme="centred", boundary="zero", drift=drift, source=source)
    assert res.converged
    return np.abs(res.m - exact).max()


def _orders(errors, steps):
    return np.log(np.array(errors[:-1]) / errors[1:]) / np.log(np.array(steps[:-1]) / steps[1:])


def test_space_order_two():
    Ms = [8, 16, 32]
    times = np.linspace(0.0, 0.5, 5)
    errors = [_solve(M, times, lambda t: 1 + t, lambda t: 1.0, discrete_source=False) for M in Ms]
    orders = _orders(errors, [1.0 / (M + 1) for M in Ms])
    assert np.all(np.abs(orders - 2.0) < 0.1), (errors, orders)


def test_time_order_one():
    Ns = [11, 21, 41, 81]
    a, da = (lambda t: 1 + np.sin(2 * t)), (lambda t: 2 * np.cos(2 * t))
    errors = [_solve(8, np.linspace(0.0, 1.0, N), a, da, discrete_source=True) for N in Ns]
    orders = _orders(errors, [1.0 / (N - 1) for N in Ns])
    assert np.all(np.abs(orders - 1.0) < 0.1), (errors, orders)
