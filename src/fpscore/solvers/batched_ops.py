"""Matrix-free pieces of the batched engine (torch, float64, CPU or CUDA alike).

``Stencil`` applies the 5-point matrices A of METHOD.md §3 / §5b of B systems at once
to a (B, H*W) array (row-major fields), from per-system scalars and a per-pixel drift
coefficient, with no stored matrix: five fused multiply-adds per application.
``bicgstab`` is BiCGStab with per-system scalars and per-system stopping tests; a system
that has converged is masked (it stays fixed while the others iterate), and the arrays
are compacted to the live systems once half have stopped. Jacobi preconditioning is not
offered: with zero padding and the centred scheme the diagonal is a constant per system
(a scalar scaling that leaves every Krylov iterate unchanged); elsewhere it varies only at
the border (reflect) and where nu is active (a small share of pixels). ``torch.compile`` of the operator does not pay on CPU (measured, 1
thread: 110-123 us eager vs 131-135 us compiled for 8-16 systems at 32x32, 0.77 ms eager
vs 5.6 ms compiled for 16 at 128x128, plus 3-30 s of compilation), so it is not used.
"""
from __future__ import annotations

import math

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str):
    """torch.device for "auto" (CUDA when available), "cpu" or "cuda" (ValueError if absent)."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device: unknown value {device!r}, expected one of {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but torch sees no CUDA device")
    return torch.device(device)


class Stencil:
    """The 5-point matrices of B systems on an H x W lattice, matrix-free: five per-pixel
    coefficient fields per system (``fpscore.fokker_planck.scheme``, boundary folded in, so a
    neighbour outside the image has coefficient 0), applied with five fused multiply-adds."""

    def __init__(self, H: int, W: int, device):
        self.H, self.W, self.n = H, W, H * W
        self.device = device

    def coefficients(self, fields) -> "Coefficients":
        """Coefficients of B systems from ``scheme.Stencil5`` fields (B, H, W) (torch)."""
        B = fields.diag.shape[0]

        def flat(a):
            return a.reshape(B, self.n)

        return Coefficients(flat(fields.diag), flat(fields.south), flat(fields.north), flat(fields.east),
                            flat(fields.west))

    def fields(self, coef: "Coefficients", i: int):
        """System i's fields as numpy (H, W) arrays (``scheme.Stencil5``), for a direct solve."""
        from fpscore.fokker_planck.scheme import Stencil5

        def field(a):
            return a[i].cpu().numpy().reshape(self.H, self.W)

        return Stencil5(diag=field(coef.diag), north=field(coef.minus_i), south=field(coef.plus_i),
                        west=field(coef.minus_j), east=field(coef.plus_j))

    def apply(self, coef: "Coefficients", u, out=None):
        """A u for u (B, n); ``out`` (B, n) is written when given."""
        import torch

        if out is None:
            out = torch.empty_like(u)
        return _apply(u, coef.diag, coef.plus_i, coef.minus_i, coef.plus_j, coef.minus_j, out, self.W)


class Coefficients:
    """The five coefficient fields of B systems, each (B, n): the diagonal and the neighbours
    (i+1, j), (i-1, j), (i, j+1), (i, j-1); ``take`` keeps a subset of the systems."""

    __slots__ = ("diag", "plus_i", "minus_i", "plus_j", "minus_j")

    def __init__(self, diag, plus_i, minus_i, plus_j, minus_j):
        self.diag, self.plus_i, self.minus_i, self.plus_j, self.minus_j = diag, plus_i, minus_i, plus_j, minus_j

    def take(self, idx) -> "Coefficients":
        return Coefficients(*(a[idx] for a in (self.diag, self.plus_i, self.minus_i, self.plus_j, self.minus_j)))


def _apply(u, diag, plus_i, minus_i, plus_j, minus_j, out, W: int):
    import torch

    torch.mul(u, diag, out=out)
    out[:, :-W].addcmul_(u[:, W:], plus_i[:, :-W])
    out[:, W:].addcmul_(u[:, :-W], minus_i[:, W:])
    out[:, :-1].addcmul_(u[:, 1:], plus_j[:, :-1])
    out[:, 1:].addcmul_(u[:, :-1], minus_j[:, 1:])
    return out


_MIN_COMPACT = 8  # below this many systems, masking is cheaper than compacting


def _dot(a, b):
    """Per-system inner products of (B, n) arrays, (B,)."""
    import torch

    return torch.linalg.vecdot(a, b, dim=1)


def bicgstab(stencil: Stencil, coef: Coefficients, b, x, tol: float, max_it: int):
    """BiCGStab on B systems A_i x_i = b_i from x (B, n), updated in place.

    Per-system scalars; each system stops on its own recursive residual
    ||r_i|| <= tol ||b_i|| and is masked from then on (its alpha and omega are zero, so
    its x stays fixed while the others iterate); once at most half of the systems are
    left, the working arrays are compacted to those (a masked row costs as much as a live
    one). A breakdown (zero or non-finite
    scalars) freezes the system too; the caller's true-residual check catches it.
    Returns (iterations (B,), initial relative residual (B,)).
    """
    import torch

    bnorm2 = _dot(b, b)
    bnorm2 = torch.where(bnorm2 > 0, bnorm2, torch.ones_like(bnorm2))
    r = b - stencil.apply(coef, x)
    rr = _dot(r, r)
    init = torch.sqrt(rr / bnorm2)
    limit = (tol * tol) * bnorm2
    active = rr > limit  # NaN compares False: a non-finite system is frozen at once
    its = torch.zeros_like(rr, dtype=torch.long)
    if not bool(active.any()):
        return its, init
    zero = torch.zeros_like(rr)
    rhat = r.clone()
    p = r.clone()
    v = torch.empty_like(r)
    t = torch.empty_like(r)
    rho = _dot(rhat, r)
    rows = None  # row i of the working arrays is system rows[i] (None: all, in order)
    xa, ca, lim = x, coef, limit
    for _ in range(max_it):
        stencil.apply(ca, p, out=v)
        alpha = torch.where(active, rho / _dot(rhat, v), zero)
        r.addcmul_(v, alpha[:, None], value=-1.0)  # r is s from here
        stencil.apply(ca, r, out=t)
        tt = _dot(t, t)
        omega = torch.where(active & (tt > 0), _dot(t, r) / tt, zero)
        xa.addcmul_(p, alpha[:, None]).addcmul_(r, omega[:, None])
        r.addcmul_(t, omega[:, None], value=-1.0)
        if rows is None:
            its += active
        else:
            its[rows] += active
        rr = _dot(r, r)
        active &= (rr > lim) & (omega != 0)
        n_active = int(active.sum())
        if n_active == 0:
            break
        rho_new = _dot(rhat, r)
        beta = torch.where(active, (rho_new / rho) * (alpha / omega), zero)
        p.addcmul_(v, omega[:, None], value=-1.0).mul_(beta[:, None]).add_(r)
        rho = rho_new
        if 2 * n_active <= active.numel() and active.numel() > _MIN_COMPACT:
            # few systems left: go on with theirs alone (masked rows would cost as much as live ones)
            keep = torch.nonzero(active).flatten()
            if rows is not None:
                x[rows] = xa
            rows = keep if rows is None else rows[keep]
            xa, ca, lim = x[rows], coef.take(rows), limit[rows]
            r, rhat, p, v, t = r[keep], rhat[keep], p[keep], v[keep], t[keep]
            rho, zero, active = rho[keep], zero[keep], active[keep]
    if rows is not None:
        x[rows] = xa
    return its, init


def relative_residual(stencil: Stencil, coef: Coefficients, x, b):
    """TRUE relative residual ||b_i - A_i x_i|| / ||b_i|| per system (one operator application)."""
    import torch

    bn = torch.linalg.vector_norm(b, dim=1)
    rn = torch.linalg.vector_norm(b - stencil.apply(coef, x), dim=1)
    return torch.where(bn > 0, rn / torch.where(bn > 0, bn, torch.ones_like(bn)), rn)


def check_tolerance(tol: float) -> float:
    if not (0 < tol < 1) or not math.isfinite(tol):
        raise ValueError(f"rtol: expected a relative residual in (0, 1), got {tol!r}")
    return float(tol)
