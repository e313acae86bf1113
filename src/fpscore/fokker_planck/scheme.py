"""The discretisation of METHOD.md §2b, defined once: the linear system of one Newton or
Picard step at one time level, for every scheme and boundary, on numpy arrays or torch
tensors alike.

At level n, with a = dt g_n^2 / 2, the implicit-Euler equation is

    F(m) = m - a [(1 + nu) Lap_h m + Q(m)] + dt f D_h m - (m^{n-1} - dt D_h f) = 0

with Q = (D_h m)^2 and nu = 0 ("centred"), nu = max(0, k |D_h m| h - 1) ("minimal": k = 1/2,
"monotone": k = 1) or Q = max(min(p-, 0)^2, max(p+, 0)^2), nu = 0 ("upwind"). Every
linearisation at an iterate x is a 5-point matrix

    A = I - a diag(1 + nu) Lap_h + diag(v) D_h + diag(e-) P- + diag(e+) P+

(P-, P+ the one-sided operators of ``lattice.one_sided``) and a right-hand side
b = m^{n-1} - dt D_h f + extra. Newton uses the (semismooth) Jacobian, so that
A x_new = A x - F(x); Picard (Algorithm 1) freezes the iterate's score, nu and upwind
side: Q(m) ~ s~ D_h m (centred, minimal, monotone) or p~ P m on the active side (upwind),
consistent with F at its fixed point. ``stencil`` turns the coefficients into the five
per-pixel fields (diagonal, north (i-1), south (i+1), west (j-1), east (j+1)), with the
boundary folded in: a neighbour outside the image is dropped ("zero") or its coefficient
moves onto the diagonal ("reflect", the ghost holds the pixel's own value).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpscore.fokker_planck.lattice import check_boundary, d_h, lap_h, one_sided
from fpscore.names import SCHEMES

#: k of nu = max(0, k |s| h - 1) for the schemes that add diffusion.
NU_SLOPE = {"minimal": 0.5, "monotone": 1.0}

#: Slack on the maximum-principle bound before a channel counts as outside it: a multiple of
#: max(1, |bound|), far above the solves' rounding (rtol 1e-10) and far below any real excursion.
BOUND_TOL = 1e-6


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: unknown value {scheme!r}, expected one of {', '.join(SCHEMES)}")
    return scheme


def _relu(z):
    return (z + abs(z)) * 0.5


def nu(s, h: float, scheme: str):
    """The artificial diffusion of ``scheme`` at scores s (0 for centred and upwind)."""
    if check_scheme(scheme) not in NU_SLOPE:
        return s * 0.0
    return _relu(NU_SLOPE[scheme] * h * abs(s) - 1.0)


def godunov(p_minus, p_plus):
    """Osher-Sethian's Q = max(min(p-, 0)^2, max(p+, 0)^2) and where the minus side is taken."""
    q_minus = (p_minus - abs(p_minus)) * 0.5
    q_plus = (p_plus + abs(p_plus)) * 0.5
    q_minus, q_plus = q_minus * q_minus, q_plus * q_plus
    minus_side = q_minus >= q_plus
    return q_minus * minus_side + q_plus * ~minus_side, minus_side


@dataclass
class Stencil5:
    """The five per-pixel coefficient fields of a 5-point matrix, boundary folded in."""

    diag: object
    north: object
    south: object
    west: object
    east: object

    def fields(self) -> tuple:
        """In the CSR column order of a row: (i-1, j), (i, j-1), (i, j), (i, j+1), (i+1, j)."""
        return self.north, self.west, self.diag, self.east, self.south


def stencil(a, h: float, visc, v, e_minus, e_plus, *, boundary: str, like) -> Stencil5:
    """Fields of A = I - a diag(visc) Lap_h + diag(v) D_h + diag(e-) P- + diag(e+) P+ on the lattice
    of ``like`` (..., H, W); a scalar or broadcastable, the others fields or None (zero)."""
    lap = a * visc / (h * h) + like * 0.0  # a field even where a and visc are scalars
    half_v = 0.0 if v is None else v / (2.0 * h)
    em = 0.0 if e_minus is None else e_minus / h
    ep = 0.0 if e_plus is None else e_plus / h
    diag = 1.0 + 4.0 * lap + 2.0 * (em - ep)
    back = -lap - half_v - em  # north and west
    fwd = -lap + half_v + ep  # south and east
    north, west = back, back * 1.0  # separate arrays: each drops (or folds) its own boundary row or column
    south, east = fwd, fwd * 1.0
    if check_boundary(boundary) == "reflect":
        diag[..., 0, :] += north[..., 0, :]
        diag[..., -1, :] += south[..., -1, :]
        diag[..., :, 0] += west[..., :, 0]
        diag[..., :, -1] += east[..., :, -1]
    north[..., 0, :] = 0.0
    south[..., -1, :] = 0.0
    west[..., :, 0] = 0.0
    east[..., :, -1] = 0.0
    return Stencil5(diag, north, south, west, east)


def linearised(x, *, a, h: float, scheme: str, boundary: str, newton: bool, dt_f=None):
    """The matrix of one step at iterate x (..., H, W) and its right-hand-side term ``extra``:
    returns (Stencil5, extra), b = m^{n-1} - dt D_h f + extra. ``a`` = dt g^2 / 2 (a scalar or
    an array broadcasting against x), ``dt_f`` = dt f^n or None; ``newton``: the Jacobian (else
    Picard's frozen linearisation)."""
    check_scheme(scheme)
    s = d_h(x, h, boundary=boundary)
    drift = 0.0 if dt_f is None else dt_f
    if scheme == "upwind":
        p_minus, p_plus = one_sided(x, h, boundary=boundary)
        q, minus_side = godunov(p_minus, p_plus)
        factor = 2.0 if newton else 1.0
        e_minus = (-factor * a) * ((p_minus - abs(p_minus)) * 0.5) * minus_side
        e_plus = (-factor * a) * ((p_plus + abs(p_plus)) * 0.5) * ~minus_side
        extra = (-a) * q if newton else None
        return stencil(a, h, 1.0, drift + 0.0 * s, e_minus, e_plus, boundary=boundary, like=x), extra
    visc = 1.0 + nu(s, h, scheme)
    if not newton:
        return stencil(a, h, visc, drift - a * s, None, None, boundary=boundary, like=x), None
    v = drift - 2.0 * a * s
    extra = (-a) * (s * s)
    active = visc > 1.0 if scheme in NU_SLOPE else None
    if active is not None and bool(active.any()):  # the semismooth part: d nu/d s = k h sign(s) where nu > 0
        kh_lap = (NU_SLOPE[scheme] * h) * lap_h(x, h, boundary=boundary) * active
        v = v - a * kh_lap * ((s > 0) * 1.0 - (s < 0) * 1.0)
        extra = extra - a * kh_lap * abs(s)
    return stencil(a, h, visc, v, None, None, boundary=boundary, like=x), extra


def residual(m, m_prev, *, a, h: float, scheme: str, boundary: str, dt_f=None, dt_df=None):
    """F(m) of the module docstring (numpy or torch, (..., H, W)): zero at the level's solution."""
    s = d_h(m, h, boundary=boundary)
    if scheme == "upwind":
        q, _ = godunov(*one_sided(m, h, boundary=boundary))
    else:
        q = s * s
    out = m - a * ((1.0 + nu(s, h, scheme)) * lap_h(m, h, boundary=boundary) + q) - m_prev
    if dt_f is not None:
        out = out + dt_f * s
    if dt_df is not None:
        out = out + dt_df
    return out


# ---- validity of a solved channel ----------------------------------------------------------------
def bound(m0: np.ndarray, boundary: str) -> tuple[np.ndarray, np.ndarray]:
    """The continuous PDE's maximum-principle interval of m per channel, m0 (..., H, W):
    [min m0, max m0] (reflect), widened to include 0 (zero: the ghosts hold 0)."""
    lo, hi = m0.min(axis=(-2, -1)), m0.max(axis=(-2, -1))
    if check_boundary(boundary) == "zero":
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    return lo, hi


@dataclass
class Validity:
    """Per channel (shape of the leading axes): m within the bound (``BOUND_TOL``), the largest
    excursion beyond it, and the share of pixel-levels (levels 1..T-1) where nu is active (for
    centred and upwind: where minimal's would be, |s| h > 2, the centred scheme's danger zone)."""

    within_bound: np.ndarray
    excess: np.ndarray
    nu_active: np.ndarray


def validity(m: np.ndarray, s: np.ndarray, h: float, scheme: str, boundary: str) -> Validity:
    """Validity of solved channels: m, s (..., T, H, W) (level 0 is m^0)."""
    m0 = m[..., 0, :, :]
    lo, hi = bound(m0, boundary)
    with np.errstate(invalid="ignore"):
        top = m[..., 1:, :, :].max(axis=(-3, -2, -1)) - hi
        low = lo - m[..., 1:, :, :].min(axis=(-3, -2, -1))
        excess = np.maximum(np.maximum(top, low), 0.0)
        excess = np.where(np.isfinite(excess), excess, np.inf)
        scale = np.maximum(1.0, np.maximum(abs(lo), abs(hi)))
        within = excess <= BOUND_TOL * scale
    slope = NU_SLOPE.get(scheme, NU_SLOPE["minimal"])
    with np.errstate(invalid="ignore"):
        active = (slope * h * np.abs(s[..., 1:, :, :]) > 1.0).mean(axis=(-3, -2, -1))
    return Validity(within_bound=within, excess=excess, nu_active=active)
