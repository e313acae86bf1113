"""The numba-compiled Newton and BiCGStab kernels of the batched engine: the stepwise engine's
BiCGStab (``_bicgstab1`` per system, ``_bicgstab`` over a batch; ``batched_numba`` wraps it) and
the fused CPU path (no Python per level or per system). Numba's cache checks only the source file
of the function it compiled (not of those it calls), so a kernel and all it calls must live in one
file for a changed kernel never to run from a stale cache. The fused loop (``_newton_channel``) and
the stepwise ``_bicgstab`` both call ``_bicgstab1`` (and its ``_apply``, ``_dot``), so the Newton and
BiCGStab kernels share this file; the KDE's, which call none of them, are in ``numba_kde``.

``newton_channels`` runs the whole per-level Newton iteration of METHOD.md §5b for K channels
from their m^0, one channel at a time (in parallel over channels with ``threads`` > 1, numba's
prange): at every level and Newton iteration the 5-point linearisation of §2b (every scheme and
boundary, term for term as ``fpscore.fokker_planck.scheme.linearised`` and ``stencil`` compute it:
the same operations in the same order, so the same coefficients to the last bit), BiCGStab warm
started from the iterate (``_bicgstab1``, the stepwise engine's per-system kernel: the same
iterates), the true relative residual, the rounds of the stepwise engine
(a system that misses rtol is solved again from where it stopped), the relative change and the
stopping tests of ``fpscore.fokker_planck.newton`` (``newton_done``, ``newton_diverging``); then
m^n, its score D_h m^n and the channel's validity (``scheme.validity``) straight into the output
arrays (float32 or float64: no (N, C, T, H, W) temporaries). Every linear solve leaves one record
(outer iteration, level, Krylov iterations, initial and final residual, assembly and solve
seconds, timed by the monotonic clock inside the loop).

What the compiled loop does not do it hands back: a channel with a system that still misses rtol
after the rounds (today's SuperLU fallback) or with a non-finite iterate returns ``HANDOVER``, and
the engine solves that channel again with the stepwise engine (the torch driver: BiCGStab, then
SuperLU, then the breakdown flag), so those semantics are exactly today's.

Compiled with cache=True; ``load`` compiles or loads every kernel for the types the engine calls
them with, so that this one-time cost of a process is paid before anything is timed.
"""
from __future__ import annotations

import math
import time

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from fpscore.solvers import numba_kde

# fastmath "reassoc" and "contract" only: NaN and inf keep their IEEE meaning
_FLAGS = {"fastmath": {"reassoc", "contract"}, "error_model": "numpy", "cache": True, "nogil": True}


# Loops index views from 0 (``u[W:]``, then ``us[k]``), never ``u[k + W]``: with an offset computed at run
# time numba guards every index against wraparound and the loops do not vectorise (measured 3x slower).
@numba.njit(**_FLAGS)
def _add_product(out, c, u):
    """out += c * u, element by element (equal lengths)."""
    for k in range(out.size):
        out[k] += c[k] * u[k]


@numba.njit(**_FLAGS)
def _apply(u, d, pi, mi, pj, mj, W, out):
    """out = A u of one system (per-pixel coefficients; a neighbour outside the image has coefficient 0),
    the terms in the order of torch's ``batched_ops._apply``: diagonal, (i+1, j), (i-1, j), (i, j+1),
    (i, j-1). One pass over the rows with both neighbours in the image (a sum of five products), the
    first and last rows on their own; on lattices of fewer than three rows, five passes."""
    n = u.size
    m = n - 2 * W
    if m < W:
        for k in range(n):
            out[k] = d[k] * u[k]
        _add_product(out[:n - W], pi[:n - W], u[W:])
        _add_product(out[W:], mi[W:], u[:n - W])
        _add_product(out[:n - 1], pj[:n - 1], u[1:])
        _add_product(out[1:], mj[1:], u[:n - 1])
        return
    o, dd, uc = out[W:n - W], d[W:n - W], u[W:n - W]
    ps, us, ms, un = pi[W:n - W], u[2 * W:], mi[W:n - W], u[:m]
    pe, ue, mw, uw = pj[W:n - W], u[W + 1:n - W + 1], mj[W:n - W], u[W - 1:n - W - 1]
    for k in range(m):
        o[k] = dd[k] * uc[k] + ps[k] * us[k] + ms[k] * un[k] + pe[k] * ue[k] + mw[k] * uw[k]
    # the first row: no (i-1, j); its (i, j-1) from column 1 on
    o, dd, uc, ps, us, pe, ue = out[:W], d[:W], u[:W], pi[:W], u[W:2 * W], pj[:W], u[1:W + 1]
    for k in range(W):
        o[k] = dd[k] * uc[k] + ps[k] * us[k] + pe[k] * ue[k]
    o, mw, uw = out[1:W], mj[1:W], u[:W - 1]
    for k in range(W - 1):
        o[k] += mw[k] * uw[k]
    # the last row: no (i+1, j); its (i, j+1) up to column W - 2
    o, dd, uc, ms, un, mw, uw = out[n - W:], d[n - W:], u[n - W:], mi[n - W:], u[n - 2 * W:n - W], mj[n - W:], \
        u[n - W - 1:n - 1]
    for k in range(W):
        o[k] = dd[k] * uc[k] + ms[k] * un[k] + mw[k] * uw[k]
    o, pe, ue = out[n - W:n - 1], pj[n - W:n - 1], u[n - W + 1:]
    for k in range(W - 1):
        o[k] += pe[k] * ue[k]


@numba.njit(**_FLAGS)
def _dot(a, b):
    s = 0.0
    for k in range(a.size):
        s += a[k] * b[k]
    return s


@numba.njit(**_FLAGS)
def _bicgstab1(d, cpi, cmi, cpj, cmj, bi, xi, tol, max_it, W, r, rhat, p, v, t):
    """BiCGStab on one system from xi (updated in place), work vectors r, rhat, p, v, t (n,);
    returns (iterations, initial relative residual). Also the fused engine's solver.
    Every vector operation its own vectorised pass (fusing the updates with the inner products that
    follow them measured slower)."""
    n = bi.size
    its = 0
    bnorm2 = _dot(bi, bi)
    if not bnorm2 > 0:
        bnorm2 = 1.0
    _apply(xi, d, cpi, cmi, cpj, cmj, W, r)
    for k in range(n):
        r[k] = bi[k] - r[k]
    rr = _dot(r, r)
    init = math.sqrt(rr / bnorm2)
    limit = tol * tol * bnorm2
    if not rr > limit:  # solved already, or non-finite: frozen
        return its, init
    rhat[:] = r
    p[:] = r
    rho = rr
    for _ in range(max_it):
        _apply(p, d, cpi, cmi, cpj, cmj, W, v)
        alpha = rho / _dot(rhat, v)
        for k in range(n):
            r[k] -= alpha * v[k]  # r is s from here
        _apply(r, d, cpi, cmi, cpj, cmj, W, t)
        tt = _dot(t, t)
        omega = _dot(t, r) / tt if tt > 0 else 0.0
        for k in range(n):
            xi[k] += alpha * p[k] + omega * r[k]
            r[k] -= omega * t[k]
        its += 1
        rr = _dot(r, r)
        if not (rr > limit and omega != 0):
            break
        rho_new = _dot(rhat, r)
        beta = (rho_new / rho) * (alpha / omega)
        for k in range(n):
            p[k] = (p[k] - omega * v[k]) * beta + r[k]
        rho = rho_new
    return its, init


@numba.njit(**_FLAGS)
def _bicgstab(diag, pi, mi, pj, mj, b, x, tol, max_it, W, its, init):
    B, n = b.shape
    r, rhat, p, v, t = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for i in range(B):
        k_its, init[i] = _bicgstab1(diag[i], pi[i], mi[i], pj[i], mj[i], b[i], x[i], tol, max_it, W, r, rhat, p, v, t)
        its[i] += k_its



# exact IEEE arithmetic where the result must equal the numpy definition operation for operation
_EXACT = {"error_model": "numpy", "cache": True, "nogil": True}

SCHEME_CODES = {"centred": 0, "minimal": 1, "monotone": 2, "upwind": 3}
_CENTRED, _MINIMAL, _MONOTONE, _UPWIND = 0, 1, 2, 3

#: Channel status: solved here, or handed back to the stepwise engine (a system BiCGStab could not
#: bring to rtol in the rounds, or a non-finite iterate).
DONE, HANDOVER = 0, 1
#: Why a level did not converge (the first such level of a channel is reported).
CAUSE_NONE, CAUSE_MAX_ITER, CAUSE_DIVERGING = 0, 1, 2
#: Columns of the per-channel integer outputs: status, converged, most Newton iterations at a
#: level, linear solves, records written, first unconverged level, its cause.
CH_STATUS, CH_CONVERGED, CH_MOST, CH_SOLVES, CH_RECORDS, CH_FLAG_LEVEL, CH_FLAG_CAUSE = range(7)
#: Columns of the per-channel float outputs: within the bound (0/1), excess beyond it, nu active share.
CHF_WITHIN, CHF_EXCESS, CHF_NU_ACTIVE = range(3)
#: Columns of a solve record: outer iteration, level, Krylov iterations (int); initial and final
#: residual, assembly and solve seconds (float).
REC_OUTER, REC_LEVEL, REC_ITS = range(3)
REC_INIT, REC_FINAL, REC_ASSEMBLE, REC_SOLVE = range(4)


_CLOCK_MONOTONIC = getattr(time, "CLOCK_MONOTONIC", 1)  # 1 on Linux, 6 on macOS (POSIX systems only)


@intrinsic
def _clock_ns(typingctx):
    """clock_gettime(CLOCK_MONOTONIC) in ns: a clock inside compiled code (numba has none)."""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        spec = cgutils.alloca_once(builder, ir.ArrayType(i64, 2))
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32, [i32, spec.type]),
                                            "clock_gettime")
        builder.call(fn, [ir.Constant(i32, _CLOCK_MONOTONIC), spec])
        zero = ir.Constant(i32, 0)
        sec = builder.load(builder.gep(spec, [zero, zero]))
        nsec = builder.load(builder.gep(spec, [zero, ir.Constant(i32, 1)]))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return sig, codegen


@numba.njit(**_EXACT)
def clock_ns():
    return _clock_ns()


# ---- the lattice (fpscore.fokker_planck.lattice, term for term) ----------------------------------
@numba.njit(**_EXACT)
def _score(x, H, W, h, reflect, out, fwd, bwd):
    """out = D_h x (``lattice.d_h``)."""
    _shifted_sums(x, H, W, reflect, fwd, bwd)
    inv2h = 1.0 / (2.0 * h)
    for k in range(H * W):
        out[k] = (fwd[k] - bwd[k]) * inv2h


@numba.njit(**_EXACT)
def _shifted_sums(x, H, W, reflect, fwd, bwd):
    """fwd, bwd = ``lattice.shifted_sums(x)``: the same shifted adds in the same order (row shift,
    column shift, then the reflected ghosts), as whole-array passes over views that vectorise."""
    n = H * W
    f, xs = fwd[:n - W], x[W:]
    for k in range(n - W):
        f[k] = xs[k]
    f = fwd[n - W:]
    for k in range(W):
        f[k] = 0.0
    g = bwd[:W]
    for k in range(W):
        g[k] = 0.0
    g, xs = bwd[W:], x[:n - W]
    for k in range(n - W):
        g[k] = xs[k]
    for i in range(H):
        f, xs = fwd[i * W:i * W + W - 1], x[i * W + 1:i * W + W]
        for j in range(W - 1):
            f[j] += xs[j]
        g, xs = bwd[i * W + 1:i * W + W], x[i * W:i * W + W - 1]
        for j in range(W - 1):
            g[j] += xs[j]
    if reflect:
        f, xs = fwd[n - W:], x[n - W:]
        for k in range(W):
            f[k] += xs[k]
        for i in range(H):
            fwd[i * W + W - 1] += x[i * W + W - 1]
        g, xs = bwd[:W], x[:W]
        for k in range(W):
            g[k] += xs[k]
        for i in range(H):
            bwd[i * W] += x[i * W]


@numba.njit(**_EXACT)
def _linearise(x, m_prev, H, W, h, a, scheme, nu_slope, reflect, diag, plus_i, minus_i, plus_j, minus_j, b, fwd,
               bwd):
    """Newton's matrix and right-hand side at iterate x (``scheme.linearised(newton=True)`` and
    ``scheme.stencil``, no drift), operation for operation: the five coefficient fields with the
    boundary folded in, and b = m^{n-1} + extra. Branch-free per pixel (selects), then the border."""
    n = H * W
    _shifted_sums(x, H, W, reflect, fwd, bwd)
    inv2h = 1.0 / (2.0 * h)
    invh2 = 1.0 / (h * h)
    hh = h * h
    two_h = 2.0 * h
    kh = nu_slope * h  # scheme.NU_SLOPE of minimal or monotone
    # the fields without the border: diag, and back (north and west) in minus_i, forth (south, east) in plus_i
    if scheme == _UPWIND:
        lap = a * 1.0 / hh
        for k in range(n):
            u = x[k]
            p_minus = (2.0 * u - bwd[k]) / h
            p_plus = (fwd[k] - 2.0 * u) / h
            q_minus = (p_minus - abs(p_minus)) * 0.5
            q_plus = (p_plus + abs(p_plus)) * 0.5
            qm2 = q_minus * q_minus
            qp2 = q_plus * q_plus
            minus = qm2 >= qp2
            em = ((-2.0 * a) * q_minus) / h if minus else 0.0
            ep = 0.0 if minus else ((-2.0 * a) * q_plus) / h
            q = qm2 if minus else qp2
            diag[k] = 1.0 + 4.0 * lap + 2.0 * (em - ep)
            minus_i[k] = -lap - 0.0 - em
            plus_i[k] = -lap + 0.0 + ep
            b[k] = m_prev[k] + (-a) * q
    else:
        nu_on = scheme == _MINIMAL or scheme == _MONOTONE
        for k in range(n):
            f = fwd[k]
            g = bwd[k]
            s = (f - g) * inv2h
            z = kh * abs(s) - 1.0
            visc = 1.0 + (z + abs(z)) * 0.5 if nu_on else 1.0
            v = 0.0 - 2.0 * a * s
            extra = (-a) * (s * s)
            # the semismooth part where nu > 0: d nu / d s = k h sign(s)
            kh_lap = kh * (((f + g) - 4.0 * x[k]) * invh2)
            sign = (1.0 if s > 0 else 0.0) - (1.0 if s < 0 else 0.0)
            active = visc > 1.0
            v = v - a * kh_lap * sign if active else v
            extra = extra - a * kh_lap * abs(s) if active else extra
            lap = a * visc / hh
            half_v = v / two_h
            diag[k] = 1.0 + 4.0 * lap + 2.0 * (0.0 - 0.0)
            minus_i[k] = -lap - half_v - 0.0
            plus_i[k] = -lap + half_v + 0.0
            b[k] = m_prev[k] + extra
    for k in range(n):
        minus_j[k] = minus_i[k]
        plus_j[k] = plus_i[k]
    # the border: the reflected ghosts' coefficients onto the diagonal (rows, then columns), then the
    # neighbours outside the image dropped
    if reflect:
        for k in range(W):
            diag[k] += minus_i[k]
        for k in range(n - W, n):
            diag[k] += plus_i[k]
        for i in range(H):
            diag[i * W] += minus_j[i * W]
            diag[i * W + W - 1] += plus_j[i * W + W - 1]
    for k in range(W):
        minus_i[k] = 0.0
    for k in range(n - W, n):
        plus_i[k] = 0.0
    for i in range(H):
        minus_j[i * W] = 0.0
        plus_j[i * W + W - 1] = 0.0


@numba.njit(**_FLAGS)
def _true_residual(diag, plus_i, minus_i, plus_j, minus_j, x, b, W, work):
    """||b - A x|| / ||b|| (||A x - b|| where b = 0), as ``batched_ops.relative_residual``."""
    _apply(x, diag, plus_i, minus_i, plus_j, minus_j, W, work)
    for k in range(b.size):
        work[k] = b[k] - work[k]
    rn = math.sqrt(_dot(work, work))
    bn = math.sqrt(_dot(b, b))
    return rn / bn if bn > 0 else rn


@numba.njit(**_FLAGS)
def _rel_change(new, old):
    """||new - old|| / max(||old||, tiny), the relative change of a Newton step."""
    num = 0.0
    den = 0.0
    for k in range(new.size):
        dd = new[k] - old[k]
        num += dd * dd
        den += old[k] * old[k]
    return math.sqrt(num) / max(math.sqrt(den), 2.2250738585072014e-308)


@numba.njit(**_EXACT)
def _all_finite(x):
    for k in range(x.size):
        if not math.isfinite(x[k]):
            return False
    return True


# ---- one channel through every level -------------------------------------------------------------
@numba.njit(**_EXACT)
def _newton_channel(m0, a_levels, H, W, h, scheme, reflect, rtol, max_it, rounds, safety, tol, max_iter, predicted,
                    monotone, bound_zero, valid_slope, bound_tol, nu_slope, m_out, s_out, rec_i, rec_f, ch_i, ch_f):
    """Per-level Newton for one channel (module docstring); m0 (n,), m_out/s_out (T, n); records into
    rec_i (R, 3), rec_f (R, 4); the channel's summary into ch_i (7,), ch_f (3,)."""
    n = H * W
    T = a_levels.size
    x = np.empty(n)
    x_new = np.empty(n)
    m1 = np.empty(n)  # m^{n-1}
    m2 = np.empty(n)  # m^{n-2}
    b = np.empty(n)
    diag, plus_i, minus_i, plus_j, minus_j = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    r, rhat, p, v, t = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    s = np.empty(n)
    ch_i[:] = 0
    ch_i[CH_CONVERGED] = 1
    # level 0: m^0 and its score; the maximum-principle bound of the channel
    lo = np.inf
    hi = -np.inf
    for k in range(n):
        m1[k] = m0[k]
        m_out[0, k] = m0[k]
        lo = min(lo, m0[k])
        hi = max(hi, m0[k])
    if bound_zero:
        lo = min(lo, 0.0)
        hi = max(hi, 0.0)
    _score(m1, H, W, h, reflect, s, r, rhat)
    for k in range(n):
        s_out[0, k] = s[k]
    top = -np.inf
    low = np.inf
    nan_seen = False
    active_count = 0
    records = 0
    for lev in range(1, T):
        a = a_levels[lev]
        if lev == 1:
            for k in range(n):
                x[k] = m1[k]
        else:
            for k in range(n):
                x[k] = 2.0 * m1[k] - m2[k]
        previous = np.inf
        done = False
        grew = False
        first_record = records
        j = 0
        for j in range(1, max_iter + 1):
            t0 = _clock_ns()
            _linearise(x, m1, H, W, h, a, scheme, nu_slope, reflect, diag, plus_i, minus_i, plus_j, minus_j, b, r,
                       rhat)
            t1 = _clock_ns()
            for k in range(n):
                x_new[k] = x[k]
            its, init = _bicgstab1(diag, plus_i, minus_i, plus_j, minus_j, b, x_new, safety * rtol, max_it, W,
                                   r, rhat, p, v, t)
            final = _true_residual(diag, plus_i, minus_i, plus_j, minus_j, x_new, b, W, r)
            for _ in range(rounds - 1):  # on from where it stopped (from the warm start after a breakdown)
                if final <= rtol:
                    break
                if not _all_finite(x_new):
                    for k in range(n):
                        x_new[k] = x[k]
                more, _init = _bicgstab1(diag, plus_i, minus_i, plus_j, minus_j, b, x_new, safety * rtol, max_it, W,
                                         r, rhat, p, v, t)
                its += more
                final = _true_residual(diag, plus_i, minus_i, plus_j, minus_j, x_new, b, W, r)
            t2 = _clock_ns()
            if not final <= rtol:  # NaN included: the stepwise engine's direct solve takes over
                ch_i[CH_STATUS] = HANDOVER
                return
            change = _rel_change(x_new, x)
            if not math.isfinite(change):
                ch_i[CH_STATUS] = HANDOVER
                return
            rec_i[records, REC_OUTER] = j
            rec_i[records, REC_LEVEL] = lev
            rec_i[records, REC_ITS] = its
            rec_f[records, REC_INIT] = init
            rec_f[records, REC_FINAL] = final
            rec_f[records, REC_ASSEMBLE] = (t1 - t0) * 1e-9
            rec_f[records, REC_SOLVE] = (t2 - t1) * 1e-9
            records += 1
            for k in range(n):
                x[k] = x_new[k]
            # newton.newton_done and newton_diverging, the previous change as they see it
            done = change < tol
            if predicted and not done and math.isfinite(previous):
                done = change * (change / previous) ** 2 < tol
            grew = monotone and not done and math.isfinite(previous) and not change < previous
            previous = change
            if done or grew:
                break
        ch_i[CH_MOST] = max(ch_i[CH_MOST], j)
        if not done:
            ch_i[CH_CONVERGED] = 0
            if ch_i[CH_FLAG_LEVEL] == 0:
                ch_i[CH_FLAG_LEVEL] = lev
                ch_i[CH_FLAG_CAUSE] = CAUSE_DIVERGING if grew else CAUSE_MAX_ITER
            for q in range(first_record, records):
                rec_i[q, REC_LEVEL] = -lev  # rows of an unconverged level (the engine flags them)
        ch_i[CH_SOLVES] += records - first_record
        _score(x, H, W, h, reflect, s, r, rhat)
        for k in range(n):
            m2[k] = m1[k]
            m1[k] = x[k]
            m_out[lev, k] = x[k]
            s_out[lev, k] = s[k]
            if x[k] != x[k]:
                nan_seen = True
            top = max(top, x[k])
            low = min(low, x[k])
            if valid_slope * h * abs(s[k]) > 1.0:
                active_count += 1
    ch_i[CH_RECORDS] = records
    # scheme.validity
    excess = max(max(top - hi, lo - low), 0.0)
    if nan_seen or not math.isfinite(excess):
        excess = np.inf
    scale = max(1.0, max(abs(lo), abs(hi)))
    ch_f[CHF_WITHIN] = 1.0 if excess <= bound_tol * scale else 0.0
    ch_f[CHF_EXCESS] = excess
    ch_f[CHF_NU_ACTIVE] = active_count / ((T - 1) * n) if T > 1 else 0.0


# Two functions, not one body jitted twice: numba's cache keys a function by name, line and bytecode, not
# by flags, so the two would share one entry (tried: the parallel one loaded the serial code, one thread).
@numba.njit(**_EXACT)
def _channels_serial(m0, a_levels, H, W, h, scheme, reflect, rtol, max_it, rounds, safety, tol, max_iter, predicted,
                     monotone, bound_zero, valid_slope, bound_tol, nu_slope, m_out, s_out, rec_i, rec_f, ch_i, ch_f):
    for c in range(m0.shape[0]):
        _newton_channel(m0[c], a_levels, H, W, h, scheme, reflect, rtol, max_it, rounds, safety, tol, max_iter,
                        predicted, monotone, bound_zero, valid_slope, bound_tol, nu_slope, m_out[c], s_out[c], rec_i[c],
                        rec_f[c], ch_i[c], ch_f[c])


@numba.njit(parallel=True, **_EXACT)
def _channels_parallel(m0, a_levels, H, W, h, scheme, reflect, rtol, max_it, rounds, safety, tol, max_iter, predicted,
                       monotone, bound_zero, valid_slope, bound_tol, nu_slope, m_out, s_out, rec_i, rec_f, ch_i, ch_f):
    for c in prange(m0.shape[0]):
        _newton_channel(m0[c], a_levels, H, W, h, scheme, reflect, rtol, max_it, rounds, safety, tol, max_iter,
                        predicted, monotone, bound_zero, valid_slope, bound_tol, nu_slope, m_out[c], s_out[c], rec_i[c],
                        rec_f[c], ch_i[c], ch_f[c])


def validity_slope(scheme: str) -> float:
    """The slope of ``scheme.validity``'s nu-active share (minimal's for centred and upwind)."""
    from fpscore.fokker_planck.scheme import NU_SLOPE

    return NU_SLOPE.get(scheme, NU_SLOPE["minimal"])


def newton_channels(m0: np.ndarray, a_levels: np.ndarray, h: float, scheme: str, boundary: str, *, rtol: float,
                    max_it: int, rounds: int, safety: float, tol: float, max_iter: int, stop: str, monotone: bool,
                    m_out: np.ndarray, s_out: np.ndarray, threads: int = 1):
    """Per-level Newton for K channels: m0 (K, H, W) float64; a_levels (T,) = dt_n g_n^2 / 2 (entry 0
    unused); m_out, s_out (K, T, H, W) float32 or float64, written. Returns (records int (K, R, 3),
    records float (K, R, 4), channel ints (K, 7), channel floats (K, 3)), R = (T - 1) * max_iter;
    the columns are the module's ``CH_*``, ``CHF_*`` and ``REC_*``. Every constant of the definitions in
    other files (``scheme.BOUND_TOL``, the nu slopes) is passed as an argument: numba's cache would not see
    it change."""
    from fpscore.fokker_planck.scheme import BOUND_TOL, NU_SLOPE

    K, H, W = m0.shape
    T = a_levels.size
    R = max(1, (T - 1) * max_iter)
    rec_i = np.empty((K, R, 3), dtype=np.int64)  # only a channel's first CH_RECORDS rows are written and read
    rec_f = np.empty((K, R, 4))
    ch_i = np.zeros((K, 7), dtype=np.int64)
    ch_f = np.zeros((K, 3))
    run = _channels_parallel if threads > 1 else _channels_serial
    if threads > 1:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    run(np.ascontiguousarray(m0, dtype=np.float64).reshape(K, H * W), np.ascontiguousarray(a_levels, dtype=np.float64),
        H, W, float(h), SCHEME_CODES[scheme], boundary == "reflect", float(rtol), int(max_it), int(rounds),
        float(safety), float(tol), int(max_iter), stop == "predicted", bool(monotone), boundary == "zero",
        float(validity_slope(scheme)), float(BOUND_TOL), float(NU_SLOPE.get(scheme, 0.0)), m_out.reshape(K, T, H * W),
        s_out.reshape(K, T, H * W), rec_i, rec_f, ch_i, ch_f)
    return rec_i, rec_f, ch_i, ch_f


def load(threads: int = 1) -> None:
    """Compile or load every kernel now for the types the engine uses (float32 and float64 outputs;
    the parallel driver where ``threads`` > 1), the KDE's of ``numba_kde`` too: a process pays this
    once, before anything is timed."""
    H = W = 3
    T = 3
    m0 = np.linspace(0.1, 0.9, H * W).reshape(1, H, W)
    a = np.array([0.0, 0.1, 0.2])
    for dtype in (np.float32, np.float64):
        m = np.empty((1, T, H, W), dtype=dtype)
        newton_channels(m0, a, 1.0, "minimal", "reflect", rtol=1e-10, max_it=20, rounds=2, safety=0.5, tol=1e-10,
                        max_iter=3, stop="change", monotone=True, m_out=m, s_out=np.empty_like(m), threads=1)
        if threads > 1:
            newton_channels(m0, a, 1.0, "minimal", "reflect", rtol=1e-10, max_it=20, rounds=2, safety=0.5,
                            tol=1e-10, max_iter=3, stop="change", monotone=True, m_out=m, s_out=np.empty_like(m),
                            threads=threads)
    numba_kde.load()  # the fused engine's initial densities
    clock_ns()
