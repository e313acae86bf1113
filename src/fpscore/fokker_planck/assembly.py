"""Assembly of the 5-point linear systems of METHOD.md §3, §5b and §2b into CSR / PETSc values.

The coefficients of a system come from ``fpscore.fokker_planck.scheme`` (every scheme and
boundary, the one definition both engines use) as five per-pixel fields. The sparsity
pattern depends only on (H, W): ``FPPattern`` builds it once (CSR, int32, columns sorted)
together with a gather map from the 5 x HW table of those fields to the CSR value slots, so
filling the values of a new system is one vectorised ``np.take``. ``FPSystem`` owns one
value array that a SciPy CSR matrix and a PETSc seqaij Mat share (no copy), overwritten in
place for every system.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fpscore.fokker_planck.lattice import d_h
from fpscore.fokker_planck.scheme import Stencil5, linearised, stencil

# Stencil roles in increasing column order within a row: (i-1,j), (i,j-1), (i,j), (i,j+1), (i+1,j),
# the order of ``Stencil5.fields``.
_ROLES = ((-1, 0), (0, -1), (0, 0), (0, 1), (1, 0))


class FPPattern:
    """CSR pattern of the 5-point stencil on an H x W lattice, built once per size."""

    def __init__(self, H: int, W: int):
        if not (int(H) == H and int(W) == W and H >= 1 and W >= 1):
            raise ValueError(f"lattice size: expected positive integers H, W, got {H!r}, {W!r}")
        self.H, self.W = int(H), int(W)
        n = self.H * self.W
        self.n = n
        k = np.arange(n, dtype=np.int64)
        i, j = np.divmod(k, self.W)
        rows, cols, gather = [], [], []
        for role, (di, dj) in enumerate(_ROLES):
            ii, jj = i + di, j + dj
            ok = (ii >= 0) & (ii < self.H) & (jj >= 0) & (jj < self.W)
            rows.append(k[ok])
            cols.append((ii * self.W + jj)[ok])
            gather.append(role * n + k[ok])
        rows, cols, gather = (np.concatenate(a) for a in (rows, cols, gather))
        order = np.lexsort((cols, rows))  # row-major, columns ascending
        self.indices = cols[order].astype(np.int32)
        self.gather = gather[order].astype(np.intp)
        counts = np.bincount(rows, minlength=n)
        self.indptr = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=self.indptr[1:])
        self.nnz = int(self.indices.size)

    def values(self, fields: Stencil5, out: np.ndarray | None = None) -> np.ndarray:
        """The CSR values of the matrix (or matrices: leading axes L...) of ``fields`` (..., H, W):
        (nnz,) or (L..., nnz); written into ``out`` when given."""
        table = np.stack([np.asarray(f, dtype=np.float64) for f in fields.fields()], axis=-3)
        lead = table.shape[:-3]
        if table.shape[-2:] != (self.H, self.W):
            raise ValueError(f"stencil fields: expected (..., {self.H}, {self.W}), got {table.shape[-2:]}")
        table = table.reshape(*lead, 5 * self.n)
        if not lead:
            return np.take(table, self.gather, out=out)
        return np.take(table, self.gather, axis=-1, out=out)


class FPSystem:
    """The matrix A of one image size, as SciPy CSR (``csr``) and PETSc Mat (``petsc``),
    sharing one value array that ``fill`` overwrites in place."""

    def __init__(self, H: int, W: int, pattern: FPPattern | None = None):
        self.pattern = pattern if pattern is not None else FPPattern(H, W)
        if (self.pattern.H, self.pattern.W) != (H, W):
            raise ValueError(f"pattern is for {self.pattern.H}x{self.pattern.W}, not {H}x{W}")
        self.H, self.W, self.n = H, W, H * W
        self.data = np.zeros(self.pattern.nnz)
        self.csr = sp.csr_matrix((self.data, self.pattern.indices, self.pattern.indptr), shape=(self.n, self.n))
        if not np.shares_memory(self.csr.data, self.data):  # pragma: no cover - scipy contract
            raise RuntimeError("scipy copied the CSR value array; in-place assembly would be lost")
        self._petsc = None
        self._petsc_shared = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.H, self.W

    @property
    def petsc(self):
        """PETSc seqaij Mat with this pattern (created on first use, values shared)."""
        if self._petsc is None:
            from petsc4py import PETSc

            p = self.pattern
            mat = PETSc.Mat().createAIJWithArrays((self.n, self.n), (p.indptr, p.indices, self.data),
                                                  comm=PETSc.COMM_SELF)
            mat.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
            # Does the Mat use our value array (MatCreateSeqAIJWithArrays) or a copy?
            old = self.data[0]
            self.data[0] = old + 1.0
            self._petsc_shared = mat.getValue(0, int(p.indices[0])) == self.data[0]
            self.data[0] = old
            self._petsc = mat
            self._sync_petsc()
        return self._petsc

    def _sync_petsc(self) -> None:
        """Tell PETSc the values changed (new object state, so PCs rebuild)."""
        if self._petsc_shared:
            self._petsc.assemble()
        else:
            p = self.pattern
            self._petsc.setValuesCSR(p.indptr, p.indices, self.data)
            self._petsc.assemble()

    def fill(self, g: float, dt: float, v: np.ndarray, h: float, *, boundary: str) -> None:
        """Set A = I - dt g^2/2 Lap_h + dt diag(v) D_h (the form of §3; values only, pattern fixed)."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.H, self.W):
            raise ValueError(f"v: expected shape {(self.H, self.W)}, got {v.shape}")
        self.set_fields(stencil(0.5 * g * g * dt, h, 1.0, dt * v, None, None, boundary=boundary, like=v))

    def set_fields(self, fields: Stencil5) -> None:
        """Set A's values from its five coefficient fields (``scheme.stencil`` / ``scheme.linearised``)."""
        self.pattern.values(fields, out=self.data)
        if self._petsc is not None:
            self._sync_petsc()

    def set_values(self, values: np.ndarray) -> None:
        """Set A's values (nnz,) computed beforehand (a row of ``pattern.values`` of many levels)."""
        np.copyto(self.data, values)
        if self._petsc is not None:
            self._sync_petsc()

    def close(self) -> None:
        if self._petsc is not None:
            self._petsc.destroy()
            self._petsc = None


def rhs(m_prev: np.ndarray, dt: float, h: float, drift: np.ndarray | None = None,
        source: np.ndarray | None = None, *, boundary: str) -> np.ndarray:
    """b = m^{n-1} - dt D_h f^n (+ dt q^n for a manufactured source q), flat float64."""
    b = np.array(m_prev, dtype=np.float64).reshape(-1)
    if drift is not None:
        b -= dt * d_h(drift, h, boundary=boundary).reshape(-1)
    if source is not None:
        b += dt * np.asarray(source, dtype=np.float64).reshape(-1)
    return b


def step_system(system: FPSystem, x: np.ndarray, m_prev: np.ndarray, g: float, dt: float, h: float, *,
                scheme: str, boundary: str, newton: bool, drift: np.ndarray | None = None,
                source: np.ndarray | None = None) -> np.ndarray:
    """Fill ``system`` with the matrix of one Newton (or Picard) step at iterate x (H, W) and return
    its right-hand side (flat): ``scheme.linearised``."""
    a = 0.5 * g * g * dt
    fields, extra = linearised(x, a=a, h=h, scheme=scheme, boundary=boundary, newton=newton,
                               dt_f=None if drift is None else dt * drift)
    system.set_fields(fields)
    b = rhs(m_prev, dt, h, drift, source, boundary=boundary)
    if extra is not None:
        b += extra.reshape(-1)
    return b
